"""Transfer against samples seen: the repeated-split mean ROC AUC of checkpoint exports named
``MODE_stepN`` in one benchmark's results.json, with the baselines as horizontal lines.

    python -m benchmarks.curve BENCH_DIR --batch-size 32 --final-step 4376 --out docs/long_run_curve.png

Prints a markdown table (mode x samples seen) and writes the plot.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from hybridssl.evaluate.bootstrap import MEAN

STEP = re.compile(r"^(?P<mode>.+)_step(?P<step>\d+)$")


def curve_points(results: dict, batch_size: int, final_step: int | None = None) -> tuple[dict, dict]:
    """({mode: [(samples seen, auc, lo, hi)]}, {other row: (auc, lo, hi)}) from results.json; a row
    named like a curve's mode is that run's final export, at ``final_step``."""
    rows = [r for r in results["repeated"]["plain"]["scores"] if str(r["budget"]) == MEAN]
    curves, flat = {}, {}
    for r in rows:
        m = STEP.match(r["group"])
        point = (r["auc_mean"], r["auc_lo"], r["auc_hi"])
        if m:
            curves.setdefault(m["mode"], []).append((int(m["step"]) * batch_size, *point))
        else:
            flat[r["group"]] = point
    if final_step is not None:
        for mode in curves:
            if mode in flat:
                curves[mode].append((final_step * batch_size, *flat.pop(mode)))
    return {k: sorted(v) for k, v in curves.items()}, flat


def plot_curves(curves: dict, flat: dict, out: Path, ylabel: str) -> None:
    """{name: [(samples seen, y, lo, hi)]} as lines with error bars, {name: (y, lo, hi)} as dashed
    horizontal lines; a PNG at ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        x, y, lo, hi = zip(*pts)
        ax.errorbar(x, y, yerr=[[m - l for m, l in zip(y, lo)], [h - m for m, h in zip(y, hi)]], marker="o",
                    capsize=3, label=name)
    for i, (name, (y, _, _)) in enumerate(sorted(flat.items())):
        ax.axhline(y, ls="--", color=f"C{len(curves) + i}", label=name)
    ax.set_xlabel("samples seen in pretraining")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench", type=Path)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--final-step", type=int, default=None, help="the step of the exports named MODE alone")
    a = p.parse_args(argv)
    curves, flat = curve_points(json.loads((a.bench / "results.json").read_text()), a.batch_size,
                                 a.final_step)
    if not curves:
        raise SystemExit(f"curve: no backbone named MODE_stepN in {a.bench / 'results.json'}")
    plot_curves(curves, flat, a.out, "ring ROC AUC (mean over 20/50/100 labels)")
    steps = sorted({s for pts in curves.values() for s, *_ in pts})
    print("| mode | " + " | ".join(f"{s:,}" for s in steps) + " |")
    print("|---|" + "---:|" * len(steps))
    for mode, pts in curves.items():
        by = {s: f"{y:.3f}" for s, y, _, _ in pts}
        print(f"| {mode} | " + " | ".join(by.get(s, "") for s in steps) + " |")
    for name, (auc, lo, hi) in sorted(flat.items()):
        print(f"| {name} | {auc:.3f} [{lo:.3f}, {hi:.3f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
