"""Two BYOL views from one uint8 batch, on the training device, with Kornia.

Every probability is explicit in the presets (``configs/augment/galaxy.yaml``, the default: the
hybrid paper's recipe, no blur; ``byol_imagenet.yaml``: BYOL's, with blur and solarisation)
because Kornia's defaults (e.g. blur p=0.5, grayscale p=0.1) are not BYOL's. Parameters are
drawn per sample. Blur and solarize take one probability per view (BYOL's asymmetry: blur
1.0 / 0.1, solarize 0.0 / 0.2); everything else is shared. Rotation covers the full circle:
galaxies have no "up".

``hybridssl augment-preview`` saves a grid: originals, view 1, view 2 (one row each).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import kornia.augmentation as K
import torch
from omegaconf import MISSING
from torch import nn

from hybridssl.config import ConfigError


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


class TwoViews(nn.Module):
    """``forward(uint8 (B,3,H,W)) -> (view1, view2)``, float32 normalised, ``crop_size`` square.

    Each view is the shared recipe (rotation, flips, crop, colour, greyscale, noise) then, where
    its probability is not 0, blur and solarisation: distortions for BYOL only. The Dirichlet head
    reads view 1 *before* them (``with_head_view``, ``head_view``): votes describe the galaxy as
    seen, not a blurred or solarised one.
    """

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self._checked_size = None
        # nn.Sequential, not K.AugmentationSequential: the container reads each op's probability
        # back from the device to track output shapes (a host sync per op and call)
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
        self.normalize = K.Normalize(mean=torch.tensor(cfg.mean), std=torch.tensor(cfg.std), p=1.0)

    @staticmethod
    def _distortions(cfg: AugmentConfig, view: int) -> nn.Module:
        if cfg.blur_p[view] == 0 and cfg.solarize_p[view] == 0:
            return nn.Identity()
        return nn.Sequential(
            K.RandomGaussianBlur(cfg.blur_kernel, tuple(cfg.blur_sigma), p=cfg.blur_p[view]),
            K.RandomSolarize(thresholds=0.0, additions=0.0, p=cfg.solarize_p[view]),  # threshold exactly 0.5
        )

    def _apply(self, fn, *args, **kwargs):
        """Moving the views to a GPU moves Kornia's random generators there too; the blur's stay on
        the host, because Kornia reads each drawn sigma back to check it is positive (a host sync
        per call when drawn on the GPU; the CPU draw is copied over without waiting)."""
        out = super()._apply(fn, *args, **kwargs)
        for op in self.modules():
            if isinstance(op, K.RandomGaussianBlur):
                op.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)
        return out

    def _undistorted(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self._checked_size:  # image size is only known at the first batch
            self.cfg.check_image_size(min(images.shape[-2:]))
            self._checked_size = images.shape[-1]
        return self.recipe(_as_float(images))

    def with_head_view(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(view1, view2, head view): view 1 before blur and solarisation, the very ``view1``
        tensor when view 1 never gets them (then its backbone features can be shared)."""
        clean1, clean2 = self._undistorted(images), self._undistorted(images)
        v1 = self.normalize(self.distortions[0](clean1))
        v2 = self.normalize(self.distortions[1](clean2))
        return v1, v2, (v1 if isinstance(self.distortions[0], nn.Identity) else self.normalize(clean1))

    def head_view(self, images: torch.Tensor) -> torch.Tensor:
        """One undistorted view: what the Dirichlet head reads in supervised mode."""
        return self.normalize(self._undistorted(images))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.with_head_view(images)[:2]


class EvalTransform(nn.Module):
    """Deterministic: resize the short side to ``resize_size``, centre crop ``crop_size``, normalise."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        cfg.validate()
        self.pipeline = K.AugmentationSequential(
            K.Resize(cfg.resize_size, side="short", antialias=True, p=1.0),
            K.CenterCrop(cfg.crop_size, p=1.0),
            K.Normalize(mean=torch.tensor(cfg.mean), std=torch.tensor(cfg.std), p=1.0),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pipeline(_as_float(images))


def load_augment_config(name_or_path: str = "galaxy", overrides=()) -> AugmentConfig:
    """A shipped preset by name (``galaxy``, ``byol_imagenet``, ``minimal``) or a YAML path."""
    from hybridssl.config import load_config, resolve_config_path
    return load_config(AugmentConfig, resolve_config_path(name_or_path, "augment"), overrides)


# set by the data and the backbone, not by the recipe: swapping the recipe keeps them
SIZE_KEYS = ("crop_size", "resize_size", "blur_kernel", "mean", "std")


def recipe_overrides(name_or_path: str, section: str = "augment") -> list[str]:
    """``section.key=value`` overrides that set every recipe key (all but ``SIZE_KEYS``) of a preset:
    how ``hybridssl pretrain ... augment=byol_imagenet`` swaps a run's recipe."""
    cfg = load_augment_config(name_or_path)
    return [f"{section}.{k}={getattr(cfg, k)}" for k in AugmentConfig.__dataclass_fields__ if k not in SIZE_KEYS]


# -- hybridssl augment-preview --------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shard-set directory to take images from")
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("--config", default="galaxy", help="augment preset name or YAML path (default: galaxy)")
    parser.add_argument("--n", type=int, default=8, help="number of images (columns), default 8")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the views, default 0")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. crop_size=128")


def preview_grid(images: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """uint8 (3, H', W') grid: row 1 originals resized to crop_size, rows 2-3 the two views."""
    from torchvision.utils import make_grid
    v1, v2 = TwoViews(cfg)(images)
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1)
    views = [(v * std + mean).clamp(0, 1) for v in (v1, v2)]
    originals = nn.functional.interpolate(images.float() / 255, size=(cfg.crop_size,) * 2, mode="bilinear",
                                          antialias=True, align_corners=False)
    grid = make_grid(torch.cat([originals, *views]), nrow=len(images), padding=2, pad_value=1.0)
    return (grid * 255).round().to(torch.uint8)


def run(args) -> int:
    from PIL import Image

    from hybridssl.atomic import atomic_path
    from hybridssl.data import IndexedShards

    cfg = load_augment_config(args.config, args.overrides)
    data = IndexedShards(args.shards)
    n = min(args.n, len(data))
    if n < 1:
        raise ConfigError(f"--n must be >= 1 and {args.shards} must hold samples")
    torch.manual_seed(args.seed)
    images = torch.stack([data[i]["image"] for i in range(n)])
    grid = preview_grid(images, cfg)
    with atomic_path(args.out) as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    print(f"wrote {args.out}: {n} originals and their two views ({cfg.crop_size} px)")
    return 0
