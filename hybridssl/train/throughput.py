"""Samples/s, FLOP/s and MFU in the training logs, computed by Lightning's ``Throughput``.

Lightning's ``ThroughputMonitor`` callback does the same sums but calls ``torch.cuda.synchronize()``
after every batch, which stops the host from queueing the next step while the GPU works. This one
counts samples every step and waits for the GPU only on logging steps, where the logged tensors
are read anyway. The FLOPs of a step are counted by torch's FlopCounterMode on the first step.
"""
from __future__ import annotations

import time
from typing import Optional

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.throughput import Throughput, get_available_flops
from torch.utils.flop_counter import FlopCounterMode



def compute_dtype(precision: str) -> torch.dtype:
    """The matmul dtype of a Lightning precision setting: the one the chip's peak is quoted for."""
    return torch.bfloat16 if "bf16" in precision else torch.float16 if "16" in precision else torch.float32


class StepThroughput(pl.Callback):
    """Logs ``train/samples_per_sec``, ``train/device/flops_per_sec`` and ``train/device/mfu``
    (MFU where Lightning knows the chip's peak) over the last logging interval."""

    def __init__(self):
        self.flops_per_batch: Optional[int] = None  # this rank's, forward + backward
        self._counter: Optional[FlopCounterMode] = None

    def on_train_start(self, trainer, pl_module) -> None:
        device = trainer.strategy.root_device
        peak = get_available_flops(device, compute_dtype(str(trainer.precision))) if device.type == "cuda" else None
        # window 2: each rate is over the last log interval (updates happen only on logging steps)
        self.throughput = Throughput(available_flops=peak, world_size=trainer.world_size, window_size=2)
        self._t0, self._batches, self._samples, self._flops_since = time.perf_counter(), 0, 0, 0
        self._logged_at = trainer.global_step
        self.throughput.update(time=0.0, batches=0, samples=0, flops=0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.flops_per_batch is None and self._counter is None:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops_per_batch, self._counter = self._counter.get_total_flops(), None
        self._batches += 1
        self._samples += batch["image"].shape[0]
        self._flops_since += self.flops_per_batch
        n = trainer.log_every_n_steps
        if not n or trainer.global_step % n or trainer.global_step == self._logged_at:
            return  # not a logging step, or an accumulation batch of one already logged
        self._logged_at = trainer.global_step
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.throughput.update(time=time.perf_counter() - self._t0, batches=self._batches, samples=self._samples,
                               flops=self._flops_since)
        self._flops_since = 0
        metrics = self.throughput.compute()
        keep = ("samples_per_sec", "device/samples_per_sec", "device/flops_per_sec", "device/mfu")
        pl_module.log_dict({f"train/{k}": float(v) for k, v in metrics.items() if k in keep},
                           rank_zero_only=True)

    def on_exception(self, trainer, pl_module, exception) -> None:
        """A step that raised (a diverging loss, a bad batch) never reaches ``on_train_batch_end``:
        leave the counter here, or its global module hooks outlive the run in this process."""
        if self._counter is not None:
            self._counter.__exit__(type(exception), exception, None)
            self._counter = None
