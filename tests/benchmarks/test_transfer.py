import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backbone_factory import SCHEMA, write_export
from factories import write_shards
from hybridssl.cli import main
from hybridssl.config import ConfigError, config_dir, load_config
from hybridssl.evaluate.report import cell_key

import benchmarks.transfer as transfer
from benchmarks.transfer import BenchmarkConfig, benchmark

DEMO = config_dir() / "benchmark" / "demo.yaml"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# these tests pin the fixed train/test split's grid alone; tests/benchmarks/test_repeated.py covers the
# repeated-draws headline and the baselines
FIXED_ONLY = ["repeated.draws=0", "baselines=[]"]


def _task(tmp_path, n=48, n_train=32, seed=0):
    labels = [int(v) for v in np.random.default_rng(seed).permutation(n) % 2]
    return write_shards(tmp_path / "task", n, labelled=False, n_shards=2, image_size=32, seed=seed,
                        keep={"ring": labels, "split": ["train"] * n_train + ["test"] * (n - n_train)})


def _cfg(tmp_path, task, backbones, *extra) -> BenchmarkConfig:
    args = [f"task={task}", f"out_dir={tmp_path / 'bench'}", "batch_size=16", "budgets=[4,all]", *FIXED_ONLY, *extra,
            *[f"backbones.{k}={v}" for k, v in backbones.items()]]
    return load_config(BenchmarkConfig, DEMO, args)


@pytest.fixture
def task(tmp_path):
    return _task(tmp_path)


