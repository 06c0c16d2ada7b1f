"""Baselines measured from the pixels, without a network: what a backbone has to beat.

``photometric_features`` gives eight numbers per image, all from the task's shard images (the
very pixels the backbones see), computed in this order:

0. ``log_flux``: log of the total sky-subtracted flux. Brightness is the mean of the three channels
   (scaled to 0..1); the sky is the median brightness outside 0.45 of the image size from the centre,
   subtracted and clipped at 0.
1. ``r50``: half-light radius, the smallest distance from the centre (pixels) enclosing half the flux.
2. ``concentration``: ``r80 / (r20 + 1)``, with r20, r80 the radii enclosing 20% and 80% of the flux
   (the +1 pixel keeps a point source finite).
3. ``colour_01``: ``log((c0 + 1e-3) / (c1 + 1e-3))``, with c0, c1, c2 the mean of each channel within
   0.2 of the image size from the centre (for SDSS/DECaLS colour images: red over green).
4. ``colour_12``: ``log((c1 + 1e-3) / (c2 + 1e-3))`` (green over blue).
5. ``central_brightness``: the mean sky-subtracted brightness of the central 4x4 pixels.
6. ``central_first``: c0, the central mean of the first channel.
7. ``central_last``: c2, the central mean of the last channel.

Every number depends on the distance from the image centre only (no direction), so rotating or
flipping an image by the square's symmetries leaves them unchanged. The colour-only baseline is
columns 3 and 4.
"""
from __future__ import annotations

import os

import numpy as np
import torch

NAMES = ("log_flux", "r50", "concentration", "colour_01", "colour_12", "central_brightness", "central_first",
         "central_last")
COLOURS = ("colour_01", "colour_12")
SKY_RADIUS, CENTRAL_RADIUS, EPS = 0.45, 0.2, 1e-3  # as fractions of the image size; EPS keeps logs finite


def photometric_features(images: np.ndarray) -> np.ndarray:
    """(n, 8) float64 (see the module docstring) of uint8 RGB images (n, 3, H, W)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"photometric baseline: needs RGB images (n, 3, H, W), got shape {images.shape}")
    x = images.astype(np.float64) / 255.0
    n, _, h, w = x.shape
    radius = np.hypot(*np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij"))
    brightness = x.mean(axis=1)                                                     # (n, H, W)
    sky = np.median(brightness[:, radius > SKY_RADIUS * h], axis=1)
    light = np.clip(brightness - sky[:, None, None], 0.0, None)

    by_radius = np.argsort(radius, axis=None, kind="stable")
    enclosed = np.cumsum(light.reshape(n, -1)[:, by_radius], axis=1)              # flux within each pixel's radius
    total = enclosed[:, -1] + 1e-9
    radii = radius.ravel()[by_radius]
    r20, r50, r80 = (radii[np.argmax(enclosed >= q * total[:, None], axis=1)] for q in (0.2, 0.5, 0.8))

    centre = x[:, :, radius < CENTRAL_RADIUS * h].mean(axis=2)                       # (n, 3): c0, c1, c2
    core = light[:, h // 2 - 2:h // 2 + 2, w // 2 - 2:w // 2 + 2].mean(axis=(1, 2))
    colour_01 = np.log((centre[:, 0] + EPS) / (centre[:, 1] + EPS))
    colour_12 = np.log((centre[:, 1] + EPS) / (centre[:, 2] + EPS))
    return np.column_stack([np.log(total), r50, r80 / (r20 + 1), colour_01, colour_12, core, centre[:, 0],
                            centre[:, 2]])


def pixel_baselines(shard_dir: str | os.PathLike, batch_size: int = 256) -> tuple[list[str], dict[str, np.ndarray]]:
    """(ids in shard order, {"photometric": (n, 8), "colour": (n, 2)}) from a shard set's images."""
    from hybridssl.evaluate.features import image_batches

    ids, rows = [], []
    for batch in image_batches(shard_dir, batch_size):
        if batch["image"].dtype != torch.uint8:
            raise ValueError(f"{shard_dir}: the photometric baseline needs 8-bit RGB shards; this set holds "
                             f"float bands (drop photometric and colour from 'baselines')")
        rows.append(photometric_features(batch["image"].numpy()))
        ids += batch["id_str"]
    x = np.concatenate(rows)
    return ids, {"photometric": x, "colour": x[:, [NAMES.index(c) for c in COLOURS]]}

