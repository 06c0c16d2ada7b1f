"""The augmentation recipe: ``AugmentConfig`` (every key of ``configs/augment/*.yaml``), its checks,
and how a preset's recipe replaces a run's (``augment=physical``) while the sizes stay the data's.

Every probability is explicit in the presets (``galaxy.yaml``, the default: the hybrid paper's
recipe, no blur; ``physical.yaml``; ``byol_imagenet.yaml``: BYOL's, with blur and solarisation)
because Kornia's defaults (e.g. blur p=0.5, grayscale p=0.1) are not BYOL's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from omegaconf import MISSING

from hybridssl.config import ConfigError, load_config, resolve_config_path


@dataclass
class AugmentConfig:
    crop_size: int = MISSING                 # output side, pixels
    crop_scale: List[float] = MISSING        # area fraction range of the random resized crop
    crop_ratio: List[float] = MISSING        # aspect ratio range
    rotation_degrees: List[float] = MISSING  # angle range, e.g. [0, 360]
    rotation_p: float = MISSING
    hflip_p: float = MISSING
    vflip_p: float = MISSING
    brightness: float = MISSING
    contrast: float = MISSING
    saturation: float = MISSING
    hue: float = MISSING
    jitter_p: float = MISSING
    greyscale_p: float = MISSING
    blur_kernel: int = MISSING               # odd, pixels at crop_size
    blur_sigma: List[float] = MISSING
    blur_p: List[float] = MISSING            # [view 1, view 2]
    solarize_p: List[float] = MISSING        # [view 1, view 2]; threshold 0.5 as in BYOL
    noise_std: float = MISSING               # on [0, 1] pixel values
    noise_p: float = MISSING
    resize_size: int = MISSING               # EvalTransform: resize the short side, then centre crop
    mean: List[float] = MISSING
    std: List[float] = MISSING

    def validate(self) -> None:
        def pair(key, lo=None, hi=None):
            v = getattr(self, key)
            if len(v) != 2 or v[0] > v[1] or (lo is not None and v[0] < lo) or (hi is not None and v[1] > hi):
                raise ConfigError(f"augment.{key} must be [low, high] with low <= high"
                                  f"{f' within [{lo}, {hi}]' if lo is not None else ''}, got {list(v)}")
        pair("crop_scale", 0.0, 1.0)
        pair("crop_ratio", 1e-6)
        pair("rotation_degrees")
        pair("blur_sigma", 1e-6)
        probs = {k: getattr(self, k) for k in ("rotation_p", "hflip_p", "vflip_p", "jitter_p", "greyscale_p",
                                               "noise_p")}
        probs.update({f"{k}[{i}]": p for k in ("blur_p", "solarize_p") for i, p in enumerate(getattr(self, k))})
        for k, p in probs.items():
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"augment.{k} is a probability, got {p}")
        for k in ("blur_p", "solarize_p"):
            if len(getattr(self, k)) != 2:
                raise ConfigError(f"augment.{k} needs one probability per view, got {list(getattr(self, k))}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0 or self.blur_kernel > self.crop_size:
            raise ConfigError(f"augment.blur_kernel must be odd, positive and <= augment.crop_size "
                              f"({self.crop_size}), got {self.blur_kernel} (BYOL: about 10% of the crop)")
        if self.crop_size < 1 or self.resize_size < self.crop_size:
            raise ConfigError(f"augment.crop_size ({self.crop_size}) must be >= 1 and <= augment.resize_size "
                              f"({self.resize_size})")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"augment.mean/std need 3 values each (std > 0), got {self.mean} / {self.std}")

    def check_image_size(self, image_size: int) -> None:
        """A crop larger than the stored image would only upsample noise: refuse it."""
        if self.crop_size > image_size:
            raise ConfigError(f"augment.crop_size ({self.crop_size}) is larger than the images "
                              f"({image_size} px); lower augment.crop_size or prepare larger shards")


def load_augment_config(name_or_path: str = "galaxy", overrides=()) -> AugmentConfig:
    """A shipped preset by name (``galaxy``, ``byol_imagenet``, ``minimal``) or a YAML path."""
    return load_config(AugmentConfig, resolve_config_path(name_or_path, "augment"), overrides)


# set by the data and the backbone, not by the recipe: swapping the recipe keeps them
SIZE_KEYS = ("crop_size", "resize_size", "blur_kernel", "mean", "std")


def recipe_overrides(name_or_path: str, section: str = "augment") -> list[str]:
    """``section.key=value`` overrides that set every recipe key (all but ``SIZE_KEYS``) of a preset:
    how ``hybridssl pretrain ... augment=byol_imagenet`` swaps a run's recipe."""
    cfg = load_augment_config(name_or_path)
    return [f"{section}.{k}={getattr(cfg, k)}" for k in AugmentConfig.__dataclass_fields__ if k not in SIZE_KEYS]
