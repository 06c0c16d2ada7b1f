"""Float images with all their bands, for ``prepare --image-format npy``.

Each sample's ``image.npy`` is a float16 ``(bands, H, W)`` array: every plane or image HDU of a
FITS file, or every channel of a PNG/TIFF (16-bit kept at full depth), normalised per band
with one pair of numbers per band for the whole shard set, written to ``manifest.json`` under
``bands``:

- ``median[b]``: the median of band b's good pixels over a sample of the set's images (most
  pixels of a cutout are sky, so this is the sky level);
- ``scale[b]``: 1.4826 x their median absolute deviation from it (the sky noise, robust to the
  galaxies);
- stored value ``asinh((raw - median[b]) / scale[b])`` with ``stretch: asinh`` (linear with a
  softening of one sky sigma, logarithmic in bright cores), or ``(raw - median[b]) / scale[b]``
  with ``stretch: linear``; invert with ``raw = median[b] + scale[b] * sinh(stored)``.

PNG/TIFF values are first divided by their type's full scale (255 for 8-bit, 65535 for 16-bit),
so 8- and 16-bit images of one catalog land on one brightness scale. A band with no finite,
non-zero pixel in the sample is a catalog error naming the band; an image with no valid pixel
in any band is rejected like the RGB path's. Set-wide numbers (not per image) keep fluxes comparable between galaxies and the flux ratios
between bands (colours); sky-noise units put bands of different depths on one footing. Bad
pixels (NaN, inf; in FITS also exact zeros, where DECaLS has no coverage) become the band's
median, 0 once normalised. FITS rows are flipped so north is up, as in the RGB path. Each band
is then resized (Lanczos) like the RGB images. The sample is up to ``band_stats_images``
images spread evenly over the catalog, at most ``_PIXELS_PER_IMAGE`` pixels each per band;
its band count (the most common) is the set's, and an image with another count is rejected.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from hybridssl.storage.images import ImageError, load_bands, resize_square
from hybridssl.storage.shards import encode_array

NPY_FORMAT = "npy"
_PIXELS_PER_IMAGE = 4096
_MAD_TO_SIGMA = 1.4826  # a Gaussian's sigma over its median absolute deviation
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _good(a: np.ndarray, fits: bool) -> np.ndarray:
    good = np.isfinite(a)
    return good & (a != 0) if fits else good


def band_stats(paths, n_images: int, stretch: str) -> dict:
    """The set's normalisation (the manifest's ``bands``) from up to ``n_images`` of ``paths``."""
    pick = np.unique(np.linspace(0, len(paths) - 1, min(n_images, len(paths))).round().astype(int))
    samples = []
    for i in pick:
        try:
            a, fits = load_bands(paths[i])
        except ImageError:
            continue  # the write pass rejects it with its reason
        good = _good(a, fits)
        samples.append([v[:: max(1, v.size // _PIXELS_PER_IMAGE)] for v in (b[g] for b, g in zip(a, good))])
    if not samples:
        raise ImageError(f"none of the {len(pick)} images sampled for the band statistics loads")
    n_bands = Counter(len(s) for s in samples).most_common(1)[0][0]
    medians, scales = [], []
    for b in range(n_bands):
        values = np.concatenate([s[b] for s in samples if len(s) == n_bands])
        if not values.any():  # no coverage anywhere: its median and scale would be NaN or 0
            raise ImageError(f"band {b} has no finite, non-zero pixel in any of the {len(samples)} images "
                             "sampled for the band statistics; drop that band or fix the images")
        median = float(np.median(values))
        scale = _MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
        medians.append(median)
        scales.append(scale if scale > 0 else float(np.std(values)) or 1.0)  # a constant band stays finite
    return {"n_bands": n_bands, "median": medians, "scale": scales, "stretch": stretch,
            "sample_images": len(samples)}


def normalise_bands(a: np.ndarray, fits: bool, bands: dict) -> np.ndarray:
    """Raw ``(bands, H, W)`` -> normalised float64, as the module docstring says."""
    median = np.asarray(bands["median"])[:, None, None]
    x = (np.where(_good(a, fits), a, median) - median) / np.asarray(bands["scale"])[:, None, None]
    if bands["stretch"] == "asinh":
        x = np.arcsinh(x)
    return x[:, ::-1] if fits else x


def prepare_bands(path, size: int, bands: dict) -> bytes:
    """The one call per sample: load every band, normalise, resize once, encode float16 ``.npy``."""
    a, fits = load_bands(path)
    if not (_good(a, fits) & (a != 0)).any():  # as the RGB path: a blank image is no training image
        raise ImageError(f"image has no valid pixels (all NaN, inf or zero): {path}")
    if a.shape[0] != bands["n_bands"]:
        raise ImageError(f"image has {a.shape[0]} bands, the set has {bands['n_bands']} "
                         f"(the most common count in its band-statistics sample): {path}")
    x = normalise_bands(a, fits, bands).astype(np.float32)
    x = np.stack([resize_square(b, size) for b in x])
    return encode_array(np.clip(x, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16))
