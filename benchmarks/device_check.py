"""The one-command GPU check (issue 16): the throughput suite at cluster size, plus GPU busy
fraction, peak memory and the host-sync check of the real training step.

    python3 -m benchmarks.device_check            # ResNet-50, 224 px, bf16, channels_last, batch 256
    python3 -m benchmarks.device_check --tiny     # seconds on a CPU: the smoke test of `make test`

The hybrid vs lightly BYOL step, Kornia vs torchvision views, loader vs training samples/s and MFU
come from ``benchmarks/throughput.py`` (same code, same JSON). Added here: ``busy`` runs the real
``PretrainModule`` through a Lightning Trainer without any per-step synchronisation while
nvidia-smi samples the GPU's utilisation; ``sync`` runs a few steps with
``torch.cuda.set_sync_debug_mode("warn")`` and lists every line that made the host wait for the GPU.
Writes ``benchmarks/results/throughput-<gpu>.json`` and prints a table. See benchmarks/device_check.md.
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

from benchmarks import throughput as tp
from hybridssl.schema import load_schema
from hybridssl.train.module import PretrainModule

FULL = dict(arch="resnet50", image_size=224, batch=256, precision="bf16")
TINY = dict(arch="test_resnet", image_size=16, batch=4, precision="32")
# issue 16, P0: on one H100; the ratios' goals are throughput.py's
P0 = {"hybrid_samples_per_s": 1500.0, "busy_fraction": 0.95, "loader_vs_train": 1.2}


def _sync_debug(mode: str) -> None:
    if torch.cuda.is_available():  # a CPU run has nothing to wait for: it checks that the check runs
        torch.cuda.set_sync_debug_mode(mode)


class _SyncCheck(pl.Callback):
    """Sync debug mode from the start to the end of each batch after ``skip`` warm-up batches
    (the batch is already on the device: its copy is not counted)."""

    def __init__(self, skip: int):
        self.skip, self.steps, self.sites = skip, 0, collections.Counter()
        self._caught = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx >= self.skip:
            self._caught = warnings.catch_warnings(record=True)
            self._log = self._caught.__enter__()
            warnings.simplefilter("always")
            _sync_debug("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._caught is None:
            return
        _sync_debug("default")
        self._caught.__exit__(None, None, None)
        self._caught, self.steps = None, self.steps + 1
        for w in self._log:
            if "synchroniz" in str(w.message):
                self.sites[f"{os.path.relpath(w.filename)}:{w.lineno}"] += 1


def _trainer(cfg, device: torch.device, steps: int, callbacks: list) -> pl.Trainer:
    # log_every_n_steps beyond the run: logging steps read values back by design
    return pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="gpu" if device.type == "cuda" else "cpu",
                      devices=1, precision=cfg.trainer.precision, gradient_clip_val=cfg.trainer.gradient_clip_val or None,
                      log_every_n_steps=steps + 10, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      callbacks=callbacks)


def _pinned_batch(cfg, device: torch.device) -> dict:
    batch = tp.synthetic_batch(cfg, load_schema(cfg.schema))
    if device.type == "cuda":  # as the training loader delivers it (data.pin_memory)
        batch = {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in batch.items()}
    return batch


def sync_check(cfg, device: torch.device, steps: int, skip: int = 2) -> dict:
    """Lines of the training step (training_step, backward, optimizer, target update) that waited
    for the GPU, with counts over ``steps`` steps; CPU runs only check the check runs."""
    check = _SyncCheck(skip)
    pl.seed_everything(0, verbose=False)
    module = PretrainModule(cfg, load_schema(cfg.schema))
    try:
        _trainer(cfg, device, skip + steps, [check]).fit(module, train_dataloaders=tp._Repeat(
            _pinned_batch(cfg, device), skip + steps))
    finally:
        _sync_debug("default")
    return {"steps_checked": check.steps, "syncs": sum(check.sites.values()),
            "syncs_per_step": sum(check.sites.values()) / max(1, check.steps),
            "sync_free": not check.sites, "sites": dict(check.sites.most_common(20))}


def _sample_utilisation(stop: threading.Event, out: list) -> None:
    cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i",
           os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]]
    while not stop.wait(0.2):
        try:
            out.append(float(subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.split()[0]))
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return


def bench_busy(cfg, device: torch.device, steps: int) -> dict:
    """Samples/s of the real module with no per-step synchronisation, GPU utilisation sampled by
    nvidia-smi meanwhile (None without it), and peak GPU memory."""
    pl.seed_everything(0, verbose=False)
    module = PretrainModule(cfg, load_schema(cfg.schema))
    batch = _pinned_batch(cfg, device)
    _trainer(cfg, device, 3, []).fit(module, train_dataloaders=tp._Repeat(batch, 3))  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    samples: list = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_utilisation, args=(stop, samples), daemon=True)
    if device.type == "cuda" and shutil.which("nvidia-smi"):
        sampler.start()
    t0 = time.perf_counter()
    trainer = _trainer(cfg, device, steps, [])
    trainer.fit(module, train_dataloaders=tp._Repeat(batch, steps))
    tp.sync(device)
    wall = time.perf_counter() - t0
    stop.set()
    if sampler.is_alive():
        sampler.join()
    busy = samples[len(samples) // 5:]  # the first fifth covers Trainer start-up
    return {"steps": steps, "wall_s": wall, "samples_per_s_with_startup": steps * cfg.data.batch_size / wall,
            "busy_fraction": sum(busy) / (100 * len(busy)) if busy else None, "utilisation_samples": len(busy),
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def run(a: argparse.Namespace) -> dict:
    size = TINY if a.tiny else FULL
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # as pretraining does
    suite = argparse.Namespace(quick=a.tiny, device=a.device, config="demo", workers=a.workers,
                               only=["loss", "step", "aug", "loader"], **size)
    record = tp.run_suite(suite)
    cfg = tp.pretrain_config("demo", **size)
    res = record["results"]
    res["busy"] = bench_busy(cfg, device, steps=3 if a.tiny else a.steps)
    res["sync"] = sync_check(cfg, device, steps=2 if a.tiny else 5)
    if device.type == "cuda":
        from lightning_fabric.utilities.throughput import get_available_flops
        peak = get_available_flops(device, torch.bfloat16 if size["precision"] == "bf16" else torch.float32)
        if peak:
            record["ratios"]["mfu_vs_spec"] = res["step"]["hybrid_flop_per_s"] / peak
        values = {"hybrid_samples_per_s": res["step"]["hybrid_samples_per_s"],
                  "busy_fraction": res["busy"]["busy_fraction"], "loader_vs_train": record["ratios"].get("loader_vs_train")}
        record["p0"] = {k: {"goal": g, "value": values[k], "met": values[k] is not None and values[k] >= g}
                        for k, g in P0.items()}
    record["command"] = "python3 -m benchmarks.device_check" + (" --tiny" if a.tiny else "")
    return record


def summary(record: dict) -> str:
    res = record["results"]
    b, s = res["busy"], res["sync"]
    rows = [tp.table(record),
            f"busy: {b['busy_fraction'] if b['busy_fraction'] is None else round(b['busy_fraction'], 3)} "
            f"(nvidia-smi, {b['utilisation_samples']} samples); peak memory {b['peak_memory_gib']} GiB",
            f"sync check: {s['syncs']} host syncs in {s['steps_checked']} steps"
            + "".join(f"\n  {n:4d}x {site}" for site, n in s["sites"].items())]
    rows += [f"P0 {k:<22}{v['value'] if v['value'] is None else round(v['value'], 3)!s:>10}  goal {v['goal']}"
             f"  {'met' if v['met'] else 'NOT met'}" for k, v in record.get("p0", {}).items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.device_check", description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny model and data: a CPU smoke test")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                   help="loader / torchvision workers (default: the CPUs this process may use)")
    p.add_argument("--steps", type=int, default=60, help="training steps of the busy-fraction run")
    p.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/throughput-<device>.json)")
    a = p.parse_args(argv)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning.*")
    t0 = time.perf_counter()
    record = run(a)
    record["elapsed_s"] = time.perf_counter() - t0
    record["machine"] = tp.machine_state()
    tp.write_record(record, a.out, summary(record))
    return 0


if __name__ == "__main__":
    from hybridssl.cli import run_command
    raise SystemExit(run_command("python -m benchmarks.device_check", main))
