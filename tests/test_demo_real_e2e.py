"""The real-galaxy demo end to end, tiny: the very script `make demo` runs (benchmarks/demo.sh) on
a handful of the shipped real galaxies: prepare (GZ1 classes as pseudo-votes) -> pretrain all
four modes a few steps -> export -> both real benchmarks -> apply. The numbers are not checked
(they mean nothing at this size); the data flow and the held-out guarantees are.
"""
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
MODES = ["hybrid", "byol", "supervised", "scratch"]
TINY_PRETRAIN = ("trainer.max_steps=3 trainer.checkpoint_every_n_steps=2 optim.warmup_steps=1 data.batch_size=8 "
                 "data.num_workers=0 augment.crop_size=32 augment.resize_size=32 augment.blur_kernel=3")


@pytest.mark.e2e
@pytest.mark.timeout(1000)  # above the subprocess's own 900 s limit
def test_real_demo_pipeline_tiny(tmp_path, warm_cli):
    env = dict(os.environ, **warm_cli, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",  # hybridssl forked warm
               DEMO_LIMIT="16", DEMO_SIZE="32", DEMO_WORKERS="1", PRETRAIN_ARGS=TINY_PRETRAIN,
               DEMO_RELEASED="0",  # weights/ holds 64 px backbones; tests/benchmarks/test_release.py checks them
               # make demo runs the repeated-split headline only; the fixed-split grid is kept working here
               BENCHMARK_ARGS=("protocols=[linear,knn] budgets=[4,all] seeds=[0,1] linear.cv_folds=2 knn.k=3 repeated.draws=3 "
                               "repeated.budgets=[4,8] repeated.probe.cv_folds=2 bootstrap.draws=200"))
    out = tmp_path / "demo"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "demo.sh"), str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    gz1 = json.loads((out / "shards" / "gz1" / "manifest.json").read_text())
    assert gz1["labelled"] and gz1["votes_are"] == "pseudo"
    pretrained = set(pd.read_csv(out / "data" / "gz1.csv", dtype=str).id_str)
    mergers = pd.read_csv(out / "data" / "mergers.csv", dtype=str)
    # same id system (GZ1 objids) only; every pool against both tasks, by image: tests/data_prep/test_overlaps.py
    assert not pretrained & set(mergers.id_str)

    for task in ("rings", "mergers"):  # scratch is the random init; the pixel baselines are rows too
        results = json.loads((out / "benchmark" / task / "results.json").read_text())
        assert {c["backbone"] for c in results["cells"]} == {*MODES, "photometric", "colour"}
        assert {c["budget"] for c in results["cells"]} >= {4}
        assert {r["group"] for r in results["repeated"]["plain"]["scores"]} == {*MODES, "photometric", "colour"}
        predictions = pd.read_parquet(out / "benchmark" / task / "predictions.parquet")
        assert set(predictions.draw) == {0, 1, 2} and set(predictions.budget) == {4, 8}
        headline = (out / "benchmark" / task / "results.md").read_text().split("## Repeated splits: paired", 1)[0]
        assert headline.split("## Repeated class-balanced splits", 1)[1] in proc.stdout  # the table is printed
    for mode in MODES:
        assert json.loads((out / "export" / mode / "config.json").read_text())["mode"] == mode

    apply = out / "apply"
    assert len(pd.read_parquet(apply / "mergers_predictions.parquet")) == len(mergers)
    flagged = pd.read_csv(apply / "flagged.csv", dtype=str)
    assert set(flagged.id_str) <= set(mergers[(mergers.merger == "1") & (mergers.split == "train")].id_str)
    assert pd.read_csv(apply / "similar.csv", dtype=str)["id_str"].iloc[0] == flagged["id_str"].iloc[0]
    ranked = pd.read_csv(apply / "anomalies.csv", dtype=str)
    assert not set(ranked.id_str) & set(flagged.id_str) and "merger" in ranked.columns
    assert len(pd.read_csv(apply / "acquire.csv")) == 16  # asked for 100 of a 16-galaxy pool
