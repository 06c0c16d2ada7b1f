"""BYOL's loss in this project's convention: 2 - 2 cos per direction, both directions summed.

Each view's online prediction is pulled towards the momentum target's projection of the *other*
view: ``4 - 2 cos(p1, z2) - 2 cos(p2, z1)``, in [0, 8], 0 when both pairs agree. The hybrid
paper's code logs the negative mean cosine instead (-c, in [-1, 1]); ``mean_cosine`` converts.
"""
from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity

_negative_cosine = NegativeCosineSimilarity()  # -mean cos over the batch; stateless


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Symmetric BYOL loss of online predictions ``p1``/``p2`` and target projections ``z1``/``z2``
    (row i of each is image i; 1 and 2 are its two views). The targets get no gradient."""
    z1, z2 = z1.detach(), z2.detach()
    return (2 + 2 * _negative_cosine(p1, z2)) + (2 + 2 * _negative_cosine(p2, z1))


def mean_cosine(byol: torch.Tensor) -> torch.Tensor:
    """The mean cosine similarity c behind a ``byol_loss`` value: 4 - 4c = loss."""
    return 1 - byol / 4
