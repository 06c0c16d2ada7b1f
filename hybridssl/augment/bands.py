"""BYOL views and evaluation preprocessing for float band images (``image.npy`` shards, any band count).

The stored bands are already normalised per band over the whole set (``data_prep/bands.py``:
sky median 0, sky noise 1, asinh), so the views are normalised with mean 0 and std 1 per band,
which is what ``export`` records. The augment preset is the RGB one, read this way:

- rotation, flips, resized crop, blur and Gaussian noise: as for RGB (Kornia handles any band
  count and never clips); ``noise_std`` is in the stored units (sky sigmas, asinh);
- colour jitter -> :class:`RandomBandScale` with probability ``jitter_p``: each band of each
  image times its own factor in ``[1 - brightness, 1 + brightness]``, a change of flux
  calibration and colour (RGB jitter clips to [0, 1], which float bands are not in);
- greyscale -> :class:`RandomBandMean` with probability ``greyscale_p``: every band replaced by
  the mean over bands, which removes colour and keeps morphology;
- solarize inverts intensities above 0.5 of an 8-bit range: refused for float bands.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import kornia.augmentation as K
import torch
from kornia.augmentation import IntensityAugmentationBase2D
from torch import nn

from hybridssl.augment.base import EvalBase, ViewsBase
from hybridssl.augment.config import AugmentConfig
from hybridssl.config import ConfigError


class RandomBandScale(IntensityAugmentationBase2D):
    """Each band of each chosen image times its own factor drawn from ``[1 - strength, 1 + strength]``."""

    def __init__(self, strength: float, p: float):
        super().__init__(p=p)
        self.strength = float(strength)

    def generate_parameters(self, batch_shape: torch.Size) -> Dict[str, torch.Tensor]:
        return {"factors": torch.empty(batch_shape[:2]).uniform_(1 - self.strength, 1 + self.strength)}

    def apply_transform(self, input: torch.Tensor, params: Dict[str, torch.Tensor], flags: Dict[str, Any],
                        transform: Optional[torch.Tensor] = None) -> torch.Tensor:
        return input * params["factors"].to(input)[..., None, None]


class RandomBandMean(IntensityAugmentationBase2D):
    """Every band of each chosen image replaced by the mean over its bands (greyscale for N bands)."""

    def __init__(self, p: float):
        super().__init__(p=p)

    def apply_transform(self, input: torch.Tensor, params: Dict[str, torch.Tensor], flags: Dict[str, Any],
                        transform: Optional[torch.Tensor] = None) -> torch.Tensor:
        return input.mean(1, keepdim=True).expand_as(input)


def band_normalisation(in_chans: int) -> tuple[list[float], list[float]]:
    """(mean, std) per band of normalised float bands: prepare already centred and scaled them."""
    return [0.0] * in_chans, [1.0] * in_chans


def _check(images: torch.Tensor, in_chans: int) -> torch.Tensor:
    if not images.is_floating_point() or images.ndim != 4 or images.shape[1] != in_chans:
        raise ValueError(f"expected a float (B, {in_chans}, H, W) band batch, got {images.dtype} "
                         f"{tuple(images.shape)}; were the shards prepared with another --image-format?")
    return images


class BandTwoViews(ViewsBase):
    """``forward(float (B, N, H, W)) -> (view1, view2)``, ``crop_size`` square, as the module doc says."""

    def __init__(self, cfg: AugmentConfig, in_chans: int):
        if any(cfg.solarize_p):
            raise ConfigError(f"augment.solarize_p={list(cfg.solarize_p)}: solarize is for 8-bit RGB; these "
                              f"shards hold {in_chans} float bands: set augment.solarize_p=[0.0,0.0]")
        super().__init__(cfg, *band_normalisation(in_chans))
        self.in_chans = in_chans
        s = cfg.crop_size
        # as the RGB views: geometry, per-band flux and noise first; blur only after the head's view
        self.undistorted = K.AugmentationSequential(
            K.RandomRotation(tuple(cfg.rotation_degrees), p=cfg.rotation_p),
            K.RandomHorizontalFlip(p=cfg.hflip_p),
            K.RandomVerticalFlip(p=cfg.vflip_p),
            K.RandomResizedCrop((s, s), scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio), p=1.0),
            RandomBandScale(cfg.brightness, p=cfg.jitter_p),
            RandomBandMean(p=cfg.greyscale_p),
            K.RandomGaussianNoise(mean=0.0, std=cfg.noise_std, p=cfg.noise_p),
        )
        self.distortions = nn.ModuleList(
            K.RandomGaussianBlur(cfg.blur_kernel, tuple(cfg.blur_sigma), p=cfg.blur_p[v]) if cfg.blur_p[v] > 0
            else nn.Identity() for v in (0, 1))

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return _check(images, self.in_chans)


class BandEvalTransform(EvalBase):
    """Resize the short side, centre crop, normalise (mean 0, std 1 per band)."""

    def __init__(self, cfg: AugmentConfig, in_chans: int):
        super().__init__(cfg, *band_normalisation(in_chans))
        self.in_chans = in_chans

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return _check(images, self.in_chans)
