"""Optimiser and learning-rate schedule (hybridssl/train/optim.py)."""
from types import SimpleNamespace

import pytest
import torch
from lightly.utils.lars import LARS
from torch import nn

from hybridssl.config import config_dir, load_config
from hybridssl.train.config import OptimConfig, PretrainConfig
from hybridssl.train.module import PretrainModule
from hybridssl.train.optim import build_optimizer, build_scheduler, scaled_lr
from hybridssl.schema import load_schema


def optim_cfg(**kw) -> OptimConfig:
    cfg = load_config(PretrainConfig, config_dir() / "pretrain" / "base.yaml", ["mode=scratch"]).optim
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_lr_scales_with_batch_ranks_and_accumulation():
    assert scaled_lr(0.001, 256) == pytest.approx(0.001)
    assert scaled_lr(0.2, 32, world_size=4, accumulate=2) == pytest.approx(0.2 * 256 / 256)
    assert scaled_lr(0.2, 64, world_size=8, accumulate=3) == pytest.approx(0.2 * 6)


def test_module_uses_the_global_batch(tiny_config):
    cfg = tiny_config("optim.base_lr=0.01")  # data.batch_size=8
    module = PretrainModule(cfg, load_schema(cfg.schema))
    module._trainer = SimpleNamespace(world_size=4, accumulate_grad_batches=3)
    opt = module.configure_optimizers()["optimizer"]
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([0.01 * 8 * 4 * 3 / 256] * 2)


def lrs(cfg: OptimConfig, max_steps: int, peak: float = 1.0) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
    sched = build_scheduler(opt, cfg, max_steps)
    out = []
    for _ in range(max_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_cosine_to_the_final_fraction():
    r = lrs(optim_cfg(warmup_steps=10, final_lr_fraction=0.05), 100, peak=2.0)
    warm, decay = r[:10], r[9:]
    assert all(a < b for a, b in zip(warm, warm[1:]))  # linear warm-up, rising every step
    assert warm[1] - warm[0] == pytest.approx(warm[5] - warm[4])
    assert max(r) == pytest.approx(2.0) and r[9] == pytest.approx(2.0)
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert r[-1] == pytest.approx(2.0 * 0.05)  # the last step at peak x final_lr_fraction
    assert r[55] == pytest.approx(2.0 * (0.05 + 0.95 * 0.5), rel=0.05)  # cosine: half-way at mid-decay


def test_warmup_longer_than_the_run_only_warms_up():
    r = lrs(optim_cfg(warmup_steps=50, final_lr_fraction=0.01), 5)
    assert all(a < b for a, b in zip(r, r[1:]))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.fc, self.ln = nn.Linear(4, 5), nn.LayerNorm(5)


def test_no_weight_decay_on_biases_and_norms():
    net = Net()
    opt = build_optimizer(net, optim_cfg(name="adamw", weight_decay=0.05), lr=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {n for n, p in net.named_parameters() if id(p) in decay}
    assert names == {"conv.weight", "fc.weight"}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.05}


def test_lars_scales_weights_by_trust_ratio_but_not_biases_and_norms():
    torch.manual_seed(0)
    net = Net()
    opt = build_optimizer(net, optim_cfg(name="lars", weight_decay=1e-3, momentum=0.9), lr=0.1)
    assert isinstance(opt, LARS) and {g["momentum"] for g in opt.param_groups} == {0.9}
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    opt.step()
    after = dict(net.named_parameters())
    for n in ("fc.bias", "bn.weight", "ln.bias"):  # no decay: a plain (momentum) SGD step
        torch.testing.assert_close(after[n], before[n] - 0.1 * grads[n])
    w, g = before["fc.weight"], grads["fc.weight"]
    trust = 0.001 * w.norm() / (g.norm() + 1e-3 * w.norm() + 1e-8)  # lightly's defaults: eta 0.001
    torch.testing.assert_close(after["fc.weight"], w - 0.1 * trust * (g + 1e-3 * w))


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="optim.name"):
        build_optimizer(Net(), optim_cfg(name="sgd"), lr=0.1)


@pytest.mark.parametrize("nesterov", [False, True])
def test_branch_free_lars_steps_as_lightlys(nesterov):
    """Same trajectories as lightly's LARS over steps, with a zero weight and a zero gradient among
    the parameters (the cases lightly's Python branch skips) and a group without weight decay."""
    from hybridssl.train.optim import BranchFreeLARS

    def params():
        g = torch.Generator().manual_seed(0)
        return [nn.Parameter(torch.randn(4, 3, generator=g)), nn.Parameter(torch.zeros(5)),
                nn.Parameter(torch.randn(6, generator=g)), nn.Parameter(torch.randn(2, 2, generator=g))]

    def run(cls):
        ps = params()
        opt = cls([{"params": ps[:3], "weight_decay": 0.01}, {"params": ps[3:], "weight_decay": 0.0}],
                  lr=0.5, momentum=0.9, nesterov=nesterov)
        g = torch.Generator().manual_seed(1)
        for step in range(4):
            for i, p in enumerate(ps):
                p.grad = torch.zeros_like(p) if (i == 2 and step == 1) else torch.randn(p.shape, generator=g)
            opt.step()
        return ps

    for ours, theirs in zip(run(BranchFreeLARS), run(LARS)):
        torch.testing.assert_close(ours, theirs)


def test_adamw_is_fused_only_on_a_gpu():
    opt = build_optimizer(nn.Linear(3, 2), optim_cfg(name="adamw"), 0.1)
    assert not opt.defaults["fused"]  # CPU parameters: torch's default kernels
