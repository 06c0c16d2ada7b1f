"""A GPU sweep over pretraining variants, scored on validation galaxies only.

    python -m benchmarks.real_sweep OUT --variant w5 "loss.supervised_weight=5" --variant w1 "loss.supervised_weight=1" \
        --variant byol_only "mode=byol" --parallel 3 --accelerator gpu --device cuda

Each variant is a list of `hybridssl pretrain` overrides on configs/pretrain/demo.yaml; its runs
(pretrain then export) go several at once (``--parallel`` processes, e.g. on one GPU). Shards
are made first from the shipped galaxies with the normal `hybridssl prepare`
(benchmarks/real_data.py). Every export is scored on the TRAIN splits of the real tasks only:
``--splits`` class-balanced draws inside each train split (a validation half, labelled subsets
of each budget from the other half; the benchmark's draws and probe), ROC AUC on the validation
half. The test splits are never read, so a choice made here can be reported on them afterwards.
Writes OUT/sweep.json and OUT/sweep.md (mean +- std over draws) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.real_data import prepare_all
from benchmarks.transfer import BenchmarkConfig
from hybridssl.config import load_config, resolve_config_path
from hybridssl.data import read_meta
from hybridssl.evaluate.features import extract_features
from hybridssl.evaluate.draws import balanced_draws
from hybridssl.evaluate.probes import linear_probe

TASKS = {"rings": ("real_rings", "ring"), "mergers": ("real_mergers", "merger")}


def pretrain_and_export(out: Path, name: str, overrides: list[str]) -> Path:
    """Pretrain ``configs/pretrain/demo.yaml`` with ``overrides`` (resuming a finished or interrupted
    run) and export, in processes of their own (so several share a GPU or run in lanes), the log in
    ``out/logs/<name>.log``; the export directory. The one pretrain-and-export of the benchmarks."""
    hssl = [sys.executable, "-m", "hybridssl.cli"]
    run, export = out / "runs" / name, out / "export" / name
    log = (out / "logs").joinpath(f"{name}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        for cmd in ([*hssl, "pretrain", "--config", "demo", f"out_dir={run}", "resume=auto", *overrides],
                    [*hssl, "export", str(run), "--out", str(export)]):
            f.write(f"$ {shlex.join(cmd)}\n")
            f.flush()
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"real_sweep: variant {name!r} failed; see {log}")
    return export


def export_checkpoints(run: Path, dest: Path) -> list[Path]:
    """Each ``stepN.ckpt`` of ``run`` exported to ``dest/stepN``, oldest first; an export already
    there is kept (a resumed curve redoes nothing). The checkpoint curve of one run."""
    from hybridssl.export.timm_folder import export_checkpoint
    folders = []
    for ckpt in sorted((run / "checkpoints").glob("step*.ckpt")):
        folder = dest / ckpt.stem
        if not (folder / "model.safetensors").is_file():
            export_checkpoint(ckpt, folder)
        folders.append(folder)
    return folders


def validation_scores(export: Path, shards: Path, task: str, budgets: list, n_splits: int, device: str,
                      cache: Path) -> dict:
    """{budget: [ROC AUC per draw]} on validation galaxies inside the task's train split: the
    benchmark's class-balanced repeated draws (``hybridssl.evaluate.draws``) over the train split
    alone, the same probe as the benchmark's headline; the test split is never read."""
    config, label = TASKS[task]
    cfg = load_config(BenchmarkConfig, resolve_config_path(config, "benchmark"),
                      [f"task={shards}", f"backbones.x={export}", f"out_dir={cache}"])
    meta = read_meta(shards)
    train = np.array([m["split"] == cfg.train_split for m in meta])
    feats = extract_features(export, shards, cache, cfg.augment, cfg.batch_size, 0, device, desc=export.name)
    x, y = feats.x[train], np.array([int(m[label]) for m in meta])[train]
    scores = {str(b): [] for b in budgets}
    for d in balanced_draws(y, n_splits, budgets, seed=0):
        for b, rows in d.labelled.items():
            probs, _ = linear_probe(x[rows], y[rows], x[d.test], cfg.repeated.probe, 2, d.index)
            scores[str(b)].append(float(roc_auc_score(y[d.test], probs[:, 1])))
    return scores


def table(results: dict, budgets: list) -> str:
    lines = []
    for task in TASKS:
        lines += [f"\n### {task}: validation ROC AUC inside the train split (mean +- std over draws)\n",
                  "| variant | " + " | ".join(map(str, budgets)) + " |", "|---" * (len(budgets) + 1) + "|"]
        for name, r in results.items():
            cells = [f"{np.mean(r[task][str(b)]):.3f} +- {np.std(r[task][str(b)]):.3f}" for b in budgets]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--variant", nargs=2, action="append", required=True, metavar=("NAME", "OVERRIDES"),
                   help="a name and its `hybridssl pretrain` overrides in one quoted string")
    p.add_argument("--parallel", type=int, default=2, help="variants pretraining at once")
    p.add_argument("--accelerator", default="gpu", help="trainer.accelerator of every run")
    p.add_argument("--device", default="cuda", help="device for feature extraction")
    p.add_argument("--splits", type=int, default=20, help="class-balanced validation draws per task")
    p.add_argument("--budgets", nargs="+", type=int, default=[20, 50], help="labels per draw")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="rows per catalog (tiny test runs)")
    a = p.parse_args(argv)
    budgets = a.budgets
    shards = prepare_all(a.out, a.image_size, a.workers, a.limit)
    (a.out / "logs").mkdir(parents=True, exist_ok=True)
    common = [f"data.labelled=[{shards['gz1']}]", f"data.unlabelled=[{shards['gz2_pool']},{shards['gz1']}]",
              f"trainer.accelerator={a.accelerator}"]
    with ThreadPoolExecutor(a.parallel) as pool:
        exports = dict(zip([n for n, _ in a.variant], pool.map(
            lambda v: pretrain_and_export(a.out, v[0], [*common, *shlex.split(v[1])]), a.variant)))
    results = {name: {task: validation_scores(export, shards[task], task, budgets, a.splits, a.device,
                                              a.out / "features") for task in TASKS}
               for name, export in exports.items()}
    (a.out / "sweep.json").write_text(json.dumps({"variants": dict(a.variant), "budgets": budgets,
                                                  "splits": a.splits, "results": results}, indent=1))
    md = table(results, budgets)
    (a.out / "sweep.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
