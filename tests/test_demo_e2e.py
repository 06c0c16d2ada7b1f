"""The synthetic demo end to end, tiny: the very script `make demo-synthetic` runs (benchmarks/demo_synthetic.sh).

generate -> prepare -> pretrain (all four modes, a few steps) -> export -> benchmark -> apply (predict,
calibrate, embed, similar, anomalies, acquire). Proves in CI that the flow a user starts with still
works; the numbers are not checked (they mean nothing at this size).
"""
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch

REPO = Path(__file__).resolve().parents[1]
MODES = ["hybrid", "byol", "supervised", "scratch"]


@pytest.mark.e2e
@pytest.mark.timeout(1000)  # above the subprocess's own 900 s limit
def test_demo_pipeline_tiny(tmp_path, warm_cli):
    env = dict(os.environ, **warm_cli, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",  # hybridssl forked warm
               DEMO_LABELLED="96", DEMO_UNLABELLED="64", DEMO_DOWNSTREAM="80", DEMO_HELDOUT="60", DEMO_SIZE="32",
               DEMO_WORKERS="1",
               PRETRAIN_ARGS=("trainer.max_steps=3 trainer.checkpoint_every_n_steps=2 optim.warmup_steps=1 data.batch_size=8 "
                              "data.num_workers=0 augment.crop_size=32 augment.resize_size=32 "
                              "augment.blur_kernel=3"),
               BENCHMARK_ARGS=("budgets=[10,all] seeds=[0,1] protocols=[linear,knn] linear.cv_folds=2 "
                               "repeated.draws=3 repeated.budgets=[4,8] repeated.probe.cv_folds=2 bootstrap.draws=200"))
    out = tmp_path / "demo"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "demo_synthetic.sh"), str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    for mode in MODES:  # each export loads in timm as the README promises
        export = out / "export" / mode
        info = json.loads((export / "config.json").read_text())
        assert info["mode"] == mode
        model = timm.create_model(info["architecture"], pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay=dict(file=str(export / "model.safetensors")))
        feats = model.eval()(torch.zeros(1, 3, 32, 32))
        assert feats.shape == (1, info["num_features"])
    assert (out / "export" / "hybrid" / "head.safetensors").exists()
    assert not (out / "export" / "byol" / "head.safetensors").exists()

    results = json.loads((out / "benchmark" / "results.json").read_text())
    methods = {c["backbone"] for c in results["cells"]}
    assert methods == {*MODES, "photometric", "colour"}  # scratch is the random init
    table = (out / "benchmark" / "results.md").read_text()
    assert all(m in table for m in MODES)
    assert (out / "benchmark" / "label_curve.png").stat().st_size > 0
    assert "results.md" in proc.stdout or "|" in proc.stdout  # the table is printed

    apply = out / "apply"
    preds = pd.read_parquet(apply / "heldout_predictions.parquet")
    assert len(preds) == 60 and "smooth-or-featured-dr5_smooth_fraction_lo" in preds.columns
    calibration = json.loads((apply / "calibration" / "calibration.json").read_text())
    assert calibration["overall"]["n"] > 0
    neighbours = pd.read_csv(apply / "similar.csv")
    flagged = pd.read_csv(apply / "flagged.csv")
    assert neighbours["id_str"].iloc[0] == flagged["id_str"].iloc[0]  # the query is its own nearest
    ranked = pd.read_csv(apply / "anomalies.csv")
    assert len(ranked) == 60 - len(flagged) and not set(ranked["id_str"]) & set(flagged["id_str"])
    assert len(pd.read_csv(apply / "acquire.csv")) == 64  # asked for 100 of a 64-galaxy pool
    for png in ("calibration/reliability.png", "similar.png", "anomalies.png", "acquire.png"):
        assert (apply / png).stat().st_size > 0
