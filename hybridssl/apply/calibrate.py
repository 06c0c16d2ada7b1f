"""``hybridssl calibrate --model DIR (--shards D | --catalog F) --out OUTDIR``.

The calibration check of Walmsley et al. (2020, Galaxy Zoo Bayesian CNNs): for each galaxy,
question its volunteers answered (N > 0) and answer, take the smallest central interval of the
predicted vote count (Beta-Binomial, mixed over MC samples) holding at least each ``--levels``
value, and count how often the volunteers' count falls inside. Counts are discrete, so an
interval holds more than its nominal level; its mean predicted mass ("expected coverage") is
what a calibrated model's observed coverage matches. Writes calibration.json, calibration.md
and reliability.png into OUTDIR.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hybridssl.apply.inference import add_model_arguments, concentration_batches, open_model_and_source
from hybridssl.storage.atomic import atomic_path, atomic_write_text


class CalibrationError(ValueError):
    """The source cannot be used to check calibration (no votes)."""


def levels_argument(text: str) -> list[float]:
    try:
        levels = sorted({float(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not levels or not all(0 < lv < 1 for lv in levels):
        raise argparse.ArgumentTypeError(f"levels must be strictly between 0 and 1, got {text!r}")
    return levels


def add_arguments(parser) -> None:
    add_model_arguments(parser, mc_default=1)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--levels", type=levels_argument, default=[0.5, 0.68, 0.8, 0.9, 0.95],
                        help="nominal interval levels (default 0.5,0.68,0.8,0.9,0.95)")


def tally(model, dataset, args) -> dict:
    """Per question: scored (galaxy, answer) entries, galaxies, and per level the counts inside
    their intervals and the summed interval masses."""
    from hybridssl.apply.posterior import beta_marginals, count_interval_coverage

    schema, nq, nl = model.schema, model.schema.n_questions, len(args.levels)
    qidx, starts = schema.question_index, np.array([q.start for q in schema.questions])
    t = {"n": np.zeros(nq, np.int64), "galaxies": np.zeros(nq, np.int64),
         "inside": np.zeros((nl, nq)), "mass": np.zeros((nl, nq))}
    for batch, conc in concentration_batches(model, dataset, args, "calibrate"):
        votes = np.rint(batch["votes"].numpy()).astype(np.int64)  # catalog votes are whole; shards store float32
        asked = np.add.reduceat(votes, starts, axis=1)             # (B, n_questions) volunteers asked
        gal, ans = np.nonzero(asked[:, qidx] > 0)                  # questions without votes contribute nothing
        a, b = beta_marginals(conc, qidx)
        inside, mass = count_interval_coverage(a[:, gal, ans], b[:, gal, ans], asked[gal, qidx[ans]],
                                               votes[gal, ans], args.levels)
        q = qidx[ans]
        t["n"] += np.bincount(q, minlength=nq)
        t["galaxies"] += (asked > 0).sum(0)
        for li in range(nl):
            t["inside"][li] += np.bincount(q, weights=inside[li], minlength=nq)
            t["mass"][li] += np.bincount(q, weights=mass[li], minlength=nq)
    return t


def summarise(t: dict, keep: np.ndarray) -> dict:
    n = int(t["n"][keep].sum())
    return {"n": n, "n_galaxy_questions": int(t["galaxies"][keep].sum()),
            "observed": [round(float(x) / n, 5) for x in t["inside"][:, keep].sum(1)],
            "expected": [round(float(x) / n, 5) for x in t["mass"][:, keep].sum(1)]}


def report(t: dict, schema, levels: list[float], provenance: dict) -> dict:
    voted = t["n"] > 0
    campaign = np.array([q.campaign for q in schema.questions])
    return {**provenance, "levels": levels, "overall": summarise(t, voted),
            "campaigns": {c: summarise(t, voted & (campaign == c)) for c in schema.campaigns
                          if (voted & (campaign == c)).any()},
            "questions": {q.name: {"campaign": q.campaign, **summarise(t, np.arange(len(voted)) == i)}
                          for i, q in enumerate(schema.questions) if voted[i]}}


def markdown(doc: dict, worst: int = 10) -> str:
    levels = doc["levels"]
    head = "| {} | n | " + " | ".join(f"{lv:g}" for lv in levels) + " |\n|---|---:|" + "---:|" * len(levels)

    def row(name, s):
        cells = " | ".join(f"{o:.3f} / {e:.3f}" for o, e in zip(s["observed"], s["expected"]))
        return f"| {name} | {s['n']} | {cells} |"

    def gap(s):
        return float(np.mean(np.abs(np.subtract(s["observed"], s["expected"]))))
    bad = sorted(doc["questions"].items(), key=lambda kv: -gap(kv[1]))[:worst]
    return "\n".join([
        f"# Calibration of {doc['model']}", "",
        f"Source: {doc['source']}; {doc['mc_samples']} MC sample(s). Each cell is observed / expected "
        "coverage of the predicted vote-count interval at that nominal level; n counts (galaxy, answer) "
        "pairs with volunteers. A calibrated model has observed = expected (expected >= nominal because "
        "counts are discrete).", "",
        head.format("campaign"), row("**overall**", doc["overall"]),
        *(row(c, s) for c, s in doc["campaigns"].items()), "",
        f"## Worst {len(bad)} questions (largest mean |observed - expected|)", "",
        head.format("question"), *(row(q, s) for q, s in bad), ""])


def plot(doc: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = doc["levels"]
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, label="nominal")
    ax.plot(levels, doc["overall"]["expected"], "k--", lw=1.5, label="expected (calibrated model)")
    ax.plot(levels, doc["overall"]["observed"], "k-o", ms=4, lw=2, label="observed, all")
    for c, s in doc["campaigns"].items():
        ax.plot(levels, s["observed"], "-o", ms=3, lw=1, label=f"observed, {c}")
    floor = min(levels + doc["overall"]["observed"] + [x for s in doc["campaigns"].values() for x in s["observed"]])
    ax.set(xlim=(min(levels) - 0.05, 1), ylim=(max(floor - 0.05, 0), 1), xlabel="nominal interval level",
           ylabel="fraction of volunteer counts inside", title="vote-count interval coverage")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def run(args) -> int:
    start = time.perf_counter()
    model, dataset = open_model_and_source(args, "calibrate")
    source = args.shards or args.catalog
    if not getattr(dataset, "labelled", False):
        raise CalibrationError(f"{source} has no votes; calibrate needs galaxies with volunteer votes "
                               "(a labelled shard set, or a catalog with the schema's vote columns)")
    t = tally(model, dataset, args)
    if not t["n"].any():
        raise CalibrationError(f"{source}: no galaxy has votes for any question of schema {model.schema.name}")
    doc = report(t, model.schema, args.levels, {"model": str(args.model), "source": str(source),
                                                "mc_samples": args.mc_samples})
    out = Path(args.out)
    atomic_write_text(out / "calibration.json", json.dumps(doc, indent=1))
    atomic_write_text(out / "calibration.md", markdown(doc))
    plot(doc, out / "reliability.png")
    o = doc["overall"]
    print(f"calibrate: {len(dataset)} galaxies, {o['n']} (galaxy, answer) counts, "
          f"{time.perf_counter() - start:.1f} s -> {out}")
    print("  level    " + " ".join(f"{lv:>6g}" for lv in args.levels))
    print("  observed " + " ".join(f"{x:6.3f}" for x in o["observed"]))
    print("  expected " + " ".join(f"{x:6.3f}" for x in o["expected"]))
    return 0
