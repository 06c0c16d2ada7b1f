"""The supervised head: backbone features -> Dirichlet concentrations for every answer."""
from __future__ import annotations

import torch
from torch import nn

from hybridssl.schema import Schema

# As in the published Galaxy Zoo models: concentrations in (1, 1 + MAX_EXTRA_CONCENTRATION).
MAX_EXTRA_CONCENTRATION = 100.0


class DirichletHead(nn.Module):
    """dropout -> linear -> 1 + 100 * sigmoid: (B, in_features) -> (B, n_answers) in (1, 101).

    A floor of 1 keeps each answer's Dirichlet unimodal-or-flat; the ceiling stops one galaxy from
    claiming arbitrarily confident votes. The sigmoid runs in float32 at least, so under bf16
    autocast concentrations are not rounded to bf16's coarse steps near 100.
    """

    def __init__(self, in_features: int, n_answers: int, dropout: float):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, n_answers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.linear(self.dropout(features))
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return 1.0 + MAX_EXTRA_CONCENTRATION * torch.sigmoid(logits)


def dirichlet_mean(concentrations: torch.Tensor, schema: Schema) -> torch.Tensor:
    """(B, n_answers) expected vote fraction of each answer within its question: a_k / sum_q a."""
    qidx = torch.as_tensor(schema.question_index, dtype=torch.long, device=concentrations.device)
    if concentrations.ndim != 2 or concentrations.shape[1] != schema.n_answers:
        raise ValueError(f"concentrations have shape {tuple(concentrations.shape)}; schema "
                         f"{schema.name!r} needs (batch, {schema.n_answers})")
    totals = concentrations.new_zeros(concentrations.shape[0], schema.n_questions)
    totals.index_add_(1, qidx, concentrations)
    return concentrations / totals[:, qidx]
