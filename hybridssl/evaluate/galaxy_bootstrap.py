"""Intervals for the repeated-splits design, by a bootstrap over galaxies and draws.

Input: the per-galaxy predictions (one row per feature set, draw, budget and test galaxy; the
file ``predictions.parquet`` of a benchmark), so anyone can recompute the intervals. Each
replicate resamples, with replacement:

* the task's galaxies: galaxy ``g`` drawn ``w_g`` times weighs ``w_g`` in every test half it is
  in (0 = left out), the same weights for every feature set, so differences are paired;
* the draws: each draw's score counts as often as the draw is drawn;
* the pretraining seeds within a group (backbones named ``MODE_seedK``); runs are not paired.

A draw's scores under weights ``w``: ROC AUC (for more than two classes the mean of one-vs-rest
AUCs) as the weighted share of (positive, negative) pairs ranked right (ties half), balanced
accuracy as the mean of weighted per-class recalls, and the weighted mean log-loss. The point
estimates are the unweighted scores averaged over draws (and budgets, for the mean), and the
intervals percentiles of the replicates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from hybridssl.evaluate.bootstrap import MEAN, groups, interval

METRICS = ("auc", "accuracy", "log_loss")


@dataclass
class Scores:
    point: dict   # (metric, budget) -> float
    boot: dict    # (metric, budget) -> (replicates,)


def weighted_scores(w: np.ndarray, y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric under each row of galaxy weights ``w`` (r, m); ``y`` (m,) class indices, ``p`` (m, C)."""
    n_classes = p.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = []
        for c in ([1] if n_classes == 2 else range(n_classes)):
            pos, neg = y == c, y != c
            s_pos, s_neg = p[pos, c], p[neg, c]
            ranked = (s_pos[:, None] > s_neg[None, :]) + 0.5 * (s_pos[:, None] == s_neg[None, :])
            wp, wn = w[:, pos], w[:, neg]
            aucs.append(((wp @ ranked) * wn).sum(1) / (wp.sum(1) * wn.sum(1)))
        right = p.argmax(1) == y
        recalls = [(w[:, y == c] * right[y == c]).sum(1) / w[:, y == c].sum(1) for c in range(n_classes)]
        loss = -np.log(np.clip(p[np.arange(len(y)), y], 1e-15, None))
        return {"auc": np.mean(aucs, axis=0), "accuracy": np.mean(recalls, axis=0),
                "log_loss": (w @ loss) / w.sum(1)}


def feature_set_scores(pred: pd.DataFrame, classes: Sequence[str], galaxy: dict, w: np.ndarray,
                       v: np.ndarray) -> Scores:
    """Point scores and replicates of one feature set's predictions (one ``tta`` value)."""
    label_index = {c: i for i, c in enumerate(classes)}
    columns = [f"p_{c}" for c in classes]
    point, boot = {}, {}
    budgets = list(dict.fromkeys(pred.budget))
    for b in budgets:
        per_draw = {m: [] for m in METRICS}
        rep = {m: [] for m in METRICS}
        draws = sorted(pred.draw[pred.budget == b].unique())
        for d in draws:
            rows = pred[(pred.budget == b) & (pred.draw == d)]
            gi = rows.id_str.map(galaxy).to_numpy()
            y = rows.label.map(label_index).to_numpy()
            p = rows[columns].to_numpy(np.float64)
            plain = weighted_scores(np.ones((1, len(gi))), y, p)
            weighted = weighted_scores(w[:, gi], y, p)
            for m in METRICS:
                per_draw[m].append(plain[m][0])
                rep[m].append(weighted[m])
        vd = v[:, draws]
        for m in METRICS:
            point[(m, b)] = float(np.mean(per_draw[m]))
            r = np.stack(rep[m], axis=1)  # (replicates, draws)
            ok = ~np.isnan(r)  # a class left with no weight in a draw's test half: that draw sits out
            boot[(m, b)] = (np.where(ok, r, 0) * vd).sum(1) / (vd * ok).sum(1)
    for m in METRICS:
        point[(m, MEAN)] = float(np.mean([point[(m, b)] for b in budgets]))
        boot[(m, MEAN)] = np.mean([boot[(m, b)] for b in budgets], axis=0)
    return Scores(point, boot)


def compare(pred: pd.DataFrame, classes: Sequence[str], against: Sequence[str], baselines: Sequence[str],
            n_boot: int, seed: int, confidence: float) -> tuple[list[dict], list[dict]]:
    """(score rows by group and budget, paired difference rows) from the predictions of one ``tta``
    value. Groups are sorted by mean AUC; differences: every group minus each group of ``against``
    (e.g. the photometric baseline and the random init), then every pair of groups that are not
    ``baselines``, the higher mean AUC first."""
    rng = np.random.default_rng(seed)
    ids = sorted(pred.id_str.unique())
    galaxy = {g: i for i, g in enumerate(ids)}
    n_draws = int(pred.draw.max()) + 1
    w = rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=n_boot).astype(np.float64)
    v = rng.multinomial(n_draws, np.full(n_draws, 1 / n_draws), size=n_boot).astype(np.float64)
    scores = {name: feature_set_scores(pred[pred.feature_set == name], classes, galaxy, w, v)
              for name in dict.fromkeys(pred.feature_set)}
    members = groups(list(scores))
    point, boot = {}, {}
    for g, names in members.items():
        seeds = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=n_boot).astype(np.float64)
        for key in scores[names[0]].point:
            point[g, key] = float(np.mean([scores[n].point[key] for n in names]))
            boot[g, key] = sum(seeds[:, i] * scores[n].boot[key] for i, n in enumerate(names)) / len(names)
    budgets = [*dict.fromkeys(pred.budget), MEAN]
    ranked = sorted(members, key=lambda g: -point[g, ("auc", MEAN)])
    n_test = pred.groupby(["feature_set", "draw", "budget"]).size().iloc[0]

    def row(g, b):
        out = {"group": g, "backbones": members[g], "budget": b, "n_test": int(n_test), "n_draws": n_draws}
        for m in METRICS:
            lo, hi = interval(boot[g, (m, b)], confidence)
            out.update({f"{m}_mean": point[g, (m, b)], f"{m}_lo": lo, f"{m}_hi": hi})
        return out

    def difference(g, versus, b):
        out = {"group": g, "versus": versus, "budget": b}
        for m in METRICS:
            d = boot[g, (m, b)] - boot[versus, (m, b)]
            lo, hi = interval(d, confidence)
            out.update({f"{m}_difference": point[g, (m, b)] - point[versus, (m, b)], f"{m}_lo": lo, f"{m}_hi": hi,
                        f"{m}_fraction_above_0": float(np.mean(d > 0))})
        return out

    against = [a for a in against if a in members]
    pairs = [(g, a) for a in against for g in ranked if g != a]
    modes = [g for g in ranked if g not in against and g not in baselines]
    pairs += [(a, b) for i, a in enumerate(modes) for b in modes[i + 1:]]
    return ([row(g, b) for g in ranked for b in budgets],
            [difference(g, v_, b) for g, v_ in pairs for b in budgets])
