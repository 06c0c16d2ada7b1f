"""An ``embed --out DIR/`` folder read without holding it in memory.

The parts hold raw features; ``similar`` and ``anomalies`` need them centred on the whole set's
mean and L2-normalised. The first read writes that matrix once, part by part, to
``DIR/_features.npy`` (after checking every part against the manifest's sha256) and every read
memory-maps it: a search touches one chunk of rows at a time, and ids and meta columns are read
from the parts only for the rows asked for. A part newer than the matrix, or of another size than
the manifest says, makes the next read verify and rebuild it.
"""
from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from hybridssl.apply.embedding_format import _KEY, EmbeddingsError, check_finite
from hybridssl.apply.survey import raise_changed, read_survey_manifest
from hybridssl.storage.atomic import DiskWriteError, atomic_path, atomic_write_text

FEATURES, CENTRE = "_features.npy", "_features.centre.json"  # the centre is written first, then the matrix


def _part_table(path: Path, columns=None):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns)


def _part_features(path: Path) -> np.ndarray:
    emb = _part_table(path, ["embedding"]).column("embedding").combine_chunks()
    return emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(emb), emb.type.list_size)


class FolderEmbeddings:
    """The same interface as :class:`~hybridssl.apply.embeddings.Embeddings` (``ids``, ``x``,
    ``metadata``, ``rows_of``, ``meta_rows``, ``meta_columns``, ``column``), ``x`` memory-mapped."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = Path(folder), manifest
        self.parts = [self.folder / o["name"] for o in manifest["outputs"]]
        self.starts = np.cumsum([0] + [int(o["rows"]) for o in manifest["outputs"]])
        first = _part_table(self.parts[0]).schema.metadata or {}
        self.metadata = {k: v for k, v in json.loads(first.get(_KEY, b"{}")).items() if k != "shard"}
        self.x = self._features()
        self.metadata.update(n=len(self.x), normalised="centred-l2", files=len(self.parts),
                             centre=self._centre.tolist())
        self.ids = PartIds(self)

    # -- the normalised matrix -------------------------------------------------------------------
    def _stale(self, cache: Path) -> bool:
        if not cache.is_file():
            return True
        made = cache.stat().st_mtime_ns
        return any(p.stat().st_mtime_ns > made or p.stat().st_size != int(o["bytes"])
                   for p, o in zip(self.parts, self.manifest["outputs"]))

    def _features(self) -> np.ndarray:
        cache = self.folder / FEATURES
        if self._stale(cache):
            try:
                with atomic_path(cache) as tmp:
                    self._build(Path(tmp))
            except (DiskWriteError, PermissionError):
                cache = Path(tempfile.mkdtemp()) / FEATURES  # a read-only folder: a private copy
                self._build(cache)
        x = np.load(cache, mmap_mode="r")
        self._centre = np.asarray(json.loads((cache.parent / CENTRE).read_text()), dtype=np.float32)
        return x

    def _build(self, path: Path) -> None:
        """Verify every part, then write centred, unit-norm rows part by part."""
        from hybridssl.apply.inference import l2_normalise
        from hybridssl.storage.shards import sha256_file

        total, n, dim = None, 0, None
        for p, o in zip(self.parts, self.manifest["outputs"]):
            if sha256_file(p) != o["sha256"]:
                raise_changed(p, "embed")
            f = _part_features(p)
            check_finite(_part_table(p, ["id_str"]).column("id_str").to_pylist(), f, str(p))
            total = f.sum(0, dtype=np.float64) if total is None else total + f.sum(0, dtype=np.float64)
            n, dim = n + len(f), f.shape[1]
        centre = (total / n).astype(np.float32)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        for p, start in zip(self.parts, self.starts):
            f = _part_features(p)
            out[start:start + len(f)] = l2_normalise(f - centre)
        out.flush()
        del out
        atomic_write_text(path.parent / CENTRE, json.dumps([round(float(c), 7) for c in centre]))

    # -- rows, ids and meta, read part by part -----------------------------------------------------
    def _locate(self, rows) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """[(part, positions in ``rows``, rows within the part)] for the parts ``rows`` touch."""
        rows = np.asarray(rows, dtype=np.int64)
        part = np.searchsorted(self.starts, rows, "right") - 1
        return [(k, np.flatnonzero(part == k), rows[part == k] - self.starts[k]) for k in np.unique(part)]

    @functools.lru_cache(maxsize=4)
    def _part_ids(self, k: int) -> list[str]:
        return _part_table(self.parts[k], ["id_str"]).column("id_str").to_pylist()

    def rows_of(self, ids, what: str = "id") -> np.ndarray:
        """Row numbers of ``ids`` (first occurrence), scanning one part's id column at a time."""
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted, found = pa.array(list(ids), pa.string()), {}
        for k, p in enumerate(self.parts):
            col = _part_table(p, ["id_str"]).column("id_str")
            hits = pc.index_in(col, value_set=wanted).to_numpy(zero_copy_only=False)
            for pos in np.flatnonzero(~np.isnan(hits.astype(float))):
                found.setdefault(ids[int(hits[pos])], int(self.starts[k] + pos))
        missing = [i for i in ids if i not in found]
        if missing:
            shown = ", ".join(map(repr, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise EmbeddingsError(f"{len(missing)} {what}{'s' if len(missing) > 1 else ''} not in the embeddings "
                                  f"folder {self.folder}: {shown}")
        return np.array([found[i] for i in ids], dtype=np.int64)

    def meta_rows(self, rows) -> pd.DataFrame:
        """The meta columns (``id_str`` first) of ``rows``, in that order."""
        frames, order = [], []
        for k, positions, within in self._locate(rows):
            table = _part_table(self.parts[k]).drop_columns(["embedding"]).take(within)
            frames.append(table.to_pandas())
            order.append(positions)
        if not frames:
            return pd.DataFrame(columns=self.meta_columns)
        out = pd.concat(frames, ignore_index=True)
        return out.iloc[np.argsort(np.concatenate(order), kind="stable")].reset_index(drop=True)

    @functools.cached_property
    def meta_columns(self) -> list[str]:
        return [c for c in _part_table(self.parts[0]).column_names if c != "embedding"]

    def column(self, name: str) -> pd.Series:
        """One meta column of every row (one column in memory, not the whole table)."""
        return pd.concat([_part_table(p, [name]).column(name).to_pandas() for p in self.parts], ignore_index=True)

    @functools.cached_property
    def meta(self) -> pd.DataFrame:
        """Every meta column of every row: for small folders and tests; the commands use the above."""
        return self.meta_rows(np.arange(len(self.x)))

    def __hash__(self) -> int:  # lru_cache on methods
        return id(self)


class PartIds:
    """The ids of a folder as a read-only sequence; ``ids[r]`` reads only row r's part (cached)."""

    def __init__(self, emb: FolderEmbeddings):
        self.emb = emb

    def __len__(self) -> int:
        return int(self.emb.starts[-1])

    def __getitem__(self, r: int) -> str:
        r = int(r)
        if not 0 <= r < len(self):
            raise IndexError(r)
        k = int(np.searchsorted(self.emb.starts, r, "right") - 1)
        return self.emb._part_ids(k)[r - int(self.emb.starts[k])]

    def __iter__(self):
        for k in range(len(self.emb.parts)):
            yield from self.emb._part_ids(k)

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


def read_embedding_folder(folder: Path) -> FolderEmbeddings:
    """An ``embed --out DIR/`` folder as one set of embeddings, centred on the whole set's mean and
    L2-normalised, memory-mapped."""
    return FolderEmbeddings(folder, read_survey_manifest(folder, "embed", verify=False))
