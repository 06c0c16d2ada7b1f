"""The views and the eval transform for the data at hand: RGB for 8-bit shards and exports, bands
when the manifest (or an export's ``config.json``) records a float-band normalisation."""
from __future__ import annotations

from typing import Optional

from torch import nn

from hybridssl.augment.bands import BandEvalTransform, BandTwoViews
from hybridssl.augment.config import AugmentConfig
from hybridssl.augment.rgb import EvalTransform, TwoViews


def two_views(cfg: AugmentConfig, in_chans: int, bands: Optional[dict]) -> nn.Module:
    """The training views: ``bands`` is the manifest's normalisation, None for RGB shards."""
    return TwoViews(cfg) if bands is None else BandTwoViews(cfg, in_chans)


def eval_transform_for(cfg: AugmentConfig, info: dict) -> nn.Module:
    """The evaluation preprocessing for an export's ``config.json`` (``bands`` present: float bands)."""
    return EvalTransform(cfg) if info.get("bands") is None else BandEvalTransform(cfg, int(info["in_chans"]))
