"""Paired, hierarchical bootstrap of benchmark accuracy by mode.

Backbones named ``MODE_seedK`` are the pretraining seeds of one group (mode); any other name
is a group of its own. Each bootstrap draw resamples, with replacement:

* the test galaxies, once per draw and the SAME resample for every backbone, budget and
  protocol, so differences between modes are paired on the same galaxies;
* the probe seeds (each one a labelled subset + CV split), also shared by every backbone,
  because seed ``s`` gives every backbone the same labelled galaxies;
* the pretraining seeds, independently within each group (different runs are not paired).

A group's accuracy in a draw is the weighted mean of its cells' accuracies on the resampled
test galaxies, which makes 2,000 draws a few matrix products. The weights are whole resample
counts until the final division, so the sums are exact: two backbones with the same predictions
differ by exactly 0 in every draw. Intervals are percentiles of the draws; point estimates are
the plain means over the cells.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from omegaconf import MISSING

MEAN = "mean"  # the budget label of the mean over budgets
_SEED = re.compile(r"(.+)_seed\d+")


@dataclass
class BootstrapConfig:
    draws: int = MISSING              # bootstrap draws
    seed: int = MISSING               # of the draws, so the intervals are reproducible
    confidence: float = MISSING       # of the percentile intervals
    reference: Optional[str] = MISSING  # group every other mode is compared with (e.g. scratch)


def group_of(backbone: str) -> str:
    """``hybrid_seed2`` -> ``hybrid``; a name without a ``_seedK`` suffix is its own group."""
    m = _SEED.fullmatch(backbone)
    return m.group(1) if m else backbone


def groups(backbones: Sequence[str]) -> dict[str, list[str]]:
    """``{group: its backbones, sorted}``, groups in first-seen order."""
    out: dict[str, list[str]] = {}
    for b in backbones:
        out.setdefault(group_of(b), []).append(b)
    return {g: sorted(members) for g, members in out.items()}


@dataclass
class Draws:
    """Resample counts (how often each item is drawn) shared by every accuracy computed from them."""
    test: np.ndarray               # (draws, n_test)
    probe: np.ndarray              # (draws, n_probe_seeds)
    pretrain: dict[str, np.ndarray]  # group -> (draws, n_pretraining_seeds)


def draw(n_test: int, n_probe: int, group_sizes: dict[str, int], n_draws: int, seed: int) -> Draws:
    rng = np.random.default_rng(seed)

    def counts(n):  # of a with-replacement resample of n items; float64 holds them (and their sums) exactly
        picks = rng.integers(0, n, (n_draws, n)) + n * np.arange(n_draws)[:, None]  # row-offset item indices
        return np.bincount(picks.ravel(), minlength=n_draws * n).reshape(n_draws, n).astype(np.float64)

    return Draws(counts(n_test), counts(n_probe), {g: counts(p) for g, p in group_sizes.items()})


def resampled_accuracy(correct: np.ndarray, draws: Draws, group: str) -> np.ndarray:
    """Accuracy of a group in every draw; ``correct``: (pretraining seeds, probe seeds, n_test) bool."""
    p, s, n = correct.shape
    hits = (correct.reshape(p * s, n).astype(np.float64) @ draws.test.T).reshape(p, s, -1)  # (p, s, draws)
    return np.einsum("psd,dp,ds->d", hits, draws.pretrain[group], draws.probe) / (p * s * n)


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def correctness(cells: Sequence[dict], y_test: np.ndarray, members: Sequence[str], seeds: Sequence[int],
                budget: str) -> np.ndarray:
    """(pretraining seeds, probe seeds, n_test) bool from the cells' per-galaxy predictions."""
    by_key = {(c["backbone"], int(c["seed"])): c for c in cells if str(c["budget"]) == budget}
    out = np.empty((len(members), len(seeds), len(y_test)), dtype=bool)
    for i, b in enumerate(members):
        for j, s in enumerate(seeds):
            cell = by_key.get((b, s))
            if cell is None or len(cell.get("test_pred", ())) != len(y_test):
                raise ValueError(f"cell {b} {cell and cell['protocol']} budget {budget} seed {s}: no per-galaxy "
                                 f"predictions for the {len(y_test)} test galaxies; re-run the benchmark")
            out[i, j] = np.asarray(cell["test_pred"]) == y_test
    return out


def compare_groups(cells: Sequence[dict], y_test: np.ndarray, budgets: Sequence, cfg: BootstrapConfig
                   ) -> tuple[list[dict], list[dict]]:
    """Per protocol: every group's accuracy by budget (and the mean over budgets) with its interval,
    and the paired differences between groups. Groups come out sorted by measured mean accuracy
    over budgets; a difference is ``group - versus`` where ``group`` ranks higher, except that
    every group is compared as ``group - reference`` with the reference group."""
    budgets = [str(b) for b in budgets]
    seeds = sorted({int(c["seed"]) for c in cells})
    everyone = groups(list(dict.fromkeys(c["backbone"] for c in cells)))
    n_labels = {str(c["budget"]): int(c["n_labels"]) for c in cells}
    draws = draw(len(y_test), len(seeds), {g: len(m) for g, m in everyone.items()}, cfg.draws, cfg.seed)
    acc_rows, diff_rows = [], []
    for protocol in dict.fromkeys(c["protocol"] for c in cells):
        mine = [c for c in cells if c["protocol"] == protocol]
        # pixel baselines have no fine-tuned cells: each protocol ranks the groups it has
        members = groups(list(dict.fromkeys(c["backbone"] for c in mine)))
        point, boot = {}, {}  # group -> {budget: mean}, {budget: (draws,)}
        for g, m in members.items():
            correct = {b: correctness(mine, y_test, m, seeds, b) for b in budgets}
            point[g] = {b: float(correct[b].mean()) for b in budgets}
            boot[g] = {b: resampled_accuracy(correct[b], draws, g) for b in budgets}
            point[g][MEAN] = float(np.mean([point[g][b] for b in budgets]))
            boot[g][MEAN] = np.mean([boot[g][b] for b in budgets], axis=0)
        ranked = sorted(members, key=lambda g: -point[g][MEAN])
        for g in ranked:
            for b in [*budgets, MEAN]:
                lo, hi = interval(boot[g][b], cfg.confidence)
                acc_rows.append({"protocol": protocol, "group": g, "backbones": members[g], "budget": b,
                                 "n_labels": n_labels.get(b), "n_pretrain_seeds": len(members[g]),
                                 "n_probe_seeds": len(seeds), "n_test": len(y_test), "accuracy_mean": point[g][b],
                                 "accuracy_lo": lo, "accuracy_hi": hi})
        for g, v in _pairs(ranked, cfg.reference):
            for b in [*budgets, MEAN]:
                d = boot[g][b] - boot[v][b]
                lo, hi = interval(d, cfg.confidence)
                diff_rows.append({"protocol": protocol, "group": g, "versus": v, "budget": b,
                                  "n_labels": n_labels.get(b), "difference_mean": point[g][b] - point[v][b],
                                  "difference_lo": lo, "difference_hi": hi,
                                  "fraction_above_0": float(np.mean(d > 0))})
    return acc_rows, diff_rows


def _pairs(ranked: list[str], reference: Optional[str]) -> list[tuple[str, str]]:
    """Every group minus the reference first, then the other pairs as higher-ranked minus lower."""
    first = [(g, reference) for g in ranked if reference in ranked and g != reference]
    rest = [(a, b) for a, b in itertools.combinations(ranked, 2) if reference not in (a, b)]
    return first + rest
