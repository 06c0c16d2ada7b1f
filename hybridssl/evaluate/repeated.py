"""The repeated-splits design, the benchmark's headline for small tasks: probes over class-balanced
draws of every galaxy of the task (``draws``), per-galaxy predictions, and their tables with
bootstrap intervals over galaxies and draws (``galaxy_bootstrap``).

The probe is the benchmark's linear probe (``probes.linear_probe``: standardised features,
logistic regression with C chosen by stratified CV inside the labelled subset, seeded by the draw).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np
import pandas as pd
from omegaconf import MISSING

from hybridssl.cli import progress
from hybridssl.evaluate.bootstrap import MEAN, BootstrapConfig
from hybridssl.evaluate.draws import Draw
from hybridssl.evaluate.galaxy_bootstrap import compare
from hybridssl.evaluate.probes import LinearProbeConfig, linear_probe

PREDICTIONS = "predictions.parquet"


@dataclass
class RepeatedConfig:
    draws: int = MISSING           # class-balanced draws over every galaxy of the task; 0 = off
    budgets: List[int] = MISSING   # labels per draw, class-balanced and nested
    seed: int = MISSING            # draw d uses the generator seeded by (seed, d)
    tta: bool = MISSING            # also report features averaged over the 8 rotations/flips (D4)
    probe: LinearProbeConfig = field(default_factory=LinearProbeConfig)


def predict_draws(name: str, x: np.ndarray, y: np.ndarray, ids: Sequence[str], classes: Sequence[str],
                  draws: Sequence[Draw], cfg: LinearProbeConfig, tta: bool) -> pd.DataFrame:
    """One row per draw, budget and test galaxy: the probe's class probabilities (``p_CLASS``)."""
    ids, frames = np.asarray(ids), []
    bar = progress(total=len(draws) * len(draws[0].labelled), desc=f"probes {name}", unit="fit", leave=False)
    for d in draws:
        for budget, rows in d.labelled.items():
            probs, _ = linear_probe(x[rows], y[rows], x[d.test], cfg, len(classes), seed=d.index)
            frames.append(pd.DataFrame({"feature_set": name, "tta": tta, "draw": d.index, "budget": budget,
                                        "id_str": ids[d.test], "label": np.asarray(classes)[y[d.test]],
                                        **{f"p_{c}": probs[:, i] for i, c in enumerate(classes)}}))
            bar.update()
    bar.close()
    return pd.concat(frames, ignore_index=True)


def summarise(pred: pd.DataFrame, classes: Sequence[str], against: Sequence[str], baselines: Sequence[str],
              cfg: BootstrapConfig) -> dict[bool, tuple[list[dict], list[dict]]]:
    """``{tta: (score rows, difference rows)}`` for the plain features and, if present, the D4-averaged ones."""
    return {bool(t): compare(pred[pred.tta == t], classes, against, baselines, cfg.draws, cfg.seed, cfg.confidence)
            for t in sorted(pred.tta.unique())}


def _iv(mean: float, lo: float, hi: float, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(mean)} [{f.format(lo)}, {f.format(hi)}]"


def markdown(results: dict, budgets: Sequence[int], kinds: dict[str, str], n_galaxies: int, n_draws: int,
             cfg: BootstrapConfig) -> list[str]:
    """The headline tables: scores by group (AUC per budget, mean AUC, accuracy and log-loss with
    intervals), then the paired differences in mean AUC."""
    parts = []
    for tta, (rows, diffs) in results.items():
        when = " (features averaged over the 8 rotations/flips)" if tta else ""
        by = {(r["group"], str(r["budget"])): r for r in rows}
        groups = list(dict.fromkeys(r["group"] for r in rows))
        n_test = rows[0]["n_test"]
        head = ("| | " + " | ".join(f"AUC {b}" for b in budgets)
                + " | mean AUC | mean accuracy | mean log-loss |")
        lines = [head, "|---|" + "---:|" * (len(budgets) + 3)]
        for g in groups:
            m = by[g, MEAN]
            label = f"{g} ({kinds[g]})" if kinds.get(g) else g
            lines.append(f"| {label} | " + " | ".join(f"{by[g, str(b)]['auc_mean']:.3f}" for b in budgets)
                         + f" | {_iv(m['auc_mean'], m['auc_lo'], m['auc_hi'])}"
                         + f" | {_iv(m['accuracy_mean'], m['accuracy_lo'], m['accuracy_hi'])}"
                         + f" | {_iv(m['log_loss_mean'], m['log_loss_lo'], m['log_loss_hi'])} |")
        parts += [f"## Repeated class-balanced splits: ROC AUC{when}", "",
                  f"{n_draws} draws over all {n_galaxies} galaxies of the task: each draw tests on a class-balanced "
                  f"half ({n_test} galaxies) and trains a standardised logistic regression (C by cross-validation) "
                  f"on {', '.join(map(str, budgets))} class-balanced labels from the other half; the same draws for "
                  f"every row. Scores are means over draws (accuracy on the balanced test half = balanced accuracy); "
                  f"mean = over budgets; [lo, hi] = {cfg.confidence:.0%} bootstrap over galaxies and draws "
                  f"({cfg.draws} replicates). Rows sorted by mean AUC.", "", *lines, ""]
        if not diffs:
            continue
        pairs = list(dict.fromkeys((d["group"], d["versus"]) for d in diffs))
        dby = {(d["group"], d["versus"], str(d["budget"])): d for d in diffs}
        lines = ["| difference | " + " | ".join(f"AUC {b}" for b in budgets)
                 + " | mean AUC | share of replicates > 0 | mean accuracy |",
                 "|---|" + "---:|" * (len(budgets) + 3)]
        for g, v in pairs:
            m = dby[g, v, MEAN]
            per_budget = " | ".join(f"{dby[g, v, str(b)]['auc_difference']:+.3f}" for b in budgets)
            lines.append(f"| {g} − {v} | {per_budget}"
                         + f" | {_iv(m['auc_difference'], m['auc_lo'], m['auc_hi'], True)}"
                         + f" | {m['auc_fraction_above_0']:.2f}"
                         + f" | {_iv(m['accuracy_difference'], m['accuracy_lo'], m['accuracy_hi'], True)} |")
        parts += [f"## Repeated splits: paired differences{when}", "",
                  "Differences on the same draws and galaxies; [lo, hi] = the same bootstrap, paired.", "",
                  *lines, ""]
    return parts
