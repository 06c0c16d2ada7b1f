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


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW or LARS over the trainable parameters; biases, norms and other 1-d params get no decay."""
    groups = param_groups_weight_decay(model, cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))
    if cfg.name == "lars":  # LARS also skips its trust-ratio scaling where weight decay is 0
        return LARS(groups, lr=lr, momentum=cfg.momentum)
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
