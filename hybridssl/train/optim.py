"""Optimiser, learning-rate and target-momentum schedules: all functions of the optimizer step."""
from __future__ import annotations

import torch
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler, cosine_schedule
from timm.optim import param_groups_weight_decay
from torch import nn

from hybridssl.train.config import OptimConfig


def scaled_lr(base_lr: float, batch_size: int, world_size: int = 1, accumulate: int = 1) -> float:
    """The linear scaling rule: ``base_lr`` is the rate for a global batch (per-rank batch x ranks x
    accumulated batches) of 256."""
    return base_lr * batch_size * world_size * accumulate / 256


class BranchFreeLARS(LARS):
    """lightly's LARS, the same update, without its per-parameter ``if p_norm != 0 and g_norm != 0``:
    that test reads two norms back from the GPU for every parameter of every step. Here the trust
    ratio is chosen with ``torch.where`` on the device. Momentum and Nesterov as lightly's."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            wd, momentum = group["weight_decay"], group["momentum"]
            grads = [p.grad for p in params]
            if wd != 0:  # a Python float: no sync
                p_norms = torch._foreach_norm(params)
                g_norms = torch._foreach_norm(grads)
                updates = []
                for p, g, pn, gn in zip(params, grads, p_norms, g_norms):
                    ratio = group["trust_coefficient"] * pn / (gn + pn * wd + group["eps"])
                    scaled = g.add(p, alpha=wd).mul_(ratio)
                    updates.append(torch.where((pn != 0) & (gn != 0), scaled, g))
                grads = updates
            for p, d_p in zip(params, grads):
                if momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(momentum).add_(d_p, alpha=1 - group["dampening"])
                    d_p = d_p.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(d_p, alpha=-group["lr"])
        return loss


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW or LARS over the trainable parameters; biases, norms and other 1-d params get no decay.
    AdamW is torch's fused kernel where every parameter is on a GPU (one launch, step counters on
    the device)."""
    groups = param_groups_weight_decay(model, cfg.weight_decay)
    if cfg.name == "adamw":
        on_gpu = all(p.is_cuda for p in model.parameters() if p.requires_grad)
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), fused=on_gpu or None)
    if cfg.name == "lars":  # LARS also skips its trust-ratio scaling where weight decay is 0
        return BranchFreeLARS(groups, lr=lr, momentum=cfg.momentum)
    raise ValueError(f"optim.name {cfg.name!r}: choose adamw or lars")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_steps: int):
    """Linear warm-up then cosine to ``final_lr_fraction`` of the peak, stepped per optimizer step."""
    # a short smoke run (max_steps below the warm-up) just warms up for its whole length
    return CosineWarmupScheduler(optimizer, warmup_epochs=min(cfg.warmup_steps, max_steps), max_epochs=max_steps,
                                 start_value=1.0, end_value=cfg.final_lr_fraction)


def target_momentum(step: int, max_steps: int, start: float) -> float:
    """BYOL's target momentum after optimizer step ``step`` (0-based): cosine from ``start``
    (``optim.target_momentum_start``) to 1 at the last step."""
    return cosine_schedule(min(step, max_steps), max_steps, start, 1.0)
