"""The BYOL loss: 4 - 2 cos(p1, z2) - 2 cos(p2, z1), each view's prediction against the other
view's target, both directions; checked against a hand computation, in the function and wired
through HybridModel (the wrong pairings below would all give a plausible loss in [0, 8])."""
import pytest
import torch
from torch import nn

from hybridssl.model.losses import byol_loss, mean_cosine
from hybridssl.model.hybrid import HybridModel, ModelConfig


def cos(a, b):
    """Row-wise cosine, averaged over the batch, computed by hand."""
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean()


def expected(p1, p2, z1, z2):
    return 4 - 2 * cos(p1, z2) - 2 * cos(p2, z1)


BROKEN = {  # three wrong BYOL losses that a range check cannot tell from the right one
    "sign flipped": lambda p1, p2, z1, z2: 4 + 2 * cos(p1, z2) + 2 * cos(p2, z1),
    "view paired with its own target": lambda p1, p2, z1, z2: 4 - 2 * cos(p1, z1) - 2 * cos(p2, z2),
    "one direction only": lambda p1, p2, z1, z2: 2 * (2 - 2 * cos(p1, z2)),
}


@pytest.fixture
def pz():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(5, 7, generator=g, dtype=torch.float64) for _ in range(4)]


def test_equals_the_hand_computation_and_not_a_broken_variant(pz):
    got = byol_loss(*pz)
    torch.testing.assert_close(got, expected(*pz))
    for name, wrong in BROKEN.items():
        assert abs(got.item() - wrong(*pz).item()) > 1e-3, name  # these inputs tell them apart


def test_zero_when_each_prediction_matches_the_other_views_target(pz):
    p1, p2, _, _ = pz
    assert byol_loss(p1, p2, z1=3 * p2, z2=0.5 * p1).item() == pytest.approx(0.0, abs=1e-12)
    assert byol_loss(p1, p2, z1=-p2, z2=-p1).item() == pytest.approx(8.0)


def test_targets_get_no_gradient(pz):
    p1, p2, z1, z2 = (t.clone().requires_grad_() for t in pz)
    byol_loss(p1, p2, z1, z2).backward()
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    assert z1.grad is None and z2.grad is None


def test_mean_cosine_inverts_the_convention(pz):
    p1, p2, z1, z2 = pz
    c = (cos(p1, z2) + cos(p2, z1)) / 2
    torch.testing.assert_close(mean_cosine(byol_loss(*pz)), c)


def tiny_byol_model() -> HybridModel:
    cfg = ModelConfig(backbone="test_resnet", backbone_kwargs={}, in_chans=3, channels_last=False, projection_hidden_dim=32,
                      projection_dim=16, prediction_hidden_dim=32, head_dropout=0.0)
    return HybridModel(cfg, "byol", n_answers=3)


def test_model_pairs_each_online_view_with_the_other_target_view():
    """The networks swapped for simple known maps, so only HybridModel.byol_loss's wiring is tested
    (an untrained network maps all inputs to nearly one direction: every pairing would agree)."""
    torch.manual_seed(0)
    m = tiny_byol_model()
    m.backbone = m.target_backbone = nn.Flatten()
    m.projection, m.prediction = nn.Identity(), nn.Linear(12, 12)
    m.target_projection = nn.Linear(12, 12)
    v1, v2 = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    views = torch.cat([v1, v2])
    with torch.no_grad():
        got = m.byol_loss(m.features(views), views)
        p1, p2 = m.prediction(v1.flatten(1)), m.prediction(v2.flatten(1))
        z1, z2 = m.target_projection(v1.flatten(1)), m.target_projection(v2.flatten(1))
    torch.testing.assert_close(got, expected(p1, p2, z1, z2))
    for name, wrong in BROKEN.items():
        assert abs(got.item() - wrong(p1, p2, z1, z2).item()) > 1e-2, name


def test_target_network_runs_both_views_in_one_pass():
    m = tiny_byol_model()
    calls = []
    m.target_backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    views = torch.randn(8, 3, 32, 32)  # 4 images x 2 views
    m.byol_loss(m.features(views), views)
    assert calls == [8]  # one pass over both views: BatchNorm statistics of the same rows as online
