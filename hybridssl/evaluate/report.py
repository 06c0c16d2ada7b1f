"""Benchmark outputs: the resumable cell log, and results.json/.csv/.md + label_curve.png.

``cells.jsonl`` gets one line per finished (backbone, protocol, budget, seed) cell, flushed
and fsynced as it finishes, so a killed run loses at most the cell it was computing.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from hybridssl.atomic import atomic_path, atomic_write_text
from hybridssl.evaluate.metrics import METRICS, summarise

CELLS = "cells.jsonl"


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
    """One row per (method, budget): mean, std and 95% CI half-width of every metric over seeds."""
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
    order = {str(b): i for i, b in enumerate(budgets)}
    # methods stay in the order the cells list them (the config's order)
    return pd.DataFrame(rows).sort_values("budget", key=lambda s: s.map(order), kind="stable",
                                          ignore_index=True)


def markdown_table(summary: pd.DataFrame, metric: str, budgets: Sequence) -> str:
    """Rows = budgets, columns = methods, ``mean ± CI``; the best mean of each row in bold."""
    methods = list(dict.fromkeys(summary.method))
    lines = ["| labels | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for b in budgets:
        sub = summary[summary.budget == str(b)].set_index("method")
        if sub.empty or f"{metric}_mean" not in sub:
            continue
        best = sub[f"{metric}_mean"].max()
        n = int(sub.n_labels.iloc[0])
        cells = []
        for m in methods:
            if m not in sub.index or math.isnan(sub.at[m, f"{metric}_mean"]):
                cells.append("–")
                continue
            mean, ci = sub.at[m, f"{metric}_mean"], sub.at[m, f"{metric}_ci95"]
            text = f"{mean:.3f} ± {ci:.3f}" if not math.isnan(ci) else f"{mean:.3f}"
            cells.append(f"**{text}**" if mean == best else text)
        label = f"all ({n})" if str(b) == "all" else str(n)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_markdown(summary: pd.DataFrame, budgets: Sequence, title: str, notes: Sequence[str]) -> str:
    parts = [f"# {title}", "", *notes, ""]
    for metric in METRICS:
        if f"{metric}_mean" in summary and summary[f"{metric}_mean"].notna().any():
            parts += [f"## {metric.replace('_', ' ')} (mean ± 95% CI over seeds; best per row in bold)", "",
                      markdown_table(summary, metric, budgets), ""]
    return "\n".join(parts)


def plot_label_curve(summary: pd.DataFrame, path: str | os.PathLike, metric: str = "accuracy",
                     title: str = "") -> None:
    """Metric vs number of labels (log x), one line per method with its 95% CI band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"linear": "-", "finetune": "--", "knn": ":"}
    colours = {b: f"C{i}" for i, b in enumerate(dict.fromkeys(summary.backbone))}  # one colour per backbone
    for method, g in summary.groupby("method", sort=False):
        g = g.sort_values("n_labels")
        mean, ci = g[f"{metric}_mean"], g[f"{metric}_ci95"].fillna(0)
        colour = colours[g.backbone.iloc[0]]
        ax.plot(g.n_labels, mean, styles.get(g.protocol.iloc[0], "-"), color=colour, marker="o", ms=3, label=method)
        ax.fill_between(g.n_labels, mean - ci, mean + ci, color=colour, alpha=0.12, lw=0)
    ax.set_xscale("log")
    ticks = sorted(summary.n_labels.unique())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training labels")
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_reports(out_dir: str | os.PathLike, cells: list[dict], budgets: Sequence, provenance: dict,
                  title: str, notes: Sequence[str]) -> dict[str, Path]:
    """results.json (every cell, the summary and ``provenance``), results.csv, results.md,
    label_curve.png; returns their paths."""
    out = Path(out_dir)
    summary = summary_table(cells, budgets)
    paths = {k: out / f for k, f in [("json", "results.json"), ("csv", "results.csv"),
                                      ("md", "results.md"), ("png", "label_curve.png")]}
    doc = {**provenance, "summary": _json_safe(summary.to_dict(orient="records")),
           "cells": sorted(cells, key=cell_key)}
    atomic_write_text(paths["json"], json.dumps(_json_safe(doc), indent=1, sort_keys=True))
    atomic_write_text(paths["csv"], summary.to_csv(index=False))
    atomic_write_text(paths["md"], results_markdown(summary, budgets, title, notes))
    plot_label_curve(summary, paths["png"], title=title)
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
