"""Benchmark outputs: the resumable cell log, and results.json/.csv/.md, results_modes.csv,
results_differences.csv + label_curve.png.

``cells.jsonl`` gets one line per finished (backbone, protocol, budget, seed) cell, with its
prediction for every test galaxy, flushed and fsynced as it finishes, so a killed run loses at
most the cell it was computing. The headline tables are by mode (``bootstrap``); the per-backbone
tables follow them.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from hybridssl.storage.atomic import atomic_path, atomic_write_text
from hybridssl.evaluate.bootstrap import MEAN, BootstrapConfig, compare_groups
from hybridssl.evaluate.metrics import METRICS, summarise

CELLS = "cells.jsonl"
PROTOCOL_NAMES = {"linear": "linear probe (frozen features)", "knn": "kNN (frozen features)",
                  "finetune": "fine-tuned backbone"}


def cell_key(cell: dict) -> tuple:
    return cell["backbone"], cell["protocol"], str(cell["budget"]), int(cell["seed"])


def load_cells(out_dir: str | os.PathLike) -> list[dict]:
    """Finished cells; a line torn by a kill (always the last) is dropped and cut off the file."""
    path = Path(out_dir) / CELLS
    if not path.exists():
        return []
    text = path.read_text()
    complete, _, torn = text.rpartition("\n")
    if torn:  # so the next append starts on a fresh line
        atomic_write_text(path, complete + "\n" if complete else "")
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def append_cell(out_dir: str | os.PathLike, cell: dict) -> None:
    path = Path(out_dir) / CELLS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(cell, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def method_name(cell: dict) -> str:
    return f"{cell['backbone']} {cell['protocol']}"


def summary_table(cells: Iterable[dict], budgets: Sequence) -> pd.DataFrame:
    """One row per (method, budget): mean, std and 95% t-interval half-width of every metric over
    probe seeds. Methods are sorted by their measured mean accuracy over budgets, best first."""
    df = pd.DataFrame([{"method": method_name(c), "backbone": c["backbone"], "protocol": c["protocol"],
                        "budget": str(c["budget"]), "n_labels": c["n_labels"], **c["scores"]}
                       for c in cells])
    rows = []
    for (method, budget), g in df.groupby(["method", "budget"], sort=False):
        row = {"method": method, "backbone": g.backbone.iloc[0], "protocol": g.protocol.iloc[0],
               "budget": budget, "n_labels": int(g.n_labels.iloc[0])}
        for m in METRICS:
            if m in g:
                s = summarise(g[m].tolist())
                row.update({"n_seeds": s["n"], f"{m}_mean": s["mean"], f"{m}_std": s["std"],
                            f"{m}_ci95": s["ci95"]})
        rows.append(row)
    out = pd.DataFrame(rows)
    rank = out.groupby("method", sort=False).accuracy_mean.mean().rank(ascending=False, method="first")
    order = {str(b): i for i, b in enumerate(budgets)}
    return out.sort_values(["method", "budget"], key=lambda s: s.map(rank) if s.name == "method" else s.map(order),
                           ignore_index=True)


def _budget_label(budget: str, n_labels) -> str:
    if budget == MEAN:
        return "mean over budgets"
    return f"all ({int(n_labels)})" if budget == "all" else str(int(n_labels))


def markdown_table(summary: pd.DataFrame, metric: str, budgets: Sequence) -> str:
    """Rows = budgets, columns = methods, ``mean ± CI``; the best mean of each row in bold."""
    methods = list(dict.fromkeys(summary.method))
    lines = ["| labels | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for b in budgets:
        sub = summary[summary.budget == str(b)].set_index("method")
        if sub.empty or f"{metric}_mean" not in sub:
            continue
        best = sub[f"{metric}_mean"].max()
        cells = []
        for m in methods:
            if m not in sub.index or math.isnan(sub.at[m, f"{metric}_mean"]):
                cells.append("–")
                continue
            mean, ci = sub.at[m, f"{metric}_mean"], sub.at[m, f"{metric}_ci95"]
            text = f"{mean:.3f} ± {ci:.3f}" if not math.isnan(ci) else f"{mean:.3f}"
            cells.append(f"**{text}**" if mean == best else text)
        lines.append(f"| {_budget_label(str(b), int(sub.n_labels.iloc[0]))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def modes_markdown(modes: pd.DataFrame, diffs: pd.DataFrame, budgets: Sequence, cfg: BootstrapConfig) -> list[str]:
    """Per protocol: accuracy by mode with bootstrap intervals, then the paired differences."""
    parts = []
    rows = [str(b) for b in budgets] + [MEAN]
    for protocol, g in modes.groupby("protocol", sort=False):
        what = PROTOCOL_NAMES.get(protocol, protocol)
        ranked = list(dict.fromkeys(g.group))
        seeds = dict(zip(g.group, g.n_pretrain_seeds))
        g = g.set_index(["budget", "group"])
        lines = ["| labels | " + " | ".join(f"{m} ({seeds[m]} pretraining seed{'s' * (seeds[m] > 1)})"
                                            for m in ranked) + " |", "|---:|" + "---:|" * len(ranked)]
        for b in rows:
            best = max(g.at[(b, m), "accuracy_mean"] for m in ranked)
            texts = [f"{r.accuracy_mean:.3f} [{r.accuracy_lo:.3f}, {r.accuracy_hi:.3f}]"
                     for r in (g.loc[(b, m)] for m in ranked)]
            texts = [f"**{t}**" if g.at[(b, m), "accuracy_mean"] == best else t for t, m in zip(texts, ranked)]
            lines.append(f"| {_budget_label(b, g.at[(b, ranked[0]), 'n_labels'])} | " + " | ".join(texts) + " |")
        first = g.iloc[0]
        parts += [f"## {what}: accuracy by mode", "",
                  f"Accuracy of the {what} on {first.n_test} test galaxies, mean of {first.n_probe_seeds} "
                  f"probe seeds (labelled subsets) x the pretraining seeds in each heading; [lo, hi] = "
                  f"{cfg.confidence:.0%} paired bootstrap over test galaxies, pretraining seeds and probe seeds "
                  f"({cfg.draws} draws). Modes sorted by measured mean over budgets; best of each row in bold.",
                  "", *lines, ""]
        if diffs.empty:  # a single mode
            continue
        d = diffs[diffs.protocol == protocol]
        pairs = list(dict.fromkeys(zip(d.group, d.versus)))
        d = d.set_index(["budget", "group", "versus"])
        lines = ["| labels | " + " | ".join(f"{a} − {v}" for a, v in pairs) + " |", "|---:|" + "---:|" * len(pairs)]
        for b in rows:
            texts = [f"{r.difference_mean:+.3f} [{r.difference_lo:+.3f}, {r.difference_hi:+.3f}] "
                     f"{r.fraction_above_0:.2f}" for r in (d.loc[(b, a, v)] for a, v in pairs)]
            lines.append(f"| {_budget_label(b, d.at[(b, *pairs[0]), 'n_labels'])} | " + " | ".join(texts) + " |")
        parts += [f"## {what}: paired differences between modes", "",
                  f"Mean difference in accuracy on the same {first.n_test} test galaxies; [lo, hi] = "
                  f"{cfg.confidence:.0%} paired bootstrap interval ({cfg.draws} draws); the last figure is the "
                  f"fraction of draws in which the difference is > 0.", "", *lines, ""]
    return parts


def results_markdown(summary: pd.DataFrame, modes: pd.DataFrame, diffs: pd.DataFrame, budgets: Sequence,
                     cfg: BootstrapConfig, title: str, notes: Sequence[str], headline: Sequence[str] = ()) -> str:
    """``headline`` (markdown lines, e.g. the repeated-splits tables) comes before the fixed split's tables."""
    fixed = ["# The task's fixed train/test split", ""] if headline else []
    parts = [f"# {title}", "", *notes, "", *headline, *fixed, *modes_markdown(modes, diffs, budgets, cfg)]
    n_seeds = int(summary.n_seeds.max())
    for metric in METRICS:
        if f"{metric}_mean" in summary and summary[f"{metric}_mean"].notna().any():
            parts += [f"## Per backbone: {metric.replace('_', ' ')}", "",
                      f"Mean ± 95% t-interval over {n_seeds} probe seeds (labelled subsets) of each backbone, "
                      "the test galaxies fixed; best of each row in bold.", "",
                      markdown_table(summary, metric, budgets), ""]
    return "\n".join(parts)


