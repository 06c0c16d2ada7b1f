"""Read-once evaluation reader: a map-style Dataset over a shard set.

The index (for each sample: its shard and the offset and size of each member) is built once
from the tar headers (``hybridssl.data.tars.tar_index``); ``__getitem__`` then seeks and reads
only that sample's bytes. A plain DataLoader with a sequential sampler therefore reads every sample exactly once
per pass, in manifest order, with any number of workers and no resampling.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from hybridssl.schema import Schema, load_schema
from hybridssl.storage.shards import MANIFEST, ShardError, decode_key, manifest_in_chans, read_manifest, shard_paths
from hybridssl.data.samples import DECODERS, parse_sample
from hybridssl.data.tars import tar_index


class IndexedShards(torch.utils.data.Dataset):
    """``dataset[i]`` -> dict(image uint8 (3,H,W) or float32 (in_chans,H,W) for npy sets, votes float32
    or None, has_votes, id_str, campaign, meta)."""

    def __init__(self, shard_dir: str | os.PathLike, schema: Schema | str | None = None,
                 decode: str = "torchvision", only: Sequence[str] | None = None):
        """``only``: read just these shards of the set (names from its manifest)."""
        if decode not in DECODERS:
            raise ValueError(f"decode must be one of {DECODERS}, got {decode!r}")
        self.shard_dir, self.decode = Path(shard_dir), decode
        m = read_manifest(shard_dir)
        if schema is not None:
            schema = load_schema(schema)
            if m["schema_hash"] != schema.hash:
                raise ShardError(f"{self.shard_dir / MANIFEST}: schema_hash {m['schema_hash']} does not match "
                                 f"schema {schema.name} (hash {schema.hash})")
        self.labelled, self.image_size, self.in_chans = bool(m["labelled"]), int(m["image_size"]), manifest_in_chans(m)
        self.bands = m.get("bands")  # per-band normalisation of float (npy) sets; None: 8-bit RGB
        self.n_answers = int(m.get("n_answers") or (schema.n_answers if schema else 0))
        self.shards = shard_paths(shard_dir)
        expected = m["n_samples"]
        if only is not None:
            sizes = {s["name"]: int(s["n_samples"]) for s in m["shards"]}
            unknown = [n for n in only if n not in sizes]
            if unknown:
                raise ShardError(f"{self.shard_dir / MANIFEST}: does not list shard {unknown[0]!r}")
            self.shards, expected = [self.shard_dir / n for n in only], sum(sizes[n] for n in only)
        self.index = [entry for s, path in enumerate(self.shards) for entry in _index_tar(s, path)]
        self._refuse_repeated_ids()
        if len(self.index) != expected:
            raise ShardError(f"{self.shard_dir / MANIFEST}: lists {expected} samples, shards hold "
                             f"{len(self.index)}; run `hybridssl verify {self.shard_dir}`")
        self._files: dict = {}

    def _refuse_repeated_ids(self) -> None:
        """One galaxy twice (e.g. a shard copied under another name) would be predicted twice."""
        first: dict = {}
        for shard, key, _ in self.index:
            if key in first:
                raise ShardError(f"{self.shard_dir}: sample {key!r} is in {self.shards[first[key]].name} and again "
                                 f"in {self.shards[shard].name}; run `hybridssl verify {self.shard_dir}`")
            first[key] = shard

    def __len__(self) -> int:
        return len(self.index)

    def _read(self, shard: int, offset: int, size: int) -> bytes:
        fd = self._files.get(shard)
        if fd is None:
            fd = self._files[shard] = os.open(self.shards[shard], os.O_RDONLY)
        # positional reads: forked workers may inherit these descriptors, and a shared file
        # offset (seek, then read) let two workers read each other's bytes
        return os.pread(fd, size, offset)

    def meta(self, i: int) -> dict:
        """Sample ``i``'s meta.json (``id_str`` from its key when absent), without reading its image."""
        shard, key, members = self.index[i]
        try:
            meta = json.loads(self._read(shard, *members["meta.json"])) if "meta.json" in members else {}
        except ValueError as e:
            raise ShardError(f"{self.shards[shard]}: sample {key!r}: meta.json is corrupt ({e}); "
                             f"run `hybridssl verify {self.shard_dir}`") from e
        meta.setdefault("id_str", decode_key(key))
        return meta

    def __getitem__(self, i: int) -> dict:
        shard, key, members = self.index[i]
        raw = {"__key__": key}
        for suffix, (offset, size) in members.items():
            raw[suffix] = self._read(shard, offset, size)
        try:
            out = parse_sample(raw, self.image_size, self.n_answers, self.labelled, self.decode, self.in_chans)
        except Exception as e:  # evaluation must not silently drop samples
            raise ShardError(f"{self.shards[shard]}: sample {key!r} is corrupt ({e})") from e
        out["has_votes"] = self.labelled
        return out

    def __getstate__(self):
        return {**self.__dict__, "_files": {}}

    def __del__(self):
        for fd in getattr(self, "_files", {}).values():
            os.close(fd)


def read_meta(shard_dir: str | os.PathLike) -> list[dict]:
    """Every sample's meta.json, in manifest order, without reading any image."""
    shards = IndexedShards(shard_dir)
    return [shards.meta(i) for i in range(len(shards))]


def _index_tar(shard: int, path: Path) -> list:
    """[(shard, key, {suffix: (data offset, size)})] in tar order; any unreadable part is an error."""
    entries, error = tar_index(str(path))
    if error is not None:
        raise error
    return [(shard, key, members) for key, members in entries]


def collate_samples(samples: list[dict], n_answers: Optional[int] = None) -> dict:
    """Per-sample dicts -> a batch with the training stream's keys (zero votes where absent) plus ``meta``."""
    n = n_answers or next((len(s["votes"]) for s in samples if s["votes"] is not None), 0)
    return {"image": torch.stack([s["image"] for s in samples]),
            "votes": torch.stack([s["votes"] if s["votes"] is not None else torch.zeros(n) for s in samples]),
            "has_votes": torch.tensor([s["has_votes"] for s in samples], dtype=torch.bool),
            "id_str": [s["id_str"] for s in samples], "campaign": [s["campaign"] for s in samples],
            "meta": [s["meta"] for s in samples]}


def make_eval_loader(dataset: torch.utils.data.Dataset, batch_size: int, num_workers: int = 0,
                     pin_memory: bool = False, shuffle_seed: Optional[int] = None,
                     n_answers: Optional[int] = None) -> torch.utils.data.DataLoader:
    """Sequential, no shuffling, no dropped tail: every sample exactly once per pass, in order.
    With ``shuffle_seed`` (fine-tuning's training passes) the order is that seed's permutation and
    a ragged tail is dropped: a batch of one breaks batch norm in train mode.
    ``dataset``: :class:`IndexedShards` or any map-style dataset (or list) of its sample dicts;
    ``n_answers``: the vote width, else the dataset's ``n_answers``, else from the samples."""
    shuffled = shuffle_seed is not None
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffled, num_workers=num_workers,
        generator=torch.Generator().manual_seed(shuffle_seed) if shuffled else None,
        drop_last=shuffled and len(dataset) > batch_size, pin_memory=pin_memory and torch.cuda.is_available(),
        collate_fn=functools.partial(collate_samples, n_answers=n_answers or getattr(dataset, "n_answers", None)))
