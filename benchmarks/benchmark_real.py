"""``make benchmark-real``: the real-galaxy benchmark with several pretraining seeds per mode,
compared at matched optimiser steps and at matched wall-clock.

    python -m benchmarks.benchmark_real OUT [--seeds 0 1 2] [--accelerator gpu --device cuda] \
        [--pretrain-args "KEY=VALUE ..."] [--benchmark-args "KEY=VALUE ..."]

1. the shipped galaxies -> shards (benchmarks/real_data.py);
2. ``steps``: every mode and seed pretrained with the same ``trainer.max_steps``
   (configs/pretrain/demo.yaml plus --pretrain-args), exported as ``<mode>_seed<k>``;
3. ``wallclock``: byol and supervised steps cost a different time than hybrid's, so each is
   pretrained again with ``max_steps`` scaled by its measured rate (median ``train/device/samples_per_sec``
   of the step runs' Lightning logs) over hybrid's, so every mode gets hybrid's wall-clock; hybrid and
   scratch are the step runs themselves. The rates and steps go to ``OUT/step_times.json``;
4. both real tasks (configs/benchmark/real_rings.yaml, real_mergers.yaml) benchmarked per comparison
   into ``OUT/benchmark/<steps|wallclock>/<task>``. Backbone names ``<mode>_seed<k>`` let the report
   group pretraining seeds by the part before ``_seed``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from benchmarks.real_data import prepare_all
from benchmarks.real_sweep import pretrain_and_export
from hybridssl.cli import main as hybridssl
from hybridssl.config import load_config, resolve_config_path
from hybridssl.train.config import PretrainConfig

MODES = ("hybrid", "byol", "supervised", "scratch")
TASKS = {"rings": "real_rings", "mergers": "real_mergers"}
PRETRAIN_CONFIG = "demo"
TOLERANCE = 0.05  # of max_steps
RATE = "train/device/samples_per_sec"  # hybridssl.train.throughput.StepThroughput


def run(args: list[str]) -> None:
    rc = hybridssl(args)
    if rc:
        raise SystemExit(f"benchmark_real: `hybridssl {' '.join(args[:3])} ...` failed (exit {rc})")


def samples_per_s(run_dir: Path) -> float:
    """Median logged training rate of a run (all its Lightning CSV log versions)."""
    logs = [pd.read_csv(p) for p in sorted(run_dir.glob("logs/version_*/metrics.csv"))]
    rates = pd.concat(logs)[RATE].dropna() if logs and all(RATE in d for d in logs) else pd.Series(dtype=float)
    if rates.empty:
        raise SystemExit(f"benchmark_real: {run_dir} logged no {RATE}; "
                         "lower trainer.log_every_n_steps below max_steps")
    return float(rates.median())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--pretrain-args", type=shlex.split, default=[], help="extra `hybridssl pretrain` overrides")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--wallclock-seeds", type=int, nargs="+", default=None,
                   help="seeds of the matched wall-clock comparison (default: --seeds)")
    p.add_argument("--parallel", type=int, default=1, help="pretraining runs at once (processes)")
    p.add_argument("--accelerator", default="cpu", help="trainer.accelerator of every pretraining run")
    p.add_argument("--device", default="cpu", help="device of the benchmark's feature extraction")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="rows per catalog (tiny test runs)")
    p.add_argument("--benchmark-args", type=shlex.split, default=[], help="extra `hybridssl benchmark` overrides")
    a = p.parse_args(argv)
    shards = prepare_all(a.out, a.image_size, a.workers, a.limit)
    common = [f"data.labelled=[{shards['gz1']}]", f"data.unlabelled=[{shards['gz2_pool']},{shards['gz1']}]",
              f"trainer.accelerator={a.accelerator}", *a.pretrain_args]
    max_steps = load_config(PretrainConfig, resolve_config_path(PRETRAIN_CONFIG, "pretrain"),
                            common).trainer.max_steps
    exports = {"steps": {}, "wallclock": {}}
    with ThreadPoolExecutor(a.parallel) as pool:  # runs are separate processes: several share the cores
        jobs = {f"{m}_seed{s}": [f"mode={m}", f"seed={s}", *common] for s in a.seeds for m in MODES}
        exports["steps"] = dict(zip(jobs, pool.map(lambda j: pretrain_and_export(a.out, *j), jobs.items())))
    rates = {m: sum(samples_per_s(a.out / "runs" / f"{m}_seed{s}") for s in a.seeds) / len(a.seeds)
             for m in MODES if m != "scratch"}
    matched = {m: max(1, round(max_steps * rates[m] / rates["hybrid"])) for m in rates}
    # a mode within TOLERANCE of hybrid's step time keeps its step runs: a rerun would match them
    same = {m for m in matched if abs(matched[m] - max_steps) <= TOLERANCE * max_steps}
    (a.out / "step_times.json").write_text(json.dumps(
        {"max_steps": max_steps, "samples_per_s": rates, "wallclock_matched_steps": matched,
         "wallclock_reuses_step_runs": sorted(same)}, indent=1))
    print(f"benchmark_real: samples/s {rates} -> steps at hybrid's wall-clock {matched}")
    wall_seeds = a.seeds if a.wallclock_seeds is None else a.wallclock_seeds
    with ThreadPoolExecutor(a.parallel) as pool:
        jobs = {f"{m}_seed{s}": [f"mode={m}", f"seed={s}", *common, f"trainer.max_steps={matched[m]}"]
                for s in wall_seeds for m in ("byol", "supervised") if m not in same}
        runs = dict(zip(jobs, pool.map(lambda j: pretrain_and_export(a.out, f"wallclock_{j[0]}", j[1]),
                                       jobs.items())))
    exports["wallclock"] = {n: runs.get(n, exports["steps"][n]) for s in wall_seeds for n in
                            (f"{m}_seed{s}" for m in MODES)}  # hybrid and scratch: the step runs
    for comparison, backbones in exports.items():
        for task, config in TASKS.items():
            run(["benchmark", "--config", str(resolve_config_path(config, "benchmark")),
                 f"out_dir={a.out / 'benchmark' / comparison / task}", f"task={shards[task]}",
                 f"device={a.device}", f"title=Real {task} at matched {comparison}, pretraining seeds "
                 f"{' '.join(map(str, a.seeds))}",
                 *(f"backbones.{n}={d}" for n, d in backbones.items()), *a.benchmark_args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
