"""The pretraining model: one timm backbone with the parts each mode needs.

- ``hybrid``: BYOL branch (projection, prediction, momentum target) + Dirichlet head on votes;
- ``byol``: BYOL branch only; ``supervised``: Dirichlet head only; ``scratch``: backbone only.

The mode decides which submodules exist, so a checkpoint holds exactly what was trained and
``export`` reads the online backbone from the same keys in every mode.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import timm
import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from omegaconf import MISSING
from torch import nn

from hybridssl.heads import DirichletHead
from hybridssl.losses import dirichlet_multinomial_loss
from hybridssl.schema import Schema

MODES = ("hybrid", "byol", "supervised", "scratch")
WEIGHTINGS = ("magnitude_matched", "fixed")


@dataclass
class ModelConfig:
    backbone: str = MISSING               # any name in timm.list_models()
    in_chans: Optional[int] = MISSING     # null: from the shard sets' manifests (pretrain resolves it)
    channels_last: bool = MISSING         # faster convolutions on CPU (bf16) and GPU
    projection_hidden_dim: int = MISSING  # BYOL paper 4096, the hybrid paper's code 1024
    projection_dim: int = MISSING
    prediction_hidden_dim: int = MISSING
    momentum_start: float = MISSING       # target momentum at step 0; cosine to 1 at the last step
    head_dropout: float = MISSING


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
        self.backbone = timm.create_model(cfg.backbone, pretrained=False, num_classes=0, in_chans=cfg.in_chans)
        width = self.backbone.num_features
        if uses_byol(mode):
            self.projection = BYOLProjectionHead(width, cfg.projection_hidden_dim, cfg.projection_dim)
            self.prediction = BYOLPredictionHead(cfg.projection_dim, cfg.prediction_hidden_dim, cfg.projection_dim)
            self.target_backbone = copy.deepcopy(self.backbone)
            self.target_projection = copy.deepcopy(self.projection)
            deactivate_requires_grad(self.target_backbone)
            deactivate_requires_grad(self.target_projection)
            self.negative_cosine = NegativeCosineSimilarity()
        if uses_votes(mode):
            self.head = DirichletHead(width, n_answers, cfg.head_dropout)

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled online-backbone features (B, num_features)."""
        return self.backbone(x)

    def byol_loss(self, f1: torch.Tensor, f2: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """Symmetric BYOL loss, each direction 2 - 2 cos(prediction, target projection), summed.

        ``f1``/``f2`` are the online features of views ``v1``/``v2`` (computed once by the
        caller and shared with the Dirichlet head). Range [0, 8].
        """
        p1 = self.prediction(self.projection(f1))
        p2 = self.prediction(self.projection(f2))
        with torch.no_grad():
            z1 = self.target_projection(self.target_backbone(v1))
            z2 = self.target_projection(self.target_backbone(v2))
        return (2 + 2 * self.negative_cosine(p1, z2)) + (2 + 2 * self.negative_cosine(p2, z1))

    def supervised_loss(self, features: torch.Tensor, votes: torch.Tensor, has_votes: torch.Tensor,
                        schema: Schema) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dirichlet-multinomial loss on the rows with votes; returns (loss, concentrations of those rows).

        The head runs on every row so its parameters are always in the graph (DDP needs that on
        a rank whose batch happens to have no votes); such a batch gives an exact 0.
        """
        conc = self.head(features)
        if not bool(has_votes.any()):
            return conc.sum() * 0.0, None
        conc, votes = conc[has_votes], votes[has_votes]
        return dirichlet_multinomial_loss(conc, votes, schema, validate=False), conc

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA of the online backbone and projection into the target (BYOL's momentum encoder)."""
        update_momentum(self.backbone, self.target_backbone, momentum)
        update_momentum(self.projection, self.target_projection, momentum)


def combine_losses(byol: torch.Tensor | None, sup: torch.Tensor | None, weighting: str,
                   weight: float) -> torch.Tensor:
    """The training objective of every mode.

    ``magnitude_matched`` (the hybrid paper's code): the supervised term rescaled to the BYOL
    loss's magnitude, times ``weight``; the ratio is detached so it only sets the gradient scale.
    ``fixed``: ``byol + weight * sup``. With one term missing, the other alone.
    """
    if byol is None and sup is None:
        raise ValueError("combine_losses needs at least one of byol and sup")
    if sup is None:
        return byol
    if byol is None:
        return sup
    if weighting == "fixed":
        return byol + weight * sup
    if weighting == "magnitude_matched":
        denom = sup.detach()
        ratio = torch.where(denom > 0, byol.detach() / denom.clamp_min(1e-12), torch.zeros_like(denom))
        return byol + weight * ratio * sup
    raise ValueError(f"loss.weighting {weighting!r}: choose one of {WEIGHTINGS}")
