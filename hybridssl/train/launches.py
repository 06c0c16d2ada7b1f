"""What a resumed run may change, and the record of every launch of a run directory.

A resume continues the steps of an earlier launch, so a key that shapes training (batch size,
labelled sets, weighting, crop size, ...) may only change when the user names it in
``resume_allow_changes``; every launch's resolved config is kept as
``out_dir/launches/NNN-<time>.yaml``, so the record shows what each stretch of steps used.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from hybridssl.storage.atomic import atomic_write_text
from hybridssl.config import to_dict, to_yaml
from hybridssl.train.checkpoint import CheckpointError

LAUNCH_DIR = "launches"
# Keys that never change what is learned: where the run lives, how it reports, how it is
# launched. trainer.max_steps has its own warning (a run may be extended).
NOT_COMPARED = ("out_dir", "resume", "resume_allow_changes", "trainer.max_steps", "trainer.progress_bar",
                "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "trainer.keep_checkpoints",
                "trainer.ddp_timeout_s", "trainer.requeue_check_every_n_steps", "data.num_workers", "data.pin_memory",
                "data.persistent_workers", "data.prefetch_factor", "trainer.compile", "trainer.compile_backend",
                "data.in_memory", "data.in_memory_max_gib")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def changed_keys(was: dict, now: dict) -> dict[str, tuple]:
    """{dotted key: (checkpoint's value, this run's value)} for every compared key that differs."""
    a, b = _flat(was), _flat(now)
    missing = "(absent)"
    return {k: (a.get(k, missing), b.get(k, missing)) for k in sorted(a.keys() | b.keys())
            if k not in NOT_COMPARED and a.get(k, missing) != b.get(k, missing)}


def check_resume_config(path: Path, was: dict, cfg) -> None:
    """Refuse a resume whose config differs from the checkpoint's in keys not named in
    ``cfg.resume_allow_changes``; the message lists each key with both values."""
    allowed = set(cfg.resume_allow_changes)
    diff = {k: v for k, v in changed_keys(was, to_dict(cfg)).items() if k not in allowed}
    if diff:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        names = ",".join(diff)
        raise CheckpointError(f"checkpoint {path} was trained with another config ({listed}); resume with the "
                              f"same values, a new out_dir, or allow them: 'resume_allow_changes=[{names}]'")


def check_weight_shapes(path: Path, state_dict: dict, module: torch.nn.Module) -> None:
    """A resume whose model has other weight shapes than the checkpoint: one line, not a traceback."""
    own = module.state_dict()
    wrong = [f"{k} {tuple(v.shape)} -> {tuple(own[k].shape)}" for k, v in state_dict.items()
             if k in own and tuple(v.shape) != tuple(own[k].shape)]
    absent = sorted(set(own) ^ set(state_dict))
    if wrong or absent:
        detail = "; ".join(wrong[:3]) + (f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else "")
        if absent:
            detail += f"{'; ' if wrong else ''}{len(absent)} weights only in one of them, e.g. {absent[0]}"
        raise CheckpointError(f"checkpoint {path} does not fit this model ({detail}); the allowed config "
                              f"changes altered the architecture: use a new out_dir")


def record_launch(out_dir: Path, cfg) -> Path:
    """Write this launch's resolved config as ``launches/NNN-<UTC time>.yaml`` (NNN counts up)."""
    launches = out_dir / LAUNCH_DIR
    launches.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:3]) for p in launches.glob("[0-9][0-9][0-9]-*.yaml")]
    path = launches / f"{max(numbers, default=0) + 1:03d}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.yaml"
    atomic_write_text(path, to_yaml(cfg))
    return path
