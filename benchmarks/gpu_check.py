"""The parts of ``benchmarks/device_check.sh`` (issue 22), one JSON file each in ``--out``.

    python3 -m benchmarks.gpu_check versions --out OUT
    python3 -m benchmarks.gpu_check shards --name DIR --size 224 --n 2048
    python3 -m benchmarks.gpu_check pretrain --name NAME --out OUT --shards DIR [key=value ...]
    python3 -m benchmarks.gpu_check sync --out OUT --shards DIR [key=value ...]
    python3 -m benchmarks.gpu_check trace --out OUT --shards DIR [key=value ...]

``pretrain`` runs ``hybridssl pretrain`` end to end (its own process, its own loader) and reads
samples/s from the run's own metrics (``train/samples_per_sec``, StepThroughput). ``sync`` runs
the same in-process with CUDA's sync debug mode set to "error" from the start to the end of every
step that neither logs nor checkpoints (after two warm-up steps), with the real callbacks: the
first host-device wait raises and is recorded with its stack. ``trace`` leaves a torch.profiler
Chrome trace (gzipped) of three steps. On a CPU (``--cpu`` sizes) every part runs, tiny.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _write(out: Path, name: str, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))
    print(json.dumps({name: record}, default=str)[:2000], flush=True)


def versions() -> dict:
    import importlib.metadata as md
    pkgs = {}
    for name in ("torch", "torchvision", "pytorch-lightning", "kornia", "lightly", "timm", "webdataset", "numpy"):
        try:
            pkgs[name] = md.version(name)
        except md.PackageNotFoundError:
            pkgs[name] = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "packages": pkgs, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None, "gpu": gpu,
            "cpus": len(os.sched_getaffinity(0)), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "git": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
            or None}


def write_synthetic_shards(root: Path, size: int, n: int) -> None:
    """Labelled (GZ-like votes) and unlabelled synthetic JPEG shard sets, as the tests write them."""
    sys.path.insert(0, str(REPO / "tests"))
    from factories import write_shards
    shards = max(1, n // 256)
    write_shards(root / "labelled", n, labelled=True, n_shards=shards, image_size=size, seed=1)
    write_shards(root / "unlabelled", n, labelled=False, n_shards=shards, image_size=size, seed=2)


def _overrides(shards: Path, out_dir: Path, extra: list[str]) -> list[str]:
    return [f"out_dir={out_dir}", f"data.labelled=[{shards / 'labelled'}]", f"data.unlabelled=[{shards / 'unlabelled'}]",
            "resume=never", "trainer.devices=1", "trainer.num_nodes=1", *extra]


def _metrics(out_dir: Path) -> dict:
    rows = list(csv.DictReader(open(out_dir / "logs" / "version_0" / "metrics.csv")))
    key = "train/samples_per_sec" if "train/samples_per_sec" in rows[0] else "train/device/samples_per_sec"  # 1 device
    rate = [float(r[key]) for r in rows if r.get(key)]
    mfu = [float(r["train/device/mfu"]) for r in rows if r.get("train/device/mfu")]
    steady = rate[1:] or rate  # the first interval holds start-up (and compilation)
    return {"samples_per_s_by_log_interval": rate, "samples_per_s_steady_median":
            sorted(steady)[len(steady) // 2] if steady else None, "mfu_by_log_interval": mfu}


def pretrain_part(name: str, config: str, shards: Path, work: Path, extra: list[str]) -> dict:
    out_dir = work / name
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "hybridssl.cli", "pretrain", "--config", config, *_overrides(shards, out_dir, extra)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    record = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "wall_s": time.perf_counter() - t0}
    if proc.returncode:
        record["stderr_tail"] = proc.stderr[-3000:]
        return record
    return {**record, **_metrics(out_dir)}


def _load(config: str, shards: Path, out_dir: Path, extra: list[str]):
    from hybridssl.config import load_config
    from hybridssl.train.config import PretrainConfig
    return load_config(PretrainConfig, config, _overrides(shards, out_dir, extra))


def _in_process(cfg, first: list, last: tuple = ()):
    """``hybridssl pretrain`` in this process, ``first`` before the Trainer's callbacks, ``last`` after."""
    from hybridssl.train import run
    build = run.build_trainer

    def with_callbacks(*args):
        trainer = build(*args)
        trainer.callbacks[:0] = first
        trainer.callbacks.extend(last)
        return trainer

    run.build_trainer = with_callbacks
    try:
        return run.pretrain(cfg)
    finally:
        run.build_trainer = build


