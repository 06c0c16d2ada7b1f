"""The pretraining model: one timm backbone with the parts each mode needs.

- ``hybrid``: BYOL branch (projection, prediction, momentum target) + Dirichlet head on votes;
- ``byol``: BYOL branch only; ``supervised``: Dirichlet head only; ``scratch``: backbone only.

The mode decides which submodules exist, so a checkpoint holds exactly what was trained and
``export`` reads the online backbone from the same keys in every mode.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

import timm
import torch
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from omegaconf import MISSING
from torch import nn

from hybridssl.config import ConfigError
from hybridssl.model.heads import DirichletHead
from hybridssl.model.losses import byol_loss, dirichlet_multinomial_loss
from hybridssl.schema import Schema

MODES = ("hybrid", "byol", "supervised", "scratch")


@dataclass
class ModelConfig:
    backbone: str = MISSING               # any name in timm.list_models()
    backbone_kwargs: dict[str, Any] = MISSING  # more timm.create_model arguments, e.g. img_size for ViTs
    in_chans: Optional[int] = MISSING     # null: from the shard sets' manifests (pretrain resolves it)
    channels_last: bool = MISSING         # faster convolutions on CPU (bf16) and GPU
    projection_hidden_dim: int = MISSING  # BYOL paper 4096, the hybrid paper's code 1024
    projection_dim: int = MISSING
    prediction_hidden_dim: int = MISSING
    head_dropout: float = MISSING


def backbone_args(cfg: ModelConfig) -> dict:
    """``timm.create_model`` arguments besides the name: also the export's ``model_args``, so
    ``timm.create_model("local-dir:EXPORT")`` rebuilds the same backbone."""
    taken = sorted(set(cfg.backbone_kwargs) & {"num_classes", "in_chans", "pretrained"})
    if taken:
        raise ConfigError(f"model.backbone_kwargs may not set {taken}: the pretraining sets them "
                          "(in_chans: model.in_chans)")
    return {**cfg.backbone_kwargs, "num_classes": 0, "in_chans": cfg.in_chans}


def uses_byol(mode: str) -> bool:
    return mode in ("hybrid", "byol")


def uses_votes(mode: str) -> bool:
    return mode in ("hybrid", "supervised")


class HybridModel(nn.Module):
    """Online backbone (+ BYOL projection/prediction and momentum target) (+ Dirichlet head)."""

    def __init__(self, cfg: ModelConfig, mode: str, n_answers: int):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: choose one of {MODES}")
        self.mode = mode
        self.backbone = timm.create_model(cfg.backbone, pretrained=False, **backbone_args(cfg))
        width = self.backbone.num_features
        if uses_byol(mode):
            self.projection = BYOLProjectionHead(width, cfg.projection_hidden_dim, cfg.projection_dim)
            self.prediction = BYOLPredictionHead(cfg.projection_dim, cfg.prediction_hidden_dim, cfg.projection_dim)
            self.target_backbone = copy.deepcopy(self.backbone)
            self.target_projection = copy.deepcopy(self.projection)
            deactivate_requires_grad(self.target_backbone)
            deactivate_requires_grad(self.target_projection)
        if uses_votes(mode):
            self.head = DirichletHead(width, n_answers, cfg.head_dropout)

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled online-backbone features (B, num_features)."""
        return self.backbone(x)

    def byol_loss(self, features: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """``hybridssl.model.losses.byol_loss`` of a batch's two views, stacked: ``views`` is
        ``cat([view1, view2])`` and ``features`` the online backbone's output for it (computed once
        by the caller and shared with the Dirichlet head). Online heads and target network each
        run both views in one pass, so their BatchNorm layers see the same rows. Range [0, 8].
        """
        p1, p2 = self.prediction(self.projection(features)).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target_projection(self.target_backbone(views)).chunk(2)
        return byol_loss(p1, p2, z1, z2)

    def supervised_loss(self, features: torch.Tensor, votes: torch.Tensor, has_votes: torch.Tensor,
                        schema: Schema) -> tuple[torch.Tensor, torch.Tensor]:
        """Dirichlet-multinomial loss on the rows with votes; returns (loss, concentrations of every row).

        Rows without votes get all-zero counts, which the loss's reduction leaves out of the sum
        and the mean (``reduce_over_voted``): a mask instead of ``any()`` and boolean indexing, so
        the step never waits for the GPU. The head runs on every row, so its parameters are always
        in the graph (DDP needs that on a rank whose batch has no votes); such a batch gives an exact 0.
        """
        conc = self.head(features)
        votes = votes * has_votes.unsqueeze(1).to(votes.dtype)
        return dirichlet_multinomial_loss(conc, votes, schema, validate=False), conc

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA of the online backbone and projection into the target (BYOL's momentum encoder)."""
        update_momentum(self.backbone, self.target_backbone, momentum)
        update_momentum(self.projection, self.target_projection, momentum)
