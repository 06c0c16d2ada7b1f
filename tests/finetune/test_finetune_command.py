"""``hybridssl finetune`` end to end on factory shards and a factory export (tiny: 32 px, a few epochs)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from backbone_factory import SCHEMA, write_export
from factories import write_shards
from hybridssl.cli import main
from hybridssl.finetune.module import FinetuneModule

N = 24


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    rng = np.random.default_rng(0)
    keep = {"ring": [i % 2 for i in range(N)], "size": rng.uniform(5, 15, N).round(2).tolist(),
            "split": ["train"] * 20 + ["test"] * 4, "one": [1] * N,
            "partial": [float("nan") if i < 4 else i % 3 for i in range(N)],
            "empty": [float("nan")] * N, "word": ["big"] + [1.0] * (N - 1),
            "huge": [3e38 if i % 2 else -3e38 for i in range(N)]}
    return {"model": write_export(root / "model", head_dropout=0.2),
            "rings": write_shards(root / "rings", N, labelled=False, n_shards=2, keep=keep),
            "votes": write_shards(root / "votes", 16, labelled=True, n_shards=2, seed=1)}


def finetune(data, out, *extra, shards="rings"):
    """``extra``: flags and key=value overrides; the overrides go last, together, as argparse wants."""
    flags, overrides = [a for a in extra if "=" not in a], [a for a in extra if "=" in a]
    return main(["finetune", "--model", str(data["model"]), "--shards", str(data[shards]), "--out", str(out),
                 "--batch-size", "8", *flags, "patience=20", *overrides])


def info(out):
    return json.loads((out / "config.json").read_text())


def test_classification_predict_embed_and_train_blocks(data, tmp_path, capsys):
    out = tmp_path / "ft"
    assert finetune(data, out, "--config", "rings", "--train-blocks", "1", "epochs=2") == 0
    spec = info(out)
    assert spec["task_head"]["classes"] == [0, 1] and "head" not in spec
    assert spec["finetune"]["n_train"] + spec["finetune"]["n_val"] == 20  # the train split only
    before, after = load_file(str(data["model"] / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()  # plain BatchNorm again: timm loads it like any export
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"layer4"}  # only the last block group trained, batch-norm statistics included
    preds = tmp_path / "preds.parquet"
    assert main(["predict", "--model", str(out), "--shards", str(data["rings"]), "--out", str(preds)]) == 0
    df = pd.read_parquet(preds)
    assert list(df.columns) == ["id_str", "ring_pred", "ring_prob_0", "ring_prob_1"] and len(df) == N
    probs = df[["ring_prob_0", "ring_prob_1"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (df.ring_pred == probs.argmax(1)).all()
    emb = tmp_path / "emb.npy"
    assert main(["embed", "--model", str(out), "--shards", str(data["rings"]), "--out", str(emb)]) == 0
    assert np.load(emb).shape == (N, spec["num_features"])


def test_regression_predicts_on_the_label_scale(data, tmp_path):
    out = tmp_path / "ft"
    assert finetune(data, out, "--task", "regression", "--label-column", "size", "epochs=1") == 0
    head = info(out)["task_head"]
    assert head["n_outputs"] == 1 and 5 < head["target_mean"] < 15 and head["target_std"] > 0
    preds = tmp_path / "preds.parquet"
    assert main(["predict", "--model", str(out), "--shards", str(data["rings"]), "--out", str(preds)]) == 0
    values = pd.read_parquet(preds)["size_pred"].to_numpy()
    assert len(values) == N and np.isfinite(values).all() and 0 < values.mean() < 20


def test_votes_task_exports_a_dirichlet_head_predict_reads(data, tmp_path):
    out = tmp_path / "ft"
    assert finetune(data, out, "--task", "votes", "epochs=1", shards="votes") == 0
    spec = info(out)
    assert spec["head"]["n_answers"] == SCHEMA.n_answers and "task_head" not in spec
    assert spec["schema_hash"] == SCHEMA.hash
    preds = tmp_path / "preds.parquet"
    assert main(["predict", "--model", str(out), "--shards", str(data["votes"]), "--out", str(preds)]) == 0
    frac = pd.read_parquet(preds)[[f"{c}_fraction" for c in SCHEMA.label_cols]].to_numpy(np.float64)
    np.testing.assert_allclose(np.add.reduceat(frac, [q.start for q in SCHEMA.questions], axis=1), 1, atol=1e-5)


def test_resume_after_a_crash_matches_the_uninterrupted_run(data, tmp_path, monkeypatch, capsys):
    args = ("--label-column", "ring", "epochs=3", "head_dropout=0.5")
    assert finetune(data, tmp_path / "whole", *args) == 0

    def crash(self):
        if self.current_epoch == 1:
            raise RuntimeError("killed")
    with monkeypatch.context() as m:
        m.setattr(FinetuneModule, "on_train_epoch_end", crash, raising=False)
        with pytest.raises(RuntimeError, match="killed"):
            finetune(data, tmp_path / "cut", *args)
    assert not (tmp_path / "cut" / "config.json").exists()
    capsys.readouterr()
    assert finetune(data, tmp_path / "cut", *args) == 0
    assert "resuming from" in capsys.readouterr().err
    assert info(tmp_path / "cut")["finetune"]["epochs_run"] == 3
    whole, cut = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "cut"))
    for k in whole:
        torch.testing.assert_close(cut[k], whole[k], msg=k)
    assert finetune(data, tmp_path / "cut", *args) == 2  # finished: a rerun refuses to overwrite it
    assert "already holds a finished finetune" in capsys.readouterr().err


def test_early_stopping_stops_when_validation_loss_stops_falling(data, tmp_path):
    out = tmp_path / "ft"  # lr 0 and every block frozen: the validation loss can never improve
    assert finetune(data, out, "--label-column", "ring", "--train-blocks", "0", "epochs=10", "lr=0",
                    "patience=2") == 0
    summary = info(out)["finetune"]
    assert summary["stopped_early"] and summary["epochs_run"] == 3 and summary["best_epoch"] == 0


@pytest.mark.parametrize("extra, message", [
    (("--label-column", "nope"), "no column 'nope' in its samples' meta.json"),
    (("--label-column", "one"), "one class only (1)"),
    (("--label-column", "empty"), "label column 'empty'"),
    (("--task", "regression", "--label-column", "word"), "has 'big', not a number"),
    (("--task", "votes"), "no votes; task votes needs shards prepared with votes"),
    (("--label-column", "ring", "split_column=split", "train_split=nope"), "no row has split == 'nope'"),
    (("--label-column", "ring", "val_fraction=1.5"), "val_fraction"),
    # finite float32 labels near +-3e38: their mean/std overflow float32; refused naming column and row
    (("--task", "regression", "--label-column", "huge"), "label column 'huge' ("),
    (("--task", "regression", "--label-column", "huge"), "has -3e+38; the labels' mean"),
    (("--label-column", "ring", "class_weights=inverse"), "class_weights"),
])
def test_bad_inputs_give_one_line(data, tmp_path, capsys, extra, message):
    assert finetune(data, tmp_path / "ft", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("hybridssl finetune: error:")


def test_rows_without_a_label_are_skipped_with_one_line(data, tmp_path, capsys):
    out = tmp_path / "ft"
    assert finetune(data, out, "--label-column", "partial", "epochs=1") == 0
    assert "skipping 4 rows without a 'partial' label" in capsys.readouterr().err
    spec = info(out)
    assert spec["task_head"]["classes"] == [0.0, 1.0, 2.0]
    assert spec["finetune"]["n_train"] + spec["finetune"]["n_val"] == N - 4


def test_catalog_with_a_label_column(data, tmp_path, capsys):
    from PIL import Image

    from factories import fake_image

    rng = np.random.default_rng(1)
    for i in range(12):
        Image.fromarray(fake_image(rng, 40)).save(tmp_path / f"g{i}.png")
    labels = ["spiral", "elliptical"] * 5 + [None, "spiral"]
    pd.DataFrame({"id_str": [f"g{i}" for i in range(12)], "file_loc": [f"g{i}.png" for i in range(12)],
                  "kind": labels}).to_csv(tmp_path / "cat.csv", index=False)
    argv = ["finetune", "--model", str(data["model"]), "--catalog", str(tmp_path / "cat.csv"),
            "--batch-size", "4", "--out", str(tmp_path / "ft")]
    assert main(argv + ["--label-column", "kinds"]) == 2
    assert "no column 'kinds'; columns are id_str, file_loc, kind" in capsys.readouterr().err
    assert main(argv + ["--label-column", "kind", "epochs=1"]) == 0
    assert "skipping 1 rows without a 'kind' label (first: 'g10')" in capsys.readouterr().err
    assert info(tmp_path / "ft")["task_head"]["classes"] == ["elliptical", "spiral"]


def test_a_diverging_run_stops_with_one_line_and_exports_nothing(data, tmp_path, capsys):
    out = tmp_path / "ft"  # (the votes task's case is in the fault suite: benchmarks/faults/training_guard.py)
    assert finetune(data, out, "--label-column", "ring", "epochs=3", "lr=1e30") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hybridssl finetune: error:") and "not finite" in err[-1] and "lower lr" in err[-1]
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    for ckpt in (out / "checkpoints").glob("*.ckpt"):  # whatever was saved is finite
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), ckpt


def test_a_held_folder_is_refused_with_one_line(data, tmp_path, capsys):
    from hybridssl.storage.locks import dir_lock

    out = tmp_path / "run"
    with dir_lock(out, "pretrain"):  # as a running pretraining (or another finetune) holds its folder
        assert finetune(data, out, "--label-column", "ring", "epochs=1") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is in use by pretrain" in err
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written into the held folder
    assert finetune(data, out, "--label-column", "ring", "epochs=1") == 0  # free again: it runs


def test_classification_reports_validation_auc_and_accuracy(data, tmp_path, capsys):
    out = tmp_path / "ft"
    assert finetune(data, out, "--label-column", "ring", "epochs=1") == 0
    summary = info(out)["finetune"]
    assert 0 <= summary["val_auc"] <= 1 and 0 <= summary["val_accuracy"] <= 1
    assert f"ROC AUC {summary['val_auc']:.3f}, accuracy {summary['val_accuracy']:.3f}" in capsys.readouterr().out
    assert {"val/auc", "val/accuracy"} <= set(pd.read_csv(next((out / "logs").rglob("metrics.csv"))).columns)


def test_the_vote_head_starts_from_the_exports_head(data, tmp_path):
    """lr 0 and every block frozen: the finetuned export predicts exactly what the export does when the
    head came from it, and something else from a new head."""
    def fractions(model):
        preds = tmp_path / f"{model.name}.parquet"
        assert main(["predict", "--model", str(model), "--shards", str(data["votes"]), "--out", str(preds)]) == 0
        return pd.read_parquet(preds)[[f"{c}_fraction" for c in SCHEMA.label_cols]].to_numpy(np.float64)

    frozen = ("--task", "votes", "--train-blocks", "0", "epochs=1", "lr=0")
    assert finetune(data, tmp_path / "init", *frozen, shards="votes") == 0
    assert finetune(data, tmp_path / "new", *frozen, "init_vote_head=false", shards="votes") == 0
    exported = fractions(data["model"])
    np.testing.assert_allclose(fractions(tmp_path / "init"), exported, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fractions(tmp_path / "new"), exported, atol=1e-3)
