"""A montage PNG of galaxies looked up by id: a query and its neighbours, or the top of a ranking.

Images come from a shard set (``--shards``, else the one the embeddings were made from), or,
for embeddings of a catalog, from the image files its ``path`` column names.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from hybridssl.storage.atomic import atomic_path
from hybridssl.storage.outputs import MARK


class MontageError(ValueError):
    """The galaxies' images cannot be found."""


def images_from_shards(shard_dir: str | os.PathLike, ids: list[str]) -> list[np.ndarray]:
    """(H, W, 3) uint8 images of ``ids`` from a shard set, in the order asked."""
    from hybridssl.data import IndexedShards
    from hybridssl.storage.shards import decode_key

    ds = IndexedShards(shard_dir)
    where = {decode_key(key): i for i, (_, key, _) in enumerate(ds.index)}
    missing = [i for i in ids if i not in where]
    if missing:
        raise MontageError(f"{shard_dir}: has no galaxy {', '.join(map(repr, missing[:5]))}"
                           f"{' ...' if len(missing) > 5 else ''}; pass the shard set the embeddings were "
                           "made from (--shards)")
    return [ds[where[i]]["image"].permute(1, 2, 0).numpy() for i in ids]


def images_from_files(paths: list[str]) -> list[np.ndarray]:
    from hybridssl.storage.images import load_image
    return [load_image(p) for p in paths]


def galaxy_images(emb, rows, shards: str | None = None) -> list[np.ndarray]:
    """Images of the embeddings' ``rows``: from ``shards``, the embedded shard set, or the catalog's files."""
    shards = shards or (emb.metadata.get("source") or {}).get("shards")
    if shards:
        return images_from_shards(shards, [emb.ids[r] for r in rows])
    if "path" in emb.meta_columns:
        return images_from_files(emb.meta_rows(rows)["path"].tolist())
    raise MontageError("the embeddings file names no shard set or image paths; pass --shards")


def save_montage(path: str | os.PathLike, images: list[np.ndarray], titles: list[str], suptitle: str = "",
                 ncols: int = 8) -> Path:
    """One panel per image, titled; written atomically."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    fig = Figure(figsize=(1.7 * ncols, 1.9 * nrows + (0.4 if suptitle else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, img, title in zip(axes, images, titles):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=6)
    for ax in axes:
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": MARK})  # ours to replace later
    return path
