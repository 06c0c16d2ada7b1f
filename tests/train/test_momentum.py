"""The BYOL target: an EMA of the online network, updated once per optimizer step whatever the
accumulation, with a momentum schedule that lets short runs leave their random init behind."""
import math

import pytest
import torch
from lightly.utils.scheduler import cosine_schedule

from hybridssl.config import config_dir, load_config
from hybridssl.model.hybrid import HybridModel, ModelConfig
from hybridssl.train.checkpoint import load_checkpoint
from hybridssl.train.config import PretrainConfig
from hybridssl.train.module import PretrainModule
from hybridssl.train.run import pretrain


@pytest.fixture
def recorded(monkeypatch):
    """Momenta passed to every target update, and the number of training steps (batches) run."""
    seen = {"momenta": [], "batches": 0}
    update, step = HybridModel.update_target, PretrainModule.training_step

    def record_update(self, m):
        seen["momenta"].append(m)
        return update(self, m)

    def count_batch(self, batch, batch_idx):
        seen["batches"] += 1
        return step(self, batch, batch_idx)
    monkeypatch.setattr(HybridModel, "update_target", record_update)
    monkeypatch.setattr(PretrainModule, "training_step", count_batch)
    return seen


@pytest.mark.parametrize("accumulate", [1, 3])
def test_momentum_schedule_counts_optimizer_steps(tiny_config, recorded, accumulate):
    steps = 4
    cfg = tiny_config("mode=byol", f"trainer.max_steps={steps}", f"trainer.accumulate_grad_batches={accumulate}",
                      "optim.target_momentum_start=0.9")
    ckpt = load_checkpoint(pretrain(cfg))
    assert recorded["batches"] == steps * accumulate
    expected = [cosine_schedule(k, steps, 0.9, 1.0) for k in range(steps)]
    assert recorded["momenta"] == pytest.approx(expected)
    assert recorded["momenta"][0] == pytest.approx(0.9) and recorded["momenta"][-1] == 1.0
    assert ckpt["global_step"] == steps and ckpt["hybridssl"]["momentum"] == pytest.approx(expected[-1])


def test_update_is_an_ema_of_backbone_and_projection_and_leaves_online_alone():
    torch.manual_seed(1)
    cfg = ModelConfig(backbone="test_resnet", backbone_kwargs={}, in_chans=3, channels_last=False, projection_hidden_dim=32,
                      projection_dim=16, prediction_hidden_dim=32, head_dropout=0.0)
    m = HybridModel(cfg, "byol", n_answers=3)
    with torch.no_grad():
        for p in list(m.backbone.parameters()) + list(m.projection.parameters()):
            p.add_(torch.randn_like(p))
    pairs = [(m.backbone, m.target_backbone), (m.projection, m.target_projection)]
    online = [[p.clone() for p in o.parameters()] for o, _ in pairs]
    target = [[t.clone() for t in t_.parameters()] for _, t_ in pairs]
    m.update_target(0.75)
    for (o, t), o0, t0 in zip(pairs, online, target):
        assert len(t0) > 0
        for p_before, t_before, p, t_now in zip(o0, t0, o.parameters(), t.parameters()):
            torch.testing.assert_close(t_now, 0.75 * t_before + 0.25 * p_before)
            assert torch.equal(p, p_before)  # the online network is not touched


def init_left(start: float, steps: int) -> float:
    """Share of the random init still in the target after ``steps`` updates: prod_k m_k."""
    from hybridssl.train.optim import target_momentum
    return math.prod(target_momentum(k, steps, start) for k in range(steps))


@pytest.mark.parametrize("preset", ["demo", "base", "gz_evo"])
def test_each_preset_leaves_almost_none_of_the_init_in_the_target(preset):
    cfg = load_config(PretrainConfig, config_dir() / "pretrain" / f"{preset}.yaml", ["mode=scratch"])
    left = init_left(cfg.optim.target_momentum_start, cfg.trainer.max_steps)
    assert left < 1e-3
    # the comment in base.yaml: prod_k m_k ~ exp(-(1 - start) * max_steps / 2)
    approx = math.exp(-(1 - cfg.optim.target_momentum_start) * cfg.trainer.max_steps / 2)
    assert math.log(left) == pytest.approx(math.log(approx), rel=0.05)


def test_the_long_run_start_would_leave_the_demo_target_mostly_random():
    assert init_left(0.99, 375) > 0.1  # why demo.yaml lowers the start
