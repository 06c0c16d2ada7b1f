"""Two BYOL views of a uint8 RGB batch, on the training device, with Kornia.

Parameters are drawn per sample. Blur and solarize take one probability per view (BYOL's
asymmetry: blur 1.0 / 0.1, solarize 0.0 / 0.2); everything else is shared. Rotation covers the
full circle: galaxies have no "up".
"""
from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from hybridssl.augment.base import EvalBase, ViewsBase
from hybridssl.augment.config import AugmentConfig


def _as_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 (B, 3, H, W) batch, got {images.dtype} {tuple(images.shape)}")
    return images.float().div_(255)


class HostOrderColorJitter(K.ColorJitter):
    """Kornia's ColorJitter, its random order of the four adjustments drawn on the host per call.

    Kornia draws that order on the device and reads it back, then asks the device whether each
    factor differs from neutral: five host syncs per call. With a fixed order it runs one
    branch-free path (every adjustment computed, each kept with ``torch.where``), so here the order
    is fixed anew for each call from torch's CPU generator: the same distribution, one order per batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, order=(0, 1, 2, 3), **kwargs)

    def forward(self, *args, **kwargs):
        self._fixed_order = tuple(torch.randperm(4).tolist())  # kornia's attribute behind ``order``
        return super().forward(*args, **kwargs)


class TwoViews(ViewsBase):
    """``forward(uint8 (B,3,H,W)) -> (view1, view2)``, float32 normalised, ``crop_size`` square.

    Each view is the shared recipe (rotation, flips, crop, colour, greyscale, noise) then, where
    its probability is not 0, blur and solarisation: distortions for BYOL only.
    """

    def __init__(self, cfg: AugmentConfig):
        super().__init__(cfg, cfg.mean, cfg.std)
        # nn.Sequential, not K.AugmentationSequential: the container reads each op's probability
        # back from the device to track output shapes (a host sync per op and call). The name
        # ``recipe`` is in checkpoints' state dicts (the rotation's range).
        self.recipe = nn.Sequential(
            K.RandomRotation(tuple(cfg.rotation_degrees), p=cfg.rotation_p),
            K.RandomHorizontalFlip(p=cfg.hflip_p),
            K.RandomVerticalFlip(p=cfg.vflip_p),
            K.RandomResizedCrop((cfg.crop_size,) * 2, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio), p=1.0),
            HostOrderColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, p=cfg.jitter_p),
            K.RandomGrayscale(p=cfg.greyscale_p),
            K.RandomGaussianNoise(mean=0.0, std=cfg.noise_std, p=cfg.noise_p),
        )
        self.distortions = nn.ModuleList(self._distortions(cfg, v) for v in (0, 1))

    @staticmethod
    def _distortions(cfg: AugmentConfig, view: int) -> nn.Module:
        if cfg.blur_p[view] == 0 and cfg.solarize_p[view] == 0:
            return nn.Identity()
        return nn.Sequential(
            K.RandomGaussianBlur(cfg.blur_kernel, tuple(cfg.blur_sigma), p=cfg.blur_p[view]),
            K.RandomSolarize(thresholds=0.0, additions=0.0, p=cfg.solarize_p[view]),  # threshold exactly 0.5
        )

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return _as_float(images)

    def _clean(self, images: torch.Tensor) -> torch.Tensor:
        return self.recipe(images)

    def _apply(self, fn, *args, **kwargs):
        """Moving the views to a GPU moves Kornia's random generators there too; the blur's stay on
        the host, because Kornia reads each drawn sigma back to check it is positive (a host sync
        per call when drawn on the GPU; the CPU draw is copied over without waiting)."""
        out = super()._apply(fn, *args, **kwargs)
        for op in self.modules():
            if isinstance(op, K.RandomGaussianBlur):
                op.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)
        return out


class EvalTransform(EvalBase):
    """Resize the short side to ``resize_size``, centre crop ``crop_size``, normalise with the preset's mean/std."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__(cfg, cfg.mean, cfg.std)

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return _as_float(images)
