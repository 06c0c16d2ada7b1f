"""Checkpoint files: atomic writes, tensor-only loads, and finding the newest complete one.

Lightning writes through ``checkpoint_io.AtomicCheckpointIO``, so a SIGKILL or a full disk leaves
the previous checkpoint intact and never a partial file under a checkpoint name. Nothing here
imports Lightning, so ``hybridssl export`` starts in torch's time, not Lightning's. Every load uses
``torch.load(weights_only=True)``: a checkpoint holding any pickled object other than tensors
and plain containers is refused instead of executed.
"""
from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch


log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_KEY = "hybridssl"  # our part of a Lightning checkpoint: config, export info, momentum
_STEP_NAME = re.compile(r"^step(\d+)\.ckpt$")


class CheckpointError(ValueError):
    """A checkpoint is unreadable, truncated or not one of ours; the message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds pickled objects beyond tensors and plain containers (possible code)."""


def non_finite(tensors: dict) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def checkpoint_name(step: int) -> str:
    return f"step{step:08d}.ckpt"


def load_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """``torch.load(weights_only=True)`` with errors that name the file and say what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        # mmap only applies to torch.save's zip format; legacy pickles must still reach the refusal
        ckpt = torch.load(path, map_location=map_location, weights_only=True,
                          mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains pickled objects other than tensors and plain "
            f"containers, which could run code (loaded with weights_only=True). Details: {e}") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {e}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not a hybridssl/Lightning checkpoint (no state_dict)")
    return ckpt


def step_checkpoints(run_dir: str | Path) -> list[Path]:
    """``run_dir/checkpoints/step*.ckpt``, newest (highest step) first."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    found = [(int(m.group(1)), p) for p in ckpt_dir.glob("step*.ckpt") if (m := _STEP_NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    """The newest checkpoint of a run that loads; damaged ones are skipped with a warning.

    A checkpoint that holds non-tensor pickles is never skipped quietly: that is tampering,
    not a crash, so it raises :class:`UnsafeCheckpointError`.
    """
    for path in step_checkpoints(run_dir):
        try:
            load_checkpoint(path, mmap=True)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as e:
            log.warning("skipping %s", e)
            continue
        return path
    return None


def resolve_checkpoint(ckpt_or_run_dir: str | Path) -> Path:
    """A checkpoint file as given, or the newest complete checkpoint of a run directory."""
    p = Path(ckpt_or_run_dir)
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is None:
            raise FileNotFoundError(f"no complete checkpoint under {p / CHECKPOINT_DIR}")
        return found
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such checkpoint file or run directory")
    return p


def tidy_checkpoints(run_dir: str | Path, keep: int, protect: Optional[Path] = None) -> None:
    """Remove temp files a killed save left in ``run_dir/checkpoints`` and all but the newest
    ``keep`` step checkpoints (``keep`` = -1: all), never ``protect``. ModelCheckpoint only
    counts the files of one launch, so without this every resume would add ``keep`` more.
    Call it only while holding the run's lock: no other process is writing there."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    stale = list(ckpt_dir.glob(".step*.ckpt.*.tmp"))
    if keep >= 0:
        stale += [p for p in step_checkpoints(run_dir)[keep:] if p != protect]
    for p in stale:
        log.info("removing %s", p)
        p.unlink(missing_ok=True)
