"""Exact resume: every rank's random state travels in the checkpoint.

Lightning restores weights, optimizer, scheduler, step counters and the training loader's
position (``TrainLoader.state_dict``) but not the RNGs (augmentations and dropout draw from
torch's global RNG). This callback stores them and re-seats them just before the first training
step, after the DataLoader iterator (which draws a seed from the global RNG) has been created,
exactly where they were when the checkpoint was written.
"""
from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch

from hybridssl.data.distributed import rank_and_world_size


def rng_state() -> dict:
    """This process's RNG states in checkpoint-safe types (tensors, ints, floats, tuples)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _gather(obj: Any) -> list:
    """``obj`` from every rank, in rank order (one element when not distributed)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


class ExactResume(pl.Callback):
    """Sets the stream's epoch at each epoch start; saves and restores every rank's RNGs."""

    def __init__(self, loader=None):
        self.loader = loader  # has set_epoch(e); set before fit
        self._rng_to_restore: Optional[dict] = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # not called when Lightning restarts mid-epoch: the loader's load_state_dict has positioned it
        self.loader.set_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def state_dict(self) -> dict:
        # Lightning builds the checkpoint dict on every rank (rank 0 writes it): a collective is safe
        return {"rng": _gather(rng_state())}

    def load_state_dict(self, state: dict) -> None:
        states = state["rng"]
        rank, _ = rank_and_world_size()
        # with another world size the run cannot be exact anyway; keep ranks on distinct streams
        self._rng_to_restore = states[rank] if rank < len(states) else None
