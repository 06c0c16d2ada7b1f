"""Supervised losses on Galaxy Zoo votes (the self-supervised BYOL loss comes from lightly)."""
from hybridssl.losses.dirichlet import (
    campaign_losses,
    campaign_voted_galaxies,
    dirichlet_multinomial_loss,
    dirichlet_multinomial_nll,
    question_totals,
    reduce_over_voted,
    validate_counts,
)

__all__ = [
    "campaign_losses",
    "campaign_voted_galaxies",
    "dirichlet_multinomial_loss",
    "dirichlet_multinomial_nll",
    "question_totals",
    "reduce_over_voted",
    "validate_counts",
]
