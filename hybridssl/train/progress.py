"""The progress bar, only where someone watches it, and refreshed only on logging steps.

Lightning's TQDM bar turns every logged tensor into a Python number each time it refreshes
(``.item()``: the host waits for the GPU). By default that is every batch; here it refreshes on
logging steps only, when Lightning reads the values anyway, and it is off where no terminal
shows it (batch jobs, SLURM, output sent to a file).
"""
from __future__ import annotations

import sys

from pytorch_lightning.callbacks import TQDMProgressBar

from hybridssl.train.config import TrainerConfig


def shows_progress(t: TrainerConfig, slurm: bool) -> bool:
    return bool(t.progress_bar) and not slurm and sys.stderr.isatty()


def progress_callbacks(t: TrainerConfig, slurm: bool) -> list:
    return [TQDMProgressBar(refresh_rate=t.log_every_n_steps)] if shows_progress(t, slurm) else []