def sync_part(config: str, shards: Path, work: Path, extra: list[str], warmup: int = 2) -> dict:
    import pytorch_lightning as pl
    from hybridssl.train.guards import is_logging_step
    state = {"steps_checked": 0, "error": None}

    class SyncErrors(pl.Callback):
        """Sync debug "error" over whole steps: on before every other callback's batch start,
        off after every other callback's batch end."""

        def __init__(self, start: bool):
            self.start = start

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if not self.start:
                return
            every = trainer.checkpoint_callback._every_n_train_steps
            if batch_idx >= warmup and not is_logging_step(trainer) and (trainer.global_step + 1) % every:
                state["steps_checked"] += 1
                if torch.cuda.is_available():
                    torch.cuda.set_sync_debug_mode("error")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if not self.start and torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("default")

    cfg = _load(config, shards, work / "sync", extra)
    shutil.rmtree(cfg.out_dir, ignore_errors=True)
    try:
        _in_process(cfg, [SyncErrors(start=True)], [SyncErrors(start=False)])
    except Exception as e:  # the first sync: what and where
        state["error"] = f"{type(e).__name__}: {e}"[:500]
        state["stack"] = traceback.format_exc()[-4000:]
    finally:
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
    state["sync_free"] = state["error"] is None and state["steps_checked"] > 0
    state["checked_on_gpu"] = torch.cuda.is_available()
    return state


def trace_part(config: str, shards: Path, work: Path, out: Path, extra: list[str]) -> dict:
    import pytorch_lightning as pl
    from torch.profiler import ProfilerActivity, profile, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    prof = profile(activities=activities, schedule=schedule(wait=2, warmup=1, active=3, repeat=1))

    class Profile(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            prof.__enter__()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            prof.step()

        def on_train_end(self, trainer, pl_module):
            prof.__exit__(None, None, None)

    cfg = _load(config, shards, work / "trace", extra)
    shutil.rmtree(cfg.out_dir, ignore_errors=True)
    _in_process(cfg, [Profile()])
    raw = work / "trace.json"
    prof.export_chrome_trace(str(raw))
    with open(raw, "rb") as f, gzip.open(out / "trace.json.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    sort = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=25)
    return {"trace": "trace.json.gz", "trace_bytes": (out / "trace.json.gz").stat().st_size, "top_ops": table}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("part", choices=("versions", "shards", "pretrain", "sync", "trace"))
    p.add_argument("--name", help="shards: the directory to write; pretrain: the part's name")
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--work", type=Path, default=Path("/tmp/gpu_check"))
    p.add_argument("--shards", type=Path)
    p.add_argument("--config", default=str(REPO / "configs" / "pretrain" / "gz_evo.yaml"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("overrides", nargs="*")
    a = p.parse_intermixed_args(argv)
    if a.part == "versions":
        _write(a.out, "versions", versions())
    elif a.part == "shards":
        write_synthetic_shards(Path(a.name), a.size, a.n)
    elif a.part == "pretrain":
        _write(a.out, a.name, pretrain_part(a.name, a.config, a.shards, a.work, a.overrides))
    elif a.part == "sync":
        _write(a.out, "sync", sync_part(a.config, a.shards, a.work, a.overrides))
    else:
        _write(a.out, "trace", trace_part(a.config, a.shards, a.work, a.out, a.overrides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
