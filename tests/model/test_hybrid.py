"""HybridModel: which parts each mode builds, the BYOL target, the loss terms (combined in tests/losses)."""
import numpy as np
import pytest
import torch

from factories import fake_votes
from hybridssl.model.hybrid import MODES, HybridModel, ModelConfig
from hybridssl.schema import load_schema

SCHEMA = load_schema("gz_evo_v0.1")


def tiny_config(**kw) -> ModelConfig:
    values = dict(backbone="resnet18", backbone_kwargs={}, in_chans=3, channels_last=False, projection_hidden_dim=32,
                  projection_dim=16, prediction_hidden_dim=32, head_dropout=0.0)
    values.update(kw)
    return ModelConfig(**values)


def votes_batch(n_voted: int, n_unvoted: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    votes = np.stack([fake_votes(rng, SCHEMA, "dr5") for _ in range(n_voted)]
                     + [np.zeros(SCHEMA.n_answers, np.float32)] * n_unvoted)
    has = torch.tensor([True] * n_voted + [False] * n_unvoted)
    return torch.from_numpy(votes), has


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {mode: HybridModel(tiny_config(), mode, SCHEMA.n_answers) for mode in MODES}


def test_each_mode_builds_only_its_parts(models):
    byol_parts = {"projection", "prediction", "target_backbone", "target_projection"}
    expected = {"hybrid": byol_parts | {"head"}, "byol": byol_parts, "supervised": {"head"}, "scratch": set()}
    for mode, model in models.items():
        children = {name for name, _ in model.named_children()} - {"backbone"}
        assert children == expected[mode], mode
        assert model.num_features == 512


def test_target_starts_as_copy_and_is_frozen(models):
    m = models["hybrid"]
    for (n, p), (_, t) in zip(m.backbone.named_parameters(), m.target_backbone.named_parameters()):
        assert torch.equal(p, t), n
        assert p.requires_grad and not t.requires_grad


def test_byol_loss_trains_online_not_target(models):
    m = models["byol"]
    m.zero_grad(set_to_none=True)
    views = torch.randn(8, 3, 32, 32)
    loss = m.byol_loss(m.features(views), views)
    assert 0 < loss.item() < 8  # two terms of 2 - 2cos
    loss.backward()
    assert m.prediction.layers[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.target_backbone.parameters())


def test_supervised_loss_uses_only_rows_with_votes(models):
    m = models["supervised"]
    feats = torch.randn(6, m.num_features)
    votes, has = votes_batch(3, 3)
    loss, conc = m.supervised_loss(feats, votes, has, SCHEMA)
    assert loss.item() > 0 and conc.shape == (6, SCHEMA.n_answers)
    # rows without votes do not change the loss
    feats2 = feats.clone()
    feats2[3:] = torch.randn(3, m.num_features) * 10
    torch.testing.assert_close(m.supervised_loss(feats2, votes, has, SCHEMA)[0], loss)
    # has_votes decides, not the counts: counts in rows marked unvoted are masked out
    votes2 = votes.clone()
    votes2[3:] = votes[:3]
    torch.testing.assert_close(m.supervised_loss(feats, votes2, has, SCHEMA)[0], loss)


def test_no_votes_gives_exact_zero_still_in_the_graph(models):
    m = models["hybrid"]
    m.zero_grad(set_to_none=True)
    votes, has = votes_batch(0, 4)
    loss, conc = m.supervised_loss(torch.randn(4, m.num_features), votes, has, SCHEMA)
    assert conc.shape == (4, SCHEMA.n_answers) and loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(m.head.linear.weight.grad) == 0  # present (DDP needs it) and zero


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        HybridModel(tiny_config(), "simclr", SCHEMA.n_answers)
