"""The training losses: BYOL (self-supervised), Dirichlet-multinomial on Galaxy Zoo votes, and
how the two combine."""
from hybridssl.model.losses.byol import byol_loss, mean_cosine
from hybridssl.model.losses.dirichlet import (
    campaign_losses,
    campaign_voted_galaxies,
    dirichlet_multinomial_loss,
    dirichlet_multinomial_nll,
    question_totals,
    reduce_over_voted,
    validate_counts,
)
from hybridssl.model.losses.weighting import WEIGHTINGS, combine_losses

__all__ = [
    "WEIGHTINGS",
    "byol_loss",
    "campaign_losses",
    "campaign_voted_galaxies",
    "combine_losses",
    "dirichlet_multinomial_loss",
    "dirichlet_multinomial_nll",
    "mean_cosine",
    "question_totals",
    "reduce_over_voted",
    "validate_counts",
]
