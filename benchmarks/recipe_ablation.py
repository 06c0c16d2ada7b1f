"""Recipe ablation on validation galaxies (issue 22): each variant pretrained with several seeds,
every checkpoint exported and scored, so each variant gets a curve of transfer against samples seen.

    python -m benchmarks.recipe_ablation OUT [--variants paper crop_mild px96] [--seeds 0 1]
        [--pretrain-args mode=byol] [--steps 375] [--curve 5] [--lanes 1] [--limit N] [--budgets 20 50] [--draws 20] [--plot PNG]

Pretraining is ``configs/pretrain/demo.yaml`` on the shipped real galaxies with only the variant's
overrides changed; scores are ``benchmarks.real_sweep.validation_scores`` (class-balanced repeated
draws inside the rings' train split: the test split is never read). Re-running skips finished runs,
exports and scores. Writes ``OUT/ablation.json``, prints a markdown table (variant x samples seen,
mean over seeds) and, with ``--plot``, draws the curves (mean over seeds, bars from the lowest to the
highest seed; the random inits as dashed lines).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.curve import plot_curves
from benchmarks.real_data import prepare_all
from benchmarks.real_sweep import export_checkpoints, pretrain_and_export, validation_scores

BATCH = 32  # configs/pretrain/demo.yaml's data.batch_size: samples seen = step x BATCH
# name -> (image size, pretraining overrides); 'paper' is demo.yaml as it is (configs/augment/galaxy.yaml)
VARIANTS = {
    "paper": (64, []),
    "physical": (64, ["augment=physical"]),
    "crop_mild": (64, ["augment.crop_scale=[0.7,1.0]"]),  # the paper's recipe with only the crop changed
    "px96": (96, ["augment.crop_size=96", "augment.resize_size=96", "augment.blur_kernel=11"]),
}


def run_variant(out: Path, shards: Path, name: str, seed: int, steps: int, every: int, extra: list) -> Path:
    """Pretrain one (variant, seed) with a checkpoint every ``every`` steps; the run directory."""
    size, overrides = VARIANTS[name]
    pretrain_and_export(out, f"{name}_s{seed}", [
        f"seed={seed}", f"trainer.max_steps={steps}", f"trainer.checkpoint_every_n_steps={every}",
        "trainer.keep_checkpoints=-1", "trainer.progress_bar=false", f"data.labelled=[{shards}/gz1]",
        f"data.unlabelled=[{shards}/gz2_pool,{shards}/gz1]", *overrides, *extra])
    return out / "runs" / f"{name}_s{seed}"


def validation_auc(export: Path, shards: Path, budgets: list, draws: int, cache: Path) -> float:
    """Validation ring AUC of one export, mean over draws then budgets."""
    s = validation_scores(export, shards / "rings", "rings", budgets, draws, "cpu", cache)
    return float(np.mean([np.mean(v) for v in s.values()]))


def score_curve(out: Path, run: Path, shards: Path, budgets: list, draws: int) -> dict:
    """{step: validation AUC} for every checkpoint of ``run``, each exported to OUT/curve/RUN/stepN."""
    return {int(e.name.removeprefix("step")): validation_auc(e, shards, budgets, draws, out / "valfeatures")
            for e in export_checkpoints(run, out / "curve" / run.name)}


def seed_curves(results: dict, batch_size: int) -> dict:
    """{variant: [(samples seen, mean over seeds, lowest seed, highest seed)]}."""
    by = {}
    for r in results["runs"].values():
        for step, auc in r["curve"].items():
            by.setdefault(r["variant"], {}).setdefault(int(step) * batch_size, []).append(auc)
    return {v: [(x, float(np.mean(a)), min(a), max(a)) for x, a in sorted(pts.items())] for v, pts in by.items()}


def table(results: dict, batch_size: int) -> str:
    """Markdown: a row per variant (mean over its seeds at each checkpoint), then the random inits."""
    curves = seed_curves(results, batch_size)
    xs = sorted({x for pts in curves.values() for x, *_ in pts})
    lines = ["| variant | seeds | " + " | ".join(f"{x:,}" for x in xs) + " |", "|---|---:|" + "---:|" * len(xs)]
    for name in (v for v in VARIANTS if v in curves):
        mean = {x: m for x, m, *_ in curves[name]}
        seeds = sum(r["variant"] == name for r in results["runs"].values())
        lines.append(f"| {name} | {seeds} | " + " | ".join(f"{mean.get(x, np.nan):.3f}" for x in xs) + " |")
    for size, auc in sorted(results["random_init"].items()):
        lines.append(f"| random init ({size} px) | | {auc:.3f} |" + " |" * (len(xs) - 1))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--variants", nargs="+", default=["paper", "crop_mild", "px96"], choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=375)
    p.add_argument("--curve", type=int, default=5, help="checkpoints (curve points) per run")
    p.add_argument("--lanes", type=int, default=1, help="pretraining runs at a time, one thread each")
    p.add_argument("--limit", type=int, help="rows per catalog (tiny rehearsals)")
    p.add_argument("--budgets", nargs="+", type=int, default=[20, 50])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--pretrain-args", nargs="*", default=[], help="extra overrides for every run")
    p.add_argument("--plot", type=Path, help="write the curves to this PNG")
    a = p.parse_args(argv)
    (a.out / "logs").mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every pretraining process
    sizes = sorted({VARIANTS[v][0] for v in a.variants})
    shards = {s: prepare_all(a.out / f"real{s}", s, 2, a.limit)["gz1"].parent for s in sizes}
    every = max(1, a.steps // a.curve)
    path = a.out / "ablation.json"
    results = json.loads(path.read_text()) if path.is_file() else {"runs": {}, "random_init": {}}
    lock = threading.Lock()  # pretraining runs in parallel lanes; scoring (in this process) one at a time

    def job(variant: str, seed: int) -> None:
        size, overrides = VARIANTS[variant]
        run = run_variant(a.out, shards[size], variant, seed, a.steps, every, a.pretrain_args)
        with lock:
            curve = score_curve(a.out, run, shards[size], a.budgets, a.draws)
            results["runs"][run.name] = {"variant": variant, "seed": seed, "overrides": [*overrides, *a.pretrain_args],
                                         "curve": {str(k): v for k, v in curve.items()}}
            path.write_text(json.dumps(results, indent=1))

    import torch
    torch.set_num_threads(1)
    with ThreadPoolExecutor(a.lanes) as pool:
        list(pool.map(lambda j: job(*j), [(v, s) for v in a.variants for s in a.seeds]))
    for size in sizes:  # the same random init every run starts from (seed 0), for scale
        init = pretrain_and_export(a.out, f"scratch{size}", ["mode=scratch", f"data.labelled=[{shards[size]}/gz1]",
                                                             f"augment.crop_size={size}", f"augment.resize_size={size}"])
        results["random_init"][str(size)] = validation_auc(init, shards[size], a.budgets, a.draws, a.out / "valfeatures")
    results["protocol"] = (f"validation galaxies inside the rings' train split: {a.draws} class-balanced draws, "
                           f"budgets {a.budgets}, standardised logistic regression (benchmarks.real_sweep."
                           f"validation_scores); demo.yaml pretraining, {a.steps} steps, checkpoint every {every}")
    path.write_text(json.dumps(results, indent=1))
    print(table(results, BATCH))
    if a.plot:
        inits = {f"random init ({k} px)": (v, v, v) for k, v in results["random_init"].items()}
        plot_curves(seed_curves(results, BATCH), inits, a.plot, "validation ring AUC (mean over budgets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
