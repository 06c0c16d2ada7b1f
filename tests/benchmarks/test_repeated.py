"""The benchmark's headline for small tasks: repeated class-balanced draws over every galaxy, with the
photometric, colour and random-init baselines as rows of every table."""
import json

import numpy as np
import pandas as pd
import pytest

from backbone_factory import write_export
from factories import write_shards
from hybridssl.cli import main
from hybridssl.config import ConfigError, config_dir, load_config
from hybridssl.evaluate.galaxy_bootstrap import compare

from benchmarks.transfer import BenchmarkConfig, benchmark

RINGS = config_dir() / "benchmark" / "real_rings.yaml"
SMALL = ["batch_size=16", "repeated.draws=4", "repeated.budgets=[4,10]", "bootstrap.draws=200",
         "repeated.probe.cv_folds=2"]


@pytest.fixture
def task(tmp_path):
    n = 40  # 17 rings, 23 not: unbalanced, so the draws must balance it
    labels = np.random.default_rng(0).permutation([1] * 17 + [0] * 23).tolist()
    return write_shards(tmp_path / "task", n, labelled=False, n_shards=2, image_size=32, seed=0,
                        keep={"ring": labels, "split": ["train"] * 26 + ["test"] * 14})


def run(tmp_path, task, backbones, *extra):
    return benchmark(load_config(BenchmarkConfig, RINGS, [f"task={task}", f"out_dir={tmp_path / 'bench'}", *SMALL,
                                                          *[f"backbones.{k}={v}" for k, v in backbones.items()],
                                                          *extra]))


def test_default_design_has_the_three_baselines_paired_draws_and_recomputable_intervals(tmp_path, task, capsys):
    bb = write_export(tmp_path / "hybrid", image_size=32, seed=3, mode="hybrid")
    assert main(["benchmark", "--config", str(RINGS), f"task={task}", f"out_dir={tmp_path / 'bench'}", *SMALL,
                 f"backbones.hybrid={bb}", "protocols=[linear]", "budgets=[4,all]", "seeds=[0]"]) == 0
    out, bench = capsys.readouterr().out, tmp_path / "bench"
    pred = pd.read_parquet(bench / "predictions.parquet")
    assert set(pred.feature_set) == {"hybrid", "random_init", "photometric", "colour"}
    assert (bench / "exports" / "random_init" / "model.safetensors").is_file()  # no scratch given: made one
    assert set(pred.budget) == {4, 10} and set(pred.draw) == {0, 1, 2, 3} and not pred.tta.any()
    tests = pred.groupby(["feature_set", "draw", "budget"]).id_str.apply(frozenset)
    for (_, draw, budget), ids in tests.items():  # the same galaxies for every row: paired
        assert ids == tests["hybrid", draw, budget]
    per_draw = pred[(pred.feature_set == "hybrid") & (pred.budget == 4)].groupby("draw").label.value_counts()
    assert set(per_draw) == {8}  # 17 rings -> 8 of each class in every test half
    assert np.allclose(pred.p_0 + pred.p_1, 1)

    doc = json.loads((bench / "results.json").read_text())
    rep = doc["repeated"]
    assert rep["design"]["n_galaxies"] == 40 and rep["design"]["class_counts"] == [23, 17]
    rows, diffs = compare(pred, ["0", "1"], ["photometric", "random_init"], ["photometric", "colour", "random_init"],
                          200, 0, 0.95)  # anyone can recompute the intervals from the predictions file
    assert json.loads(json.dumps(rows)) == rep["plain"]["scores"] and len(diffs) == len(rep["plain"]["differences"])
    assert {(d["group"], d["versus"]) for d in rep["plain"]["differences"]} >= {
        ("hybrid", "photometric"), ("hybrid", "random_init"), ("random_init", "photometric")}

    md = (bench / "results.md").read_text()
    assert md.index("## Repeated class-balanced splits: ROC AUC") < md.index("# The task's fixed train/test split")
    headline = md.split("## Repeated class-balanced splits: ROC AUC", 1)[1].split("##", 1)[0]
    assert "| | AUC 4 | AUC 10 | mean AUC | mean accuracy | mean log-loss |" in headline
    for row in ("| hybrid |", "| photometric (8 numbers from the pixels) |", "| colour (2 colours from the pixels) |",
                "| random_init (random init) |"):
        assert row in headline
    assert "| hybrid − photometric |" in md and "| hybrid − random_init |" in md
    fixed = md.split("# The task's fixed train/test split", 1)[1]
    assert all(f"{b} (1 pretraining seed)" in fixed for b in ("photometric", "colour", "random_init", "hybrid"))
    assert headline in out  # the table is printed


def test_a_scratch_backbone_is_the_random_init_and_d4_averaging_is_reported_beside(tmp_path, task, capsys):
    backbones = {"hybrid": write_export(tmp_path / "h", image_size=32, seed=3, mode="hybrid"),
                 "scratch": write_export(tmp_path / "s", image_size=32, seed=4)}
    paths = run(tmp_path, task, backbones, "protocols=[]", "repeated.tta=true")
    assert set(paths) == {"json", "md", "predictions"}  # no fixed split: no label curve
    assert not (tmp_path / "bench" / "exports" / "random_init").exists()
    pred = pd.read_parquet(paths["predictions"])
    assert set(pred.feature_set) == {"hybrid", "scratch", "photometric", "colour"}
    plain, d4 = (pred[pred.tta == t].set_index(["feature_set", "draw", "budget", "id_str"]).sort_index()
                 for t in (False, True))
    assert plain.index.equals(d4.index)
    np.testing.assert_array_equal(plain.loc["photometric"].p_1, d4.loc["photometric"].p_1)  # invariant numbers
    assert not np.allclose(plain.loc["hybrid"].p_1, d4.loc["hybrid"].p_1)
    md = paths["md"].read_text()
    assert "| scratch (random init) |" in md and "| hybrid − scratch |" in md
    assert "## Repeated class-balanced splits: ROC AUC (features averaged over the 8 rotations/flips)" in md
    doc = json.loads(paths["json"].read_text())
    assert set(doc["repeated"]) == {"design", "plain", "tta"} and "cells" not in doc


def test_budgets_the_smallest_class_cannot_honour_are_refused_before_any_work(tmp_path, task):
    bb = write_export(tmp_path / "h", image_size=32)
    with pytest.raises(ConfigError, match=r"'repeated.budgets': 20 labels need 10 per class.*leaves 9"):
        run(tmp_path, task, {"hybrid": bb}, "repeated.budgets=[4,20]")
    assert not (tmp_path / "bench").exists()


def test_no_design_at_all_is_refused(tmp_path, task):
    with pytest.raises(ConfigError, match="'protocols'.*repeated.draws is 0"):
        run(tmp_path, task, {"hybrid": write_export(tmp_path / "h", image_size=32)}, "protocols=[]",
            "repeated.draws=0")
