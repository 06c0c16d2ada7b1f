"""The finetune LightningModule: an exported timm backbone, a task head and the task's loss.

Layer-wise learning-rate decay and block freezing both follow timm's own layer grouping
(``model.group_matcher``), so they mean the same thing for a ResNet and a ViT. Frozen blocks
become timm's ``FrozenBatchNorm2d`` too: their normalisation statistics stay pretrained.
"""
from __future__ import annotations

from typing import Optional

import kornia.augmentation as K
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from timm.models import group_modules
from timm.optim import create_optimizer_v2, param_groups_layer_decay, param_groups_weight_decay
from timm.scheduler import create_scheduler_v2
from timm.utils.model import freeze
from torch import nn

from hybridssl.heads import DirichletHead
from hybridssl.losses import dirichlet_multinomial_loss
from hybridssl.schema import Schema


def task_head(task: str, in_features: int, n_outputs: int, dropout: float) -> nn.Module:
    """Dirichlet concentrations for ``votes``; logits (classification) or one value (regression) otherwise."""
    if task == "votes":
        return DirichletHead(in_features, n_outputs, dropout)
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_outputs))


def block_groups(backbone: nn.Module) -> list[list[str]]:
    """Module names of each coarse block group (stem first, last block group last), per timm."""
    groups = group_modules(backbone, backbone.group_matcher(coarse=True))
    return [groups[k] for k in sorted(groups)]


def freeze_blocks(backbone: nn.Module, train_blocks: int) -> list[str]:
    """Freeze all but the last ``train_blocks`` block groups (-1: none frozen); the frozen module names."""
    if train_blocks < 0:
        return []
    groups = block_groups(backbone)
    frozen = [name for g in groups[:max(len(groups) - train_blocks, 0)] for name in g]
    if frozen:
        freeze(backbone, frozen)
    return frozen


def layer_decay_optimizer(backbone: nn.Module, head: nn.Module, lr: float, weight_decay: float,
                          layer_decay: Optional[float], epochs: int, updates_per_epoch: int):
    """AdamW (each earlier layer group at ``layer_decay`` x the next one's rate, the head at the full
    rate) and timm's per-update cosine schedule, which is what applies each group's ``lr_scale``."""
    groups = (param_groups_layer_decay(backbone, weight_decay, layer_decay=layer_decay) if layer_decay
              else param_groups_weight_decay(backbone, weight_decay))
    groups += [{**g, "lr_scale": 1.0} for g in param_groups_weight_decay(head, weight_decay)]
    opt = create_optimizer_v2(groups, opt="adamw", lr=lr, weight_decay=weight_decay)
    sched, _ = create_scheduler_v2(opt, sched="cosine", num_epochs=epochs, step_on_epochs=False,
                                   updates_per_epoch=updates_per_epoch)
    sched.step_update(0)  # the first step already at each group's scaled rate
    return opt, sched


class FinetuneModule(pl.LightningModule):
    def __init__(self, backbone: nn.Module, head: nn.Module, transform: nn.Module, task: str, *,
                 lr: float, weight_decay: float, layer_decay: Optional[float], epochs: int,
                 updates_per_epoch: int, seed: int, schema: Optional[Schema] = None,
                 target_mean: float = 0.0, target_std: float = 1.0):
        super().__init__()
        self.backbone, self.head, self.transform, self.task = backbone, head, transform, task
        self.flip = K.RandomHorizontalFlip()  # the one training augmentation: orientation carries no label
        self.schema, self.target_mean, self.target_std = schema, target_mean, target_std
        self.opt_args = dict(lr=lr, weight_decay=weight_decay, layer_decay=layer_decay, epochs=epochs,
                             updates_per_epoch=updates_per_epoch)
        self.seed = seed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> head outputs (classification logits, standardised value, concentrations)."""
        return self.head(self.backbone(self.transform(images)))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return F.cross_entropy(out, target)
        if self.task == "regression":
            return F.mse_loss(out[:, 0], (target.float() - self.target_mean) / self.target_std)
        return dirichlet_multinomial_loss(out, target, self.schema)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # each batch's flips and dropout from its own seed (the sampler reshuffles per epoch likewise):
        # a run resumed from an epoch's checkpoint continues exactly as the uninterrupted one, however
        # much of the global RNG Lightning and the DataLoader drew in between
        seq = np.random.SeedSequence([self.seed, self.current_epoch, batch_idx])
        torch.manual_seed(int(seq.generate_state(1)[0]))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = self.transform(batch["image"])
        loss = self.loss(self.head(self.backbone(self.flip(x))), batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(batch["image"])
        n = len(out)
        self.log("val/loss", self.loss(out, batch["target"]), prog_bar=True, batch_size=n)
        if self.task == "classification":
            self.log("val/accuracy", (out.argmax(1) == batch["target"]).float().mean(), prog_bar=True, batch_size=n)

    def configure_optimizers(self):
        opt, sched = layer_decay_optimizer(self.backbone, self.head, **self.opt_args)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        scheduler.step_update(self.global_step)  # timm schedulers count updates themselves
