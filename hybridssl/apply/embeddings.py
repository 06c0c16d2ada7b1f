"""The embeddings file: one unit-norm feature vector per galaxy, with its id and metadata.

Two layouts, one reader (:func:`read_embeddings`):

- ``FILE.parquet``: columns ``id_str``, scalar meta columns (``campaign``, keep-columns such as
  ``ring``), ``embedding`` (fixed-size list of float32); the file-level key ``hybridssl``
  holds the JSON metadata (source, model, dimensions).
- ``FILE.npy``: the (n, F) float32 matrix; ``FILE.ids.json`` beside it holds ``ids``, ``meta``
  (column -> values) and ``metadata``.
- ``DIR/`` from ``embed --out DIR/``: one raw-feature parquet per shard and ``_manifest.json``,
  read as one memory-mapped set (``hybridssl.apply.folder_embeddings``).
"""
from __future__ import annotations

import difflib
import functools
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hybridssl.apply.embedding_format import _KEY, EmbeddingsError, check_finite
from hybridssl.storage.atomic import atomic_path, atomic_write_bytes, atomic_write_text

FORMAT = "hybridssl-embeddings"
SUFFIXES = (".parquet", ".npy")

@dataclass
class Embeddings:
    ids: list[str]
    x: np.ndarray                 # float32 (n, F), unit rows, in ``ids`` order
    meta: pd.DataFrame            # one row per galaxy (same order), scalar columns only
    metadata: dict = field(default_factory=dict)

    @functools.cached_property
    def _row(self) -> dict:
        return {i: r for r, i in reversed(list(enumerate(self.ids)))}  # first occurrence wins

    def rows_of(self, ids, what: str = "id") -> np.ndarray:
        """Row numbers of ``ids``; every unknown id is named (with a close match when cheap)."""
        missing = [i for i in ids if i not in self._row]
        if missing:
            hint = ""
            if len(self.ids) <= 50_000:  # difflib is O(n) per id
                close = difflib.get_close_matches(missing[0], self.ids, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            shown = ", ".join(map(repr, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise EmbeddingsError(f"{len(missing)} {what}{'s' if len(missing) > 1 else ''} not in the embeddings "
                                  f"file: {shown}{hint}")
        return np.array([self._row[i] for i in ids], dtype=np.int64)

    # what similar/anomalies/montage read, so a memory-mapped folder (folder_embeddings) can serve them
    def meta_rows(self, rows) -> pd.DataFrame:
        """The meta columns (``id_str`` first) of ``rows``, in that order."""
        return self.meta.iloc[list(rows)].reset_index(drop=True)

    @property
    def meta_columns(self) -> list[str]:
        return list(self.meta.columns)

    def column(self, name: str) -> pd.Series:
        return self.meta[name].reset_index(drop=True)


def sidecar(path: Path) -> Path:
    return path.with_suffix(".ids.json")


def check_suffix(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise EmbeddingsError(f"{path}: embeddings files end in .parquet or .npy")
    return path


def write_embeddings(path: str | os.PathLike, ids: list[str], x: np.ndarray, meta: pd.DataFrame,
                     metadata: dict) -> Path:
    path = check_suffix(path)
    x = np.ascontiguousarray(x, dtype=np.float32)
    metadata = {"format": FORMAT, "n": len(ids), "dim": int(x.shape[1]), **metadata}
    if path.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, x, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        cols = {c: meta[c].astype(object).where(meta[c].notna(), None).tolist()  # NaN is not JSON
                for c in meta.columns if c != "id_str"}
        atomic_write_text(sidecar(path), json.dumps({"ids": list(ids), "meta": cols, "metadata": metadata}))
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {"id_str": pa.array(list(ids), pa.string())}
    arrays.update({c: _column(meta[c]) for c in meta.columns if c != "id_str"})
    arrays["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    table = pa.table(arrays).replace_schema_metadata({_KEY: json.dumps(metadata).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _column(values: pd.Series):
    """An arrow column, missing values as nulls; a column mixing types (ints and text) becomes text."""
    import pyarrow as pa
    try:
        return pa.Array.from_pandas(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([str(v) if ok else None for v, ok in zip(values, values.notna())], pa.string())


def read_embeddings(path: str | os.PathLike) -> Embeddings:
    path = Path(path)
    if path.is_dir():  # `embed --out DIR/`: one file per shard
        from hybridssl.apply.folder_embeddings import read_embedding_folder
        return read_embedding_folder(path)
    if path.suffix not in SUFFIXES:
        raise EmbeddingsError(f"{path}: not an embeddings file (expected .parquet or .npy from `hybridssl embed`)")
    if not path.is_file():
        raise EmbeddingsError(f"{path}: no such embeddings file; write one with `hybridssl embed`")
    emb = _read_npy(path) if path.suffix == ".npy" else _read_parquet(path)
    if emb.x.ndim != 2 or len(emb.ids) != len(emb.x) or len(emb.meta) != len(emb.x):
        raise EmbeddingsError(f"{path}: {len(emb.ids)} ids, {len(emb.meta)} meta rows and a matrix of shape "
                              f"{emb.x.shape} do not match; re-run `hybridssl embed`")
    if len(emb.x) == 0:
        raise EmbeddingsError(f"{path}: holds no galaxies")
    check_finite(emb.ids, emb.x, str(path))
    return emb


def _read_npy(path: Path) -> Embeddings:
    side = sidecar(path)
    if not side.is_file():
        raise EmbeddingsError(f"{path}: its ids file {side.name} is missing; both come from `hybridssl embed`")
    try:
        x = np.load(path, allow_pickle=False)
        doc = json.loads(side.read_text())
        ids, cols, metadata = doc["ids"], doc["meta"], doc["metadata"]
        meta = pd.DataFrame({"id_str": ids, **cols})
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise EmbeddingsError(f"{path}: cannot read the matrix or {side.name} ({type(e).__name__}: {e})") from e
    return Embeddings([str(i) for i in ids], x.astype(np.float32, copy=False), meta, metadata)


def _read_parquet(path: Path) -> Embeddings:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise EmbeddingsError(f"{path}: not a readable parquet file ({e})") from e
    for col in ("id_str", "embedding"):
        if col not in table.column_names:
            raise EmbeddingsError(f"{path}: no {col!r} column; was it written by `hybridssl embed`?")
    emb = table.column("embedding").combine_chunks()
    if not pa.types.is_fixed_size_list(emb.type) or emb.null_count:
        raise EmbeddingsError(f"{path}: 'embedding' must be a fixed-size list of floats without nulls")
    x = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(emb), emb.type.list_size)
    metadata = json.loads((table.schema.metadata or {}).get(_KEY, b"{}"))
    meta = table.drop_columns(["embedding"]).to_pandas()
    return Embeddings(meta["id_str"].astype(str).tolist(), x, meta, metadata)
