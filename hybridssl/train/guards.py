"""Stop a diverging run before it writes NaN weights anywhere.

:class:`FiniteGuard` notes, on the device, the first step whose loss is NaN or infinite (no host
wait per step) and raises :class:`NonFiniteError` on the next logging step (where Lightning reads
the logged values back anyway), before any checkpoint is written and at the end of training; it
also checks the weights before every checkpoint. The newest checkpoint on disk therefore stays
the last finite one. ``checkpoint.non_finite`` is the weight check, shared with ``export``.
"""
from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl
import torch

from hybridssl.train.checkpoint import non_finite


class NonFiniteError(ValueError):
    """A loss or a weight is NaN or infinite; the message names the step or the tensors."""


def _all_ranks(trainer: pl.Trainer, ok: bool) -> bool:
    """``ok`` on every rank (one small all-reduce under DDP), so all ranks stop together."""
    return bool(trainer.strategy.reduce_boolean_decision(ok, all=True))


def is_logging_step(trainer: pl.Trainer) -> bool:
    """Whether the optimizer step now running is one of Lightning's logging steps (its
    ``should_update_logs``), known before the step ends."""
    n = trainer.log_every_n_steps
    return n > 0 and (trainer.global_step + 1) % n == 0


class FiniteGuard(pl.Callback):
    """Raise :class:`NonFiniteError` after a non-finite loss or before saving non-finite weights;
    ``hint``: what the user can change (pretraining's settings unless told)."""

    def __init__(self, hint: str = "lower optim.base_lr, or keep trainer.gradient_clip_val on"):
        self.hint = hint
        self._first_bad: Optional[torch.Tensor] = None  # on the device: first non-finite step, -1 = none

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.int64, device=loss.device)
        bad = ~torch.isfinite(loss.detach())
        self._first_bad = torch.where(bad & (self._first_bad < 0), trainer.global_step, self._first_bad)
        if is_logging_step(trainer):
            self._raise_if_diverged(trainer)

    def _raise_if_diverged(self, trainer) -> None:
        first = -1 if self._first_bad is None else int(self._first_bad)
        if not _all_ranks(trainer, first < 0):
            where = f"step {first}" if first >= 0 else f"step {trainer.global_step} on another rank"
            raise NonFiniteError(
                f"the training loss is not finite at {where} (the run diverged: {self.hint}); "
                f"stopped without saving, the newest checkpoint is the last finite one")

    def on_train_end(self, trainer, pl_module) -> None:
        self._raise_if_diverged(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._raise_if_diverged(trainer)
        bad = non_finite(checkpoint["state_dict"])
        if not _all_ranks(trainer, not bad):
            raise NonFiniteError(f"weights are not finite at step {trainer.global_step} "
                                 f"({', '.join(bad[:3]) or 'on another rank'}); not saving this checkpoint")