@pytest.fixture
def bb(tmp_path):
    return write_export(tmp_path / "export" / "scratch", image_size=32)


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["benchmark", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "KEY=VALUE" in out


def test_budget_larger_than_train_split_is_an_error_naming_the_key(tmp_path, task, bb, capsys):
    rc = main(["benchmark", "--config", str(DEMO), f"task={task}", f"out_dir={tmp_path / 'b'}",
               f"backbones.scratch={bb}", "budgets=[10,1000]", *FIXED_ONLY])
    err = capsys.readouterr().err
    assert rc == 2
    assert "'budgets'" in err and "1000" in err and "(32 rows" in err and "Traceback" not in err
    assert not (tmp_path / "b" / "cells.jsonl").exists()  # refused before any work


@pytest.mark.parametrize("override, key", [("protocols=[linear,probe]", "protocols"), ("seeds=[1,1]", "seeds"),
                                           ("label_column=bar", "label_column"), ("train_split=fit", "train_split"),
                                           ("bootstrap.confidence=1.5", "bootstrap.confidence")])
def test_other_bad_settings_name_their_key(tmp_path, task, bb, override, key):
    with pytest.raises(ConfigError, match=key):
        benchmark(_cfg(tmp_path, task, {"scratch": bb}, override))


def test_not_an_export_dir_names_the_backbone(tmp_path, task):
    with pytest.raises(ConfigError, match="backbones.mine"):
        benchmark(_cfg(tmp_path, task, {"mine": tmp_path}))


def test_end_to_end_all_protocols_two_backbones(tmp_path, task, capsys):
    backbones = {"a": write_export(tmp_path / "a", image_size=32, seed=0),
                 "b": write_export(tmp_path / "b", image_size=32, seed=1, mode="byol")}
    cfg = _cfg(tmp_path, task, backbones, "budgets=[4,all]", "seeds=[0,1]",
               "protocols=[linear,knn,finetune]", "finetune.epochs=1", "finetune.batch_size=8", "knn.k=5")
    paths = benchmark(cfg)
    doc = json.loads(paths["json"].read_text())
    assert len(doc["cells"]) == 2 * 3 * 2 * 2
    cell = doc["cells"][0]
    assert set(cell["scores"]) == {"accuracy", "balanced_accuracy", "roc_auc"}
    assert all(0 <= v <= 1 for c in doc["cells"] for v in c["scores"].values())
    assert {c["n_labels"] for c in doc["cells"]} == {4, 32}
    assert doc["task"]["n_train"] == 32 and doc["task"]["n_test"] == 16 and doc["task"]["classes"] == ["0", "1"]
    assert doc["versions"]["torch"] and doc["versions"]["timm"] and doc["versions"]["hybridssl"]
    assert doc["schema_hashes"] == [SCHEMA.hash] and doc["config"]["budgets"] == [4, "all"]
    csv = pd.read_csv(paths["csv"])
    assert len(csv) == 6 * 2 and set(csv.method) == {f"{b} {p}" for b in "ab" for p in ("linear", "knn", "finetune")}
    row = csv[(csv.method == "a linear") & (csv.budget == "4")].iloc[0]
    seeds = [c["scores"]["accuracy"] for c in doc["cells"] if c["backbone"] == "a" and c["protocol"] == "linear"
             and c["budget"] == 4]
    assert row.accuracy_mean == pytest.approx(np.mean(seeds)) and row.n_seeds == 2
    md = paths["md"].read_text()
    table = md.split("## Per backbone: accuracy", 1)[1].split("##", 1)[0]
    body = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| labels")]
    assert [line.split("|")[1].strip() for line in body] == ["4", "all (32)"]
    assert all("**" in line for line in body)  # best of each row marked
    for protocol in ("linear probe (frozen features)", "kNN (frozen features)", "fine-tuned backbone"):
        assert f"## {protocol}: accuracy by mode" in md and f"## {protocol}: paired differences" in md
    assert "on 16 test galaxies, mean of 2 probe seeds" in md and "95% paired bootstrap" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_cells_and_redoes_only_missing_or_changed(tmp_path, task, bb, monkeypatch):
    cfg = _cfg(tmp_path, task, {"scratch": bb}, "budgets=[4,all]", "seeds=[0,1]", "protocols=[linear,knn]")
    benchmark(cfg)
    log = tmp_path / "bench" / "cells.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 8
    # a run killed after 5 cells, the 6th torn mid-write; the 1st logged before per-galaxy predictions were kept
    old = json.loads(lines[0])
    del old["test_pred"]
    log.write_text("\n".join([json.dumps(old), *lines[1:5]]) + "\n" + lines[5][:30])
    calls = []
    for name in ("linear_probe", "knn_probe"):
        real = getattr(transfer, name)
        monkeypatch.setattr(transfer, name, lambda *a, _real=real, _n=name, **k: calls.append(_n) or _real(*a, **k))
    monkeypatch.setattr(transfer, "extract_features",
                        lambda *a, _real=transfer.extract_features, **k: calls.append("features") or _real(*a, **k))
    paths = benchmark(cfg)
    assert sorted(c for c in calls if c != "features") == sorted(
        json.loads(line)["protocol"] + "_probe" for line in [lines[0], *lines[5:]])
    assert len(json.loads(paths["json"].read_text())["cells"]) == 8
    assert len({cell_key(json.loads(line)) for line in log.read_text().splitlines()}) == 8  # torn line gone

    calls.clear()
    benchmark(cfg)
    assert calls == []  # nothing left to do

    changed = load_config(BenchmarkConfig, DEMO, [f"task={task}", f"out_dir={tmp_path / 'bench'}", "batch_size=16",
                                                  f"backbones.scratch={bb}", "budgets=[4,all]", "seeds=[0,1]",
                                                  "protocols=[linear,knn]", "linear.Cs=[0.5]", *FIXED_ONLY])
    benchmark(changed)
    assert sorted(calls) == ["features"] + ["linear_probe"] * 4  # knn cells still valid; features from cache


def test_pretraining_seeds_are_grouped_by_mode_with_paired_intervals_in_every_results_file(tmp_path, task, capsys):
    scratch = write_export(tmp_path / "scratch", image_size=32, seed=0)
    backbones = {"hybrid_seed0": write_export(tmp_path / "h0", image_size=32, seed=1),
                 "hybrid_seed1": write_export(tmp_path / "h1", image_size=32, seed=2),
                 "scratch": scratch, "copy": scratch}  # the same backbone twice: a difference of exactly 0
    assert main(["benchmark", "--config", str(DEMO), f"task={task}", f"out_dir={tmp_path / 'bench'}",
                 "batch_size=16", "budgets=[4,all]", "seeds=[0,1]", "protocols=[linear]", "bootstrap.draws=300", *FIXED_ONLY,
                 *[f"backbones.{k}={v}" for k, v in backbones.items()]]) == 0
    out, bench = capsys.readouterr().out, tmp_path / "bench"
    doc = json.loads((bench / "results.json").read_text())
    modes = pd.read_csv(bench / "results_modes.csv", keep_default_na=False)
    diffs = pd.read_csv(bench / "results_differences.csv", keep_default_na=False)
    for rows, table in ((doc["modes"], modes), (doc["differences"], diffs)):
        assert len(rows) == len(table) and set(rows[0]) == set(table.columns)
    assert set(modes.budget) == {"4", "all", "mean"} and set(modes.n_test) == {16}
    hybrid = modes[modes.group == "hybrid"]
    assert set(hybrid.backbones) == {"hybrid_seed0 hybrid_seed1"} and set(hybrid.n_pretrain_seeds) == {2}
    cells = [c for c in doc["cells"] if c["backbone"].startswith("hybrid") and c["budget"] == 4]
    assert hybrid[hybrid.budget == "4"].accuracy_mean.item() == pytest.approx(
        np.mean([c["scores"]["accuracy"] for c in cells]))
    ranked = list(dict.fromkeys(modes.group))
    means = modes[modes.budget == "mean"].set_index("group").accuracy_mean
    assert list(means[ranked]) == sorted(means, reverse=True)  # order as measured
    same = diffs[(diffs.group == "copy") & (diffs.versus == "scratch")]
    assert len(same) == 3 and (same[["difference_mean", "difference_lo", "difference_hi", "fraction_above_0"]]
                               == 0).all().all()
    assert {(g, v) for g, v in zip(diffs.group, diffs.versus) if v == "scratch"} == {("hybrid", "scratch"),
                                                                                       ("copy", "scratch")}
    assert all("test_pred" not in c for c in doc["cells"])  # per-galaxy predictions stay in cells.jsonl
    logged = [json.loads(line) for line in (bench / "cells.jsonl").read_text().splitlines()]
    assert all(len(c["test_pred"]) == 16 for c in logged)
    assert "hybrid (2 pretraining seeds)" in out and "hybrid − scratch" in out and "mean over budgets" in out


def test_real_images_smooth_vs_featured_through_prepare(tmp_path, capsys):
    """A small real task: Galaxy Zoo field-guide galaxies, smooth vs featured, prepared like any catalog."""
    src = FIXTURES / "gz_field_guide"
    rows = pd.read_csv(src / "labels.csv")
    rows["label"] = np.where(rows.answer == "Smooth", "smooth", "featured")
    rows["id_str"] = rows.file.str.replace("images/", "").str.replace(".jpg", "")
    rows["file_loc"] = [str(src / f) for f in rows.file]
    # a fixed stratified split: every third galaxy of each class is a test galaxy
    rows["split"] = np.where(rows.groupby("label").cumcount() % 3 == 2, "test", "train")
    catalog = tmp_path / "field_guide.csv"
    rows[["id_str", "file_loc", "label", "split"]].to_csv(catalog, index=False)
    assert main(["prepare", "--catalog", str(catalog), "--out", str(tmp_path / "shards"), "--unlabelled",
                 "--image-size", "64", "--keep-columns", "label,split", "--workers", "1"]) == 0
    bb = write_export(tmp_path / "export" / "random_init", image_size=64)
    rc = main(["benchmark", "--config", str(DEMO), f"task={tmp_path / 'shards'}", f"out_dir={tmp_path / 'bench'}",
               f"backbones.random_init={bb}", "label_column=label", "budgets=[6,12,all]", "seeds=[0,1,2]", *FIXED_ONLY])
    out = capsys.readouterr().out
    assert rc == 0, out
    n_train = int((rows.split == "train").sum())
    assert f"| all ({n_train}) |" in out and "random_init linear" in out and "label curve:" in out
    doc = json.loads((tmp_path / "bench" / "results.json").read_text())
    test = rows[rows.split == "test"]
    assert doc["task"]["classes"] == ["featured", "smooth"]
    assert doc["task"]["n_train"] == n_train and doc["task"]["n_test"] == len(test)
    assert doc["task"]["test_class_counts"] == [int((test.label == c).sum()) for c in ("featured", "smooth")]
    assert len(doc["cells"]) == 3 * 3 * 2


def test_a_pretraining_run_directory_is_exported_then_benchmarked(tmp_path, task):
    labelled = write_shards(tmp_path / "labelled", 16, labelled=True, n_shards=1, image_size=32)
    run = tmp_path / "run"
    assert main(["pretrain", "--config", str(config_dir() / "pretrain" / "demo.yaml"), f"out_dir={run}",
                 "mode=scratch", f"data.labelled=[{labelled}]", "data.unlabelled=[]", "data.batch_size=8",
                 "data.num_workers=0", "data.shuffle_buffer=8", "trainer.max_steps=1",
                 "trainer.checkpoint_every_n_steps=1", "trainer.progress_bar=false", "model.backbone=test_resnet",
                 "augment.crop_size=32", "augment.resize_size=32", "augment.blur_kernel=3"]) == 0
    paths = benchmark(_cfg(tmp_path, task, {"run": run}, "seeds=[0]", "protocols=[knn]"))
    doc = json.loads(paths["json"].read_text())
    exported = tmp_path / "bench" / "exports" / "run"
    assert doc["backbones"]["run"]["dir"] == str(exported) and doc["backbones"]["run"]["architecture"] == "test_resnet"
    assert (exported / "model.safetensors").is_file() and len(doc["cells"]) == 2
