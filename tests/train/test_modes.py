"""The mode switch: one trainer; each mode builds, trains, logs and checkpoints only its parts."""
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from hybridssl.config import ConfigError
from hybridssl.schema import load_schema
from hybridssl.train.checkpoint import load_checkpoint
from hybridssl.train.module import PretrainModule
from hybridssl.train.run import pretrain

PARTS = {"hybrid": {"target_backbone", "projection", "prediction", "head"},
         "byol": {"target_backbone", "projection", "prediction"},
         "supervised": {"head"}, "scratch": set()}


def initial_backbone(cfg) -> dict:
    pl.seed_everything(cfg.seed, verbose=False)  # as pretrain() does before building the model
    return PretrainModule(cfg, load_schema(cfg.schema)).model.backbone.state_dict()


def parts(state: dict) -> set:
    return {k.split(".")[1] for k in state if k.startswith("model.")} - {"backbone", "target_projection"}


@pytest.mark.parametrize("mode", ["hybrid", "byol", "supervised"])
def test_mode_trains_logs_and_checkpoints_its_parts(tiny_config, mode, tmp_path):
    cfg = tiny_config(f"mode={mode}", "trainer.max_steps=3")
    final = pretrain(cfg)
    ckpt = load_checkpoint(final)
    assert ckpt["global_step"] == 3 and final.name == "step00000003.ckpt"
    assert parts(ckpt["state_dict"]) == PARTS[mode]
    before = initial_backbone(cfg)
    moved = [k for k, v in before.items() if v.is_floating_point()
             and not torch.equal(v, ckpt["state_dict"][f"model.backbone.{k}"])]
    assert moved, "no backbone weight changed: nothing was trained"

    metrics = pd.read_csv(next((tmp_path / "run" / "logs").rglob("metrics.csv")))
    has = {c: metrics[c].dropna() for c in metrics.columns}
    assert ("train/byol_loss" in has) == (mode != "supervised")
    assert ("train/sup_loss" in has) == (mode != "byol")
    assert ("train/sup_loss_dr5" in has) == (mode != "byol")  # the shards' campaign, logged per campaign
    for col in ("train/byol_loss", "train/sup_loss"):
        if col in has:
            assert len(has[col]) == 3 and (has[col] > 0).all()
    assert "train/device/samples_per_sec" in has and "train/device/flops_per_sec" in has
    assert "train/skipped_samples" in has
    assert any(c.startswith("lr-") for c in has)


def test_scratch_checkpoints_the_random_init_without_training(tiny_config):
    cfg = tiny_config("mode=scratch")
    ckpt = load_checkpoint(pretrain(cfg))
    assert ckpt["global_step"] == 0 and "optimizer_states" not in ckpt
    assert parts(ckpt["state_dict"]) == PARTS["scratch"]
    for k, v in initial_backbone(cfg).items():
        assert torch.equal(v, ckpt["state_dict"][f"model.backbone.{k}"]), k
    assert ckpt["hybridssl"]["export"]["mode"] == "scratch"


def test_supervised_reads_the_same_data_section_as_hybrid(tiny_config):
    sup, hyb = tiny_config("mode=supervised").data, tiny_config("mode=hybrid").data
    assert sup == hyb and sup.n_labelled == round(sup.batch_size * sup.labelled_fraction) < sup.batch_size


@pytest.mark.parametrize("override, names", [
    ("model.backbone=resnet_nope", "model.backbone"),
    ("optim.name=sgd", "adamw, lars"),
    ("mode=simclr", "hybrid, byol, supervised, scratch"),
    ("loss.weighting=equal", "magnitude_matched, fixed"),
    ("trainer.devices=two", "trainer.devices"),
    ("trainer.nodes=2", "num_nodes"),          # unknown key: the valid ones are listed
    ("trainer.max_steps=many", "trainer.max_steps"),
])
def test_bad_config_names_key_and_choices(tiny_config, override, names):
    with pytest.raises(ConfigError, match=names):
        tiny_config(override)


def test_votes_modes_need_labelled_shards(tiny_config):
    with pytest.raises(ConfigError, match="data.labelled"):
        tiny_config("mode=hybrid", "data.labelled=[]")


def test_resume_never_refuses_to_mix_runs(tiny_config):
    pretrain(tiny_config("mode=scratch"))
    with pytest.raises(ConfigError, match="resume=auto"):
        pretrain(tiny_config("mode=scratch", "resume=never"))


@pytest.fixture
def head_inputs(monkeypatch):
    """The votes the Dirichlet head is trained on, per step."""
    from hybridssl.model.hybrid import HybridModel
    seen, supervised_loss = [], HybridModel.supervised_loss

    def record(self, features, votes, has_votes, schema):
        seen.append(votes[has_votes].clone())
        return supervised_loss(self, features, votes, has_votes, schema)
    monkeypatch.setattr(HybridModel, "supervised_loss", record)
    return seen


def test_hybrid_and_supervised_train_on_the_same_labelled_rows(tiny_config, head_inputs, tmp_path):
    """Equal votes per step: supervised reads the hybrid batches and keeps their labelled rows."""
    runs = {}
    for mode in ("hybrid", "supervised"):
        head_inputs.clear()
        pretrain(tiny_config(f"mode={mode}", "trainer.max_steps=3", "data.labelled_fraction=0.5",
                             out_dir=tmp_path / mode))
        runs[mode] = list(head_inputs)
    assert [v.shape[0] for v in runs["supervised"]] == [4, 4, 4]  # round(batch 8 x 0.5)
    for a, b in zip(runs["hybrid"], runs["supervised"]):
        assert torch.equal(a, b)


def test_head_reads_view_one_before_blur(tiny_config, monkeypatch, tmp_path):
    """With a blurring recipe the head gets its own pass over the undistorted labelled rows."""
    from hybridssl.model.hybrid import HybridModel
    rows, features = [], HybridModel.features
    monkeypatch.setattr(HybridModel, "features", lambda self, x: rows.append(x.shape[0]) or features(self, x))
    pretrain(tiny_config("mode=hybrid", "trainer.max_steps=1", "augment.blur_p=[1.0,0.1]"))
    assert rows == [16, 4]  # both views of 8 images, then the 4 labelled rows' undistorted view 1
    rows.clear()
    pretrain(tiny_config("mode=hybrid", "trainer.max_steps=1", out_dir=tmp_path / "galaxy"))
    assert rows == [16]  # the galaxy recipe never blurs: the head shares view 1's features
