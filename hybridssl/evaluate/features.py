"""Frozen features of a shard set under an exported backbone, extracted once and cached.

The cache file is named by a key over everything that changes the numbers: the backbone's
weight and config files, the shard set's manifest (which lists every shard's sha256) and the
preprocessing. A second benchmark run, or a run with more budgets or seeds, reads the file
instead of running the backbone again.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hybridssl.cli import progress
from hybridssl.export import timm_folder as export
from hybridssl.storage.atomic import atomic_path
from hybridssl.storage.shards import MANIFEST, sha256_file


@dataclass
class Features:
    ids: list[str]
    x: np.ndarray           # float32 (n, num_features), rows in ``ids`` order
    key: str                # the cache key (also the file stem)


def backbone_hash(backbone_dir: str | os.PathLike) -> str:
    d = Path(backbone_dir)
    return _digest([sha256_file(d / export.MODEL_FILE), sha256_file(d / export.CONFIG_FILE)])


def cache_key(backbone_dir, shard_dir, preprocessing: dict) -> str:
    manifest = sha256_file(Path(shard_dir) / MANIFEST)
    return _digest([backbone_hash(backbone_dir), manifest, json.dumps(preprocessing, sort_keys=True)])


def eval_transform(info: dict, preset: str):
    """The evaluation preprocessing for a backbone: the augment preset at the backbone's input
    size, crop fraction and normalisation (from its exported config.json; float bands come
    normalised from their shards); also its settings."""
    from hybridssl.augment.config import load_augment_config
    from hybridssl.augment.factory import eval_transform_for
    from hybridssl.config import to_dict

    size = int(info["image_size"])
    crop_pct = float((info.get("pretrained_cfg") or {}).get("crop_pct", 1.0))
    rgb = [f"mean={list(info['mean'])}", f"std={list(info['std'])}"] if info.get("bands") is None else []
    # the blur kernel is a size key too (~10% of the crop, 23 at 224 px): a preset's own is too big below 23 px
    sizes = [f"crop_size={size}", f"resize_size={round(size / crop_pct)}", f"blur_kernel={2 * (size // 20) + 1}"]
    cfg = load_augment_config(preset, [*sizes, *rgb])
    return eval_transform_for(cfg, info), {**to_dict(cfg), **({"bands": info["bands"]} if not rgb else {})}


def extract_features(backbone_dir: str | os.PathLike, shard_dir: str | os.PathLike,
                     cache_dir: str | os.PathLike, augment_preset: str, batch_size: int,
                     num_workers: int = 0, device: str = "cpu", desc: str = "", tta: bool = False) -> Features:
    """Pooled backbone features of every sample, from the cache when it has them; ``tta``: the mean
    of the features of the 8 rotations/flips (D4) of each image."""
    transform, preprocessing = eval_transform(export.read_export_info(backbone_dir), augment_preset)
    key = cache_key(backbone_dir, shard_dir, {**preprocessing, **({"tta": "d4"} if tta else {})})
    path = Path(cache_dir) / f"{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Features(ids=z["ids"].tolist(), x=z["x"], key=key)
    model, _ = export.load_backbone(backbone_dir)
    ids, xs = [], []
    model = model.to(device).eval()
    transform = transform.to(device)
    with torch.inference_mode():
        for batch in progress(image_batches(shard_dir, batch_size, num_workers), desc=f"features {desc}".strip(),
                              unit="batch", leave=False):
            images = batch["image"].to(device)
            views = d4_views(images) if tta else [images]
            xs.append(torch.stack([model(transform(v)).float() for v in views]).mean(0).cpu().numpy())
            ids += batch["id_str"]
    feats = Features(ids=ids, x=np.concatenate(xs).astype(np.float32), key=key)
    buf = io.BytesIO()
    np.savez(buf, x=feats.x, ids=np.asarray(ids, dtype=str))
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buf.getvalue())
    return feats


def d4_views(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations and flips of square images (..., H, W): the symmetries of the square."""
    turns = [torch.rot90(images, k, dims=(-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


def image_batches(shard_dir, batch_size: int, num_workers: int = 0, indices=None, shuffle_seed=None):
    """uint8 image batches (dicts with ``image`` and ``id_str``) of a shard set (or of the rows
    ``indices``), in order, or reshuffled each pass when ``shuffle_seed`` is given."""
    from torch.utils.data import Subset

    from hybridssl.data import IndexedShards, make_eval_loader

    ds = IndexedShards(shard_dir)
    rows = ds if indices is None else Subset(ds, list(indices))
    return make_eval_loader(rows, batch_size, num_workers, shuffle_seed=shuffle_seed, n_answers=ds.n_answers)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]

