"""How the BYOL and vote losses add up into one training objective (every mode).

``loss.supervised_weight`` is the hybrid paper's weight w. The paper's objective is
``C + w * |C| / L_sup * L_sup`` with C its BYOL loss, the negative mean cosine (-c, in [-1, 1]).
This project's ``byol_loss`` is ``4 - 4c = 4 + 4C`` (both directions of 2 - 2cos, lightly's
convention), so the objective here is the paper's times ``BYOL_SCALE`` (plus a constant): the vote
term is scaled by the same 4 and w keeps the paper's meaning.
"""
from __future__ import annotations

import torch

from hybridssl.model.losses.byol import mean_cosine

WEIGHTINGS = ("magnitude_matched", "fixed")
BYOL_SCALE = 4.0  # d byol_loss / d C: our BYOL loss is 4 + 4C in the paper's C


def combine_losses(byol: torch.Tensor | None, sup: torch.Tensor | None, weighting: str,
                   weight: float) -> torch.Tensor:
    """The training objective; ``byol`` in ``byol_loss``'s 0-8 convention, ``sup`` the vote loss,
    ``weight`` the paper's w.

    ``magnitude_matched`` (the hybrid paper's code): ``BYOL_SCALE * (C + w * |C| / L_sup * L_sup)``
    up to a constant, both factors of the coefficient detached, so the gradient reaching ``sup`` is
    ``4 w c / sup`` beside BYOL's ``4 dC``, the paper's ratio. (Rescaling by ``byol`` itself, 4 - 4c,
    would multiply the vote gradient by (1 - c) / c: it vanishes as the views come to agree.)
    ``fixed``: ``BYOL_SCALE * (C + w * sup)``. With one term missing, the other alone.
    """
    if byol is None and sup is None:
        raise ValueError("combine_losses needs at least one of byol and sup")
    if sup is None:
        return byol
    if byol is None:
        return sup
    if weighting == "fixed":
        return byol + BYOL_SCALE * weight * sup
    if weighting == "magnitude_matched":
        denom = sup.detach()
        c = mean_cosine(byol.detach()).abs()
        ratio = torch.where(denom > 0, c / denom.clamp_min(1e-12), torch.zeros_like(denom))
        return byol + BYOL_SCALE * weight * ratio * sup
    raise ValueError(f"loss.weighting {weighting!r}: choose one of {WEIGHTINGS}")
