"""Stop a diverging run before it writes NaN weights anywhere.

:class:`FiniteGuard` checks the loss before every backward pass (so a NaN loss never reaches
the optimizer: the weights stay those of the last finite step) and the weights before every
checkpoint is written, and raises :class:`NonFiniteError`; the newest checkpoint on disk stays
the last finite one. :func:`non_finite` is the same check for ``export``.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch


class NonFiniteError(ValueError):
    """A loss or a weight is NaN or infinite; the message names the step or the tensors."""


def non_finite(tensors: dict) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _all_ranks(trainer: pl.Trainer, ok: bool) -> bool:
    """``ok`` on every rank (one small all-reduce under DDP), so all ranks stop together."""
    return bool(trainer.strategy.reduce_boolean_decision(ok, all=True))


class FiniteGuard(pl.Callback):
    """Raise :class:`NonFiniteError` on a non-finite loss or before saving non-finite weights;
    ``hint``: what the user can change (pretraining's settings unless told)."""

    def __init__(self, hint: str = "lower optim.base_lr, or keep trainer.gradient_clip_val on"):
        self.hint = hint

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not _all_ranks(trainer, bool(torch.isfinite(loss.detach()).all())):
            raise NonFiniteError(
                f"the training loss is not finite at step {trainer.global_step} (the run diverged: {self.hint}); "
                f"stopped without saving, the newest checkpoint is the last finite one")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        bad = non_finite(checkpoint["state_dict"])
        if not _all_ranks(trainer, not bad):
            raise NonFiniteError(f"weights are not finite at step {trainer.global_step} "
                                 f"({', '.join(bad[:3]) or 'on another rank'}); not saving this checkpoint")