def plot_label_curve(modes: pd.DataFrame, path: str | os.PathLike, confidence: float, title: str = "") -> None:
    """Accuracy vs number of labels (log x), one line per mode and protocol with its bootstrap band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    styles = {"linear": "-", "finetune": "--", "knn": ":"}
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(modes.group))}  # one colour per mode
    curves = modes[modes.budget != MEAN]
    for (group, protocol), g in curves.groupby(["group", "protocol"], sort=False):
        g = g.sort_values("n_labels")
        ax.plot(g.n_labels, g.accuracy_mean, styles.get(protocol, "-"), color=colours[group], marker="o", ms=3,
                label=f"{group} {protocol} (pretraining seeds: {g.n_pretrain_seeds.iloc[0]})")
        ax.fill_between(g.n_labels.astype(float), g.accuracy_lo, g.accuracy_hi, color=colours[group], alpha=0.12,
                        lw=0)
    ax.set_xscale("log")
    ticks = sorted(int(n) for n in curves.n_labels.unique())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(f"training labels\nmean of {modes.n_probe_seeds.iloc[0]} probe seeds x pretraining seeds; band: "
                  f"{confidence:.0%} paired bootstrap over test galaxies and seeds", fontsize=8)
    ax.set_ylabel(f"accuracy on {modes.n_test.iloc[0]} test galaxies")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_reports(out_dir: str | os.PathLike, cells: list[dict], budgets: Sequence, y_test: np.ndarray,
                  cfg: BootstrapConfig, provenance: dict, title: str, notes: Sequence[str],
                  headline: Sequence[str] = (), extra: dict | None = None) -> dict[str, Path]:
    """results.json (the cells without their per-galaxy predictions, the summaries and ``provenance``),
    results.csv (per backbone), results_modes.csv and results_differences.csv (bootstrap by mode),
    results.md and label_curve.png; returns their paths."""
    out = Path(out_dir)
    summary = summary_table(cells, budgets)
    mode_rows, diff_rows = compare_groups(cells, y_test, budgets, cfg)
    # n_labels is empty on the mean-over-budgets rows: keep the others whole numbers
    modes, diffs = (df.astype({"n_labels": "Int64"}) if len(df) else df
                    for df in (pd.DataFrame(mode_rows), pd.DataFrame(diff_rows)))  # one mode: no differences
    paths = {k: out / f for k, f in [("json", "results.json"), ("csv", "results.csv"),
                                      ("modes_csv", "results_modes.csv"), ("differences_csv", "results_differences.csv"),
                                      ("md", "results.md"), ("png", "label_curve.png")]}
    doc = {**provenance, **(extra or {}), "summary": summary.to_dict(orient="records"), "modes": mode_rows,
           "differences": diff_rows,
           "cells": [{k: v for k, v in c.items() if k != "test_pred"} for c in sorted(cells, key=cell_key)]}
    atomic_write_text(paths["json"], json.dumps(_json_safe(doc), indent=1, sort_keys=True))
    atomic_write_text(paths["csv"], summary.to_csv(index=False))
    atomic_write_text(paths["modes_csv"], modes.assign(backbones=modes.backbones.str.join(" ")).to_csv(index=False))
    atomic_write_text(paths["differences_csv"], diffs.to_csv(index=False))
    atomic_write_text(paths["md"], results_markdown(summary, modes, diffs, budgets, cfg, title, notes,
                                                                headline))
    plot_label_curve(modes, paths["png"], cfg.confidence, title=title)
    return paths


def _json_safe(x):
    """NaN (a single seed has no spread) becomes null: strict JSON has no NaN."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x
