"""SLURM's time-limit signal, handled so that no rank can hang.

SLURM sends the requeue signal (``#SBATCH --signal=SIGUSR1@300``) to each task at whatever point of
its step that task has reached. Saving the checkpoint inside the handler, as Lightning's
``SLURMEnvironment(auto_requeue=True)`` does, runs the save's collectives (exact resume's gather,
the finiteness check) there, where they can pair with another rank's gradient all-reduce: the job
then waits for the DDP timeout and is killed with nothing saved. Here the handler only sets a flag.
Every ``trainer.requeue_check_every_n_steps`` optimizer steps, all ranks, all at the same step, OR
their flags with one small all-reduce; when any rank was signalled, every rank saves
``out_dir/hpc_ckpt_N.ckpt`` together, rank 0 runs ``scontrol requeue``, and the run stops.
``resume=auto`` continues from that checkpoint when it is the newest.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl

log = logging.getLogger(__name__)
HPC_PREFIX = "hpc_ckpt_"


def hpc_checkpoints(out: Path) -> dict[int, Path]:
    """{N: out/hpc_ckpt_N.ckpt} of the requeue checkpoints in ``out``."""
    found = {}
    for p in Path(out).glob(f"{HPC_PREFIX}*.ckpt"):
        number = p.stem.removeprefix(HPC_PREFIX)
        if number.isdigit():
            found[int(number)] = p
    return found


def requeue_job() -> None:
    """``scontrol requeue`` this job (an array task as JOB_TASK); a failure is logged, not raised:
    the checkpoint is written, and a resubmitted job resumes from it."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ.get("SLURM_JOB_ID")
    if not job:
        log.warning("requeue signal outside a SLURM job: checkpoint written, nothing requeued")
        return
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except FileNotFoundError:
        log.warning("scontrol not found: job %s not requeued; resubmit it to resume", job)
        return
    if done.returncode:
        log.warning("scontrol requeue %s failed (%s); resubmit the job to resume", job, done.stderr.strip())


class RequeueOnSignal(pl.Callback):
    """Flag on ``signum``; checkpoint, requeue and stop at the next agreed step boundary."""

    def __init__(self, out_dir: Path, every_n_steps: int, signum: int = signal.SIGUSR1):
        self.out, self.every, self.signum = Path(out_dir), int(every_n_steps), signum
        self.requested = False
        self.saved: Optional[Path] = None  # the requeue checkpoint, once written: the run stopped
        self._checked_step = -1
        self._previous = None

    def _on_signal(self, signum, frame) -> None:
        self.requested = True  # nothing else here: the handler may run in the middle of a collective

    def setup(self, trainer, pl_module, stage) -> None:
        self._previous = signal.signal(self.signum, self._on_signal)

    def teardown(self, trainer, pl_module, stage) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # global_step is the same on every rank at every batch end, so all ranks check together
        step = trainer.global_step
        if step == self._checked_step or step % self.every:
            return
        self._checked_step = step
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        numbers = hpc_checkpoints(self.out)
        path = self.out / f"{HPC_PREFIX}{max(numbers, default=0) + 1}.ckpt"
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            print(f"requeue signal: checkpoint {path} at step {step}; requeueing", flush=True)
            requeue_job()
        self.saved = path
        trainer.should_stop = True
