"""``hybridssl augment-preview``: a grid of originals and their two augmented views (one row each)."""
from __future__ import annotations

import torch
from torch import nn

from hybridssl.augment.config import AugmentConfig, load_augment_config
from hybridssl.augment.rgb import TwoViews
from hybridssl.config import ConfigError


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

    from hybridssl.storage.atomic import atomic_path
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
