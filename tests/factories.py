"""Small valid shard sets for tests, written per the contract in ``hybridssl/storage/shards.py``.

Images are random noise with a bright blob (so crops and flips change something visible);
votes follow the decision tree of one campaign: a root question gets ~40 volunteers and each
child question is asked of exactly the volunteers who gave its parent answer.
"""
from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import webdataset as wds
from PIL import Image

from benchmarks.faults.harness import tree_votes
from hybridssl.schema import load_schema
from hybridssl.storage.shards import FORMAT_VERSION, MANIFEST, SHARD_PATTERN, encode_key, encode_votes, sha256_file


def fake_id(i: int, seed: int = 0) -> str:
    """An id with a dot and a plus sign, like real ones (``J004544.11-005037.5``)."""
    return f"J{seed:03d}{i:06d}.5+0012.{i % 10}"


def fake_image(rng: np.random.Generator, size: int) -> np.ndarray:
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 8) ** 2))
    colour = rng.uniform(120, 195, 3)
    return np.clip(img + blob[..., None] * colour, 0, 255).astype(np.uint8)


def fake_votes(rng: np.random.Generator, schema, campaign: str) -> np.ndarray:
    """Integer votes (as float32) on ``campaign``'s columns, consistent with the decision tree."""
    return tree_votes(rng, schema, campaign, volunteers=(20, 60)).astype(np.float32)


def write_shards(out_dir, n: int, labelled: bool = True, n_shards: int = 4, image_size: int = 32,
                 schema: str = "gz_evo_v0.1", seed: int = 0, campaign: str = "dr5",
                 keep: Mapping[str, Sequence] | None = None, image_format: str = "jpg") -> Path:
    """Write ``n`` samples in ``n_shards`` tar shards plus ``manifest.json``; returns ``out_dir``.

    ``keep``: extra per-sample meta.json fields (column -> sequence of ``n`` values), as
    ``prepare --keep-columns`` would copy from the catalog. Unlabelled samples have no
    ``votes.npy`` and campaign null.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sch = load_schema(schema)
    rng = np.random.default_rng(seed)
    keep = dict(keep or {})
    for k, v in keep.items():
        if len(v) != n:
            raise ValueError(f"keep[{k!r}] has {len(v)} values, expected {n}")
    entries, i = [], 0
    for s, count in enumerate(np.array_split(np.arange(n), n_shards)):
        name = SHARD_PATTERN.format(s)
        with wds.TarWriter(str(out / name), mtime=0) as tw:  # integer mtime: no PAX header per member
            for i in count.tolist():
                tw.write(_sample(rng, sch, i, seed, labelled, campaign, image_size, image_format, keep))
        entries.append({"name": name, "n_samples": len(count), "sha256": sha256_file(out / name),
                        "bytes": (out / name).stat().st_size})
    manifest = {"format_version": FORMAT_VERSION, "schema": sch.name, "schema_hash": sch.hash,
                "n_answers": sch.n_answers, "labelled": labelled, "image_size": image_size,
                "image_format": image_format, "n_samples": n, "shards": entries,
                "command": f"tests/factories.write_shards(n={n}, seed={seed})",
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return out


def _sample(rng, sch, i, seed, labelled, campaign, image_size, image_format, keep) -> dict:
    id_str = fake_id(i, seed)
    buf = io.BytesIO()
    Image.fromarray(fake_image(rng, image_size)).save(buf, format="JPEG" if image_format == "jpg" else "PNG")
    meta = {"id_str": id_str, "campaign": campaign if labelled else None,
            "source": "tests/factories", **{k: _plain(v[i]) for k, v in keep.items()}}
    sample = {"__key__": encode_key(id_str), f"image.{image_format}": buf.getvalue(),
              "meta.json": json.dumps(meta).encode()}
    if labelled:
        sample["votes.npy"] = encode_votes(fake_votes(rng, sch, campaign))
    return sample


def _plain(v):
    """numpy scalars to Python ones, so meta.json stays plain JSON."""
    return v.item() if isinstance(v, np.generic) else v


def tiny_run_config(root, *overrides, write: bool = True):
    """A 2-step hybrid run of the 0.4M-parameter test backbone on 16 labelled 32 px galaxies in
    ``root`` (``write=False``: the config of shards already written there)."""
    from hybridssl.config import config_dir, load_config
    from hybridssl.train.config import PretrainConfig

    labelled = root / "labelled"
    if write:
        write_shards(labelled, 16, labelled=True, n_shards=2, image_size=32)
    return load_config(PretrainConfig, config_dir() / "pretrain" / "demo.yaml", [
        f"out_dir={root / 'run'}", f"data.labelled=[{labelled}]", "data.unlabelled=[]", "data.batch_size=8",
        "data.num_workers=0", "model.backbone=test_resnet", "model.projection_hidden_dim=32",
        "model.prediction_hidden_dim=32", "model.projection_dim=16", "augment.crop_size=32",
        "augment.resize_size=32", "augment.blur_kernel=3", "trainer.precision=32-true", "trainer.max_steps=2",
        "trainer.progress_bar=false", "optim.warmup_steps=1", "mode=hybrid", *overrides])
