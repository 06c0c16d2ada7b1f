"""The finetune module's parts: per-stage learning rates, the training augmentation, class weights, AUC."""
import numpy as np
import pytest
import pytorch_lightning as pl
import timm
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from hybridssl.finetune.labels import TaskData
from hybridssl.finetune.module import (FinetuneModule, block_groups, freeze_blocks, layer_decay_optimizer,
                                       task_head, training_augment)
from hybridssl.finetune.train import _class_weights


def _rate_of(opt) -> dict:
    """id(parameter) -> its learning rate in ``opt``."""
    return {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("arch, n_groups", [("convnext_atto", 5), ("resnet18", 5)])
def test_layer_decay_is_per_stage_on_the_freezing_groups(arch, n_groups):
    backbone = timm.create_model(arch, pretrained=False, num_classes=0)
    head = task_head("classification", backbone.num_features, 2, 0.0)
    groups = block_groups(backbone)
    assert len(groups) == n_groups  # stem + 4 stages; convnext's final head.norm rides with the last stage
    opt, _ = layer_decay_optimizer(backbone, head, lr=1e-3, weight_decay=0.05, layer_decay=0.5, epochs=2,
                                   updates_per_epoch=3)
    rate = _rate_of(opt)
    for i, names in enumerate(groups):
        expected = 1e-3 * 0.5 ** (n_groups - 1 - i)
        for name in names:
            for p in backbone.get_submodule(name).parameters():
                assert rate[id(p)] == pytest.approx(expected), (name, i)
    assert all(rate[id(p)] == pytest.approx(1e-3) for p in head.parameters())
    assert len(rate) == len(list(backbone.parameters())) + len(list(head.parameters()))  # every parameter trains
    stem = next(iter(backbone.get_submodule(groups[0][0]).parameters()))
    assert rate[id(stem)] == pytest.approx(1e-3 * 0.5 ** 4)  # 4 stages below the head, not timm's 13 sub-blocks


def test_one_rate_without_decay_and_frozen_groups_get_none():
    backbone = timm.create_model("convnext_atto", pretrained=False, num_classes=0)
    head = task_head("classification", backbone.num_features, 2, 0.0)
    frozen = freeze_blocks(backbone, 1)
    assert "stages.3" not in frozen and "head.norm" not in frozen and "stages.2.downsample.0" in frozen
    opt, _ = layer_decay_optimizer(backbone, head, lr=1e-3, weight_decay=0.05, layer_decay=None, epochs=2,
                                   updates_per_epoch=3)
    rate = _rate_of(opt)
    trainable = [p for p in list(backbone.parameters()) + list(head.parameters()) if p.requires_grad]
    assert set(rate) == {id(p) for p in trainable} and all(r == pytest.approx(1e-3) for r in rate.values())
    assert any(id(p) in rate for p in backbone.head.norm.parameters())


def test_training_augment_rotates_and_flips_both_ways():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)  # no symmetry: every flip and turn differs
    flips = {"none": image, "h": image.flip(-1), "v": image.flip(-2), "hv": image.flip(-1, -2)}
    torch.manual_seed(0)
    flips_only = training_augment(0.0)
    seen = {next((k for k, f in flips.items() if torch.allclose(out, f)), "other")
            for out in (flips_only(image) for _ in range(40))}
    assert seen == set(flips)  # every flip, nothing else
    rotate = training_augment(180.0)
    outs = [rotate(image) for _ in range(20)]
    assert sum(not any(torch.allclose(o, f, atol=1e-4) for f in flips.values()) for o in outs) >= 15


def test_balanced_class_weights_make_every_class_count_alike():
    from hybridssl.finetune.config import FinetuneConfig

    cfg = FinetuneConfig(task="classification", class_weights="balanced")
    targets = np.array([0] * 12 + [1] * 3 + [2] * 5)
    data = TaskData(None, np.arange(20), targets, ["a", "b", "c"], np.arange(20), np.arange(0))
    w = _class_weights(cfg, data).numpy()
    np.testing.assert_allclose(w * np.bincount(targets), len(targets) / 3)  # each class's total weight equal
    cfg.class_weights = None
    assert _class_weights(cfg, data) is None


def _module(n_classes: int, **kw) -> FinetuneModule:
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 6))
    backbone.num_features = 6
    return FinetuneModule(backbone, task_head("classification", 6, n_classes, 0.0), nn.Identity(), "classification",
                          lr=1e-3, weight_decay=0.0, layer_decay=None, epochs=1, updates_per_epoch=1, seed=0,
                          rotation_degrees=0.0, **kw)


def test_class_weights_weight_the_loss():
    out, target = torch.randn(8, 2), torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    w = torch.tensor([0.5, 2.0])
    expected = (w[target] * nn.functional.cross_entropy(out, target, reduction="none")).sum() / w[target].sum()
    torch.testing.assert_close(_module(2, class_weights=w).loss(out, target), expected)


def test_validation_auc_is_roc_auc_over_the_whole_split():
    torch.manual_seed(0)
    module = _module(2)
    images, targets = torch.randn(40, 3, 2, 2), torch.tensor([0, 1] * 20)
    loader = torch.utils.data.DataLoader([{"image": x, "target": t} for x, t in zip(images, targets)], batch_size=16)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    scores = trainer.validate(module, loader, verbose=False)[0]
    with torch.no_grad():
        probs = module.eval()(images).softmax(1)[:, 1].numpy()
    assert scores["val/auc"] == pytest.approx(roc_auc_score(targets.numpy(), probs), abs=1e-6)
    assert scores["val/accuracy"] == pytest.approx(float(((probs > 0.5) == targets.numpy()).mean()))
