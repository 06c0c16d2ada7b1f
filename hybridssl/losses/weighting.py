"""How the BYOL and vote losses add up into one training objective (every mode)."""
from __future__ import annotations

import torch

from hybridssl.losses.byol import mean_cosine

WEIGHTINGS = ("magnitude_matched", "fixed")


def combine_losses(byol: torch.Tensor | None, sup: torch.Tensor | None, weighting: str,
                   weight: float) -> torch.Tensor:
    """The training objective; ``byol`` in ``byol_loss``'s 0-8 convention, ``sup`` the vote loss.

    ``magnitude_matched`` (the hybrid paper's code): the paper adds ``weight * |C| / L_sup * L_sup``
    where C is its BYOL loss, the negative mean cosine -c. Here that coefficient is computed from
    our convention, c = |1 - byol / 4|, both factors detached, so the gradient reaching ``sup`` is
    ``weight * c / sup``, as in the paper. (Rescaling by ``byol`` itself, 4 - 4c, would multiply
    the vote gradient by (1 - c) / c: it vanishes as the views come to agree.)
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
        c = mean_cosine(byol.detach()).abs()
        ratio = torch.where(denom > 0, c / denom.clamp_min(1e-12), torch.zeros_like(denom))
        return byol + weight * ratio * sup
    raise ValueError(f"loss.weighting {weighting!r}: choose one of {WEIGHTINGS}")
