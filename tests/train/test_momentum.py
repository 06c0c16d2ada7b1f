"""The BYOL target follows the online network once per optimizer step, whatever the accumulation."""
import pytest
from lightly.utils.scheduler import cosine_schedule

from hybridssl.model import HybridModel
from hybridssl.train.checkpoint import load_checkpoint
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
