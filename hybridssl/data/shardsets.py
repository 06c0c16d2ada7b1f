"""A shard set as the training stream sees it: its manifest checked, its shard URLs and sizes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import List, Optional

import webdataset as wds

from hybridssl.config import ConfigError
from hybridssl.data.tars import is_local
from hybridssl.schema import Schema
from hybridssl.storage.shards import MANIFEST, ShardError, manifest_in_chans, read_manifest, shard_names


@dataclass
class ShardSet:
    where: str            # directory or URL prefix
    urls: List[str]
    sizes: List[int]      # samples per shard, from the manifest
    image_size: int
    labelled: bool
    in_chans: int         # bands per image (3 for JPEG/PNG sets)
    bands: Optional[dict] = None  # per-band normalisation of float (npy) sets; None: 8-bit RGB
    n_voted: Optional[int] = None  # catalog rows with any vote (labelled sets; None: not recorded)


def open_shard_set(where: str, schema: Schema, allow_shell_urls: bool = False) -> ShardSet:
    """Read and check a shard set's manifest; shell-executing URLs only when allowed."""
    where = str(where)
    remote = not is_local(where) and not where.startswith("file:")
    if remote and not allow_shell_urls:
        raise ConfigError(f"shard set {where!r}: URL schemes such as pipe:/http: run shell commands "
                          f"or curl; set data.allow_shell_urls=true to allow them")
    where = where.removeprefix("file:")
    if remote:
        with wds.gopen(f"{where.rstrip('/')}/{MANIFEST}") as f:
            m = json.loads(f.read())
    else:
        m = read_manifest(where)
    label = f"{where}/{MANIFEST}"
    if m["schema_hash"] != schema.hash:
        raise ShardError(f"{label}: schema_hash {m['schema_hash']} ({m['schema']}) does not match "
                         f"schema {schema.name} (hash {schema.hash}); re-prepare or pick that schema")
    shard_names(m, where)  # refuses names that leave the set, or a shard listed twice
    shards = [s for s in m["shards"] if s["n_samples"] > 0]
    if not shards:
        raise ShardError(f"{label}: no samples")
    urls = [f"{where.rstrip('/')}/{s['name']}" for s in shards]
    return ShardSet(where, urls, [int(s["n_samples"]) for s in shards], int(m["image_size"]), bool(m["labelled"]),
                    manifest_in_chans(m), m.get("bands"), m.get("n_voted"))


def band_kind(in_chans: int, bands: Optional[dict]) -> str:
    """What a model reads: "8-bit RGB", or "N float bands, STRETCH stretch" (asinh and linear
    bands are different inputs, so they are different kinds)."""
    if not bands:
        return "8-bit RGB"
    return f"{in_chans} float band{'s' * (in_chans != 1)}, {bands.get('stretch', 'asinh')} stretch"


def image_kind(sets: List[ShardSet]) -> tuple[int, Optional[dict]]:
    """(bands per image, the first set's band normalisation or None for 8-bit RGB) of shard sets
    that one model reads; sets that differ in either are refused, naming each."""
    kinds = {s.where: band_kind(s.in_chans, s.bands) for s in sets}
    if len(set(kinds.values())) > 1:
        raise ShardError(f"shard sets hold different images {kinds}; one model needs one kind")
    return sets[0].in_chans, sets[0].bands
