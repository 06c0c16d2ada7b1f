"""The finetune LightningModule: an exported timm backbone, a task head and the task's loss.

Layer-wise learning-rate decay and block freezing share one grouping of the backbone: timm's coarse
groups (``model.group_matcher(coarse=True)``: the stem, then each stage or block), so they mean the
same thing for a ResNet, a ConvNeXt and a ViT. The rate decays per group, as Zoobot's finetuning
does: the last group trains at the head's rate and each earlier one at ``layer_decay`` times the
next one's (convnext_atto's stem at 0.75^4 of the head's), not per timm's fine sub-blocks (0.75^13).
Frozen blocks become timm's ``FrozenBatchNorm2d`` too: their normalisation statistics stay pretrained.
"""
from __future__ import annotations

from typing import Optional

import kornia.augmentation as K
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
from timm.models import group_modules, group_parameters
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils.model import freeze
from torch import nn

from hybridssl.model.heads import DirichletHead
from hybridssl.model.losses import dirichlet_multinomial_loss
from hybridssl.schema import Schema


def task_head(task: str, in_features: int, n_outputs: int, dropout: float) -> nn.Module:
    """Dirichlet concentrations for ``votes``; logits (classification) or one value (regression) otherwise."""
    if task == "votes":
        return DirichletHead(in_features, n_outputs, dropout)
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_outputs))


_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


def _norm_only(backbone: nn.Module, names: list[str]) -> bool:
    modules = [backbone.get_submodule(n) for n in names]
    return all(isinstance(m, _NORMS) or not any(True for _ in m.parameters()) for m in modules)


def block_groups(backbone: nn.Module) -> list[list[str]]:
    """Module names of each coarse block group per timm (stem first, last stage last). A trailing group
    of normalisation layers only (ConvNeXt's ``head.norm``, a ViT's final ``norm``) joins the last
    stage: it is no block of its own, and trains whenever the last stage does."""
    groups = group_modules(backbone, backbone.group_matcher(coarse=True))
    groups = [groups[k] for k in sorted(groups)]
    while len(groups) > 1 and _norm_only(backbone, groups[-1]):
        groups[-2:] = [groups[-2] + groups[-1]]
    return groups


def freeze_blocks(backbone: nn.Module, train_blocks: int) -> list[str]:
    """Freeze all but the last ``train_blocks`` block groups (-1: none frozen); the frozen module names."""
    if train_blocks < 0:
        return []
    groups = block_groups(backbone)
    frozen = [name for g in groups[:max(len(groups) - train_blocks, 0)] for name in g]
    if frozen:
        freeze(backbone, frozen)
    return frozen


def layer_decay_param_groups(backbone: nn.Module, head: nn.Module, weight_decay: float,
                             layer_decay: Optional[float]) -> list[dict]:
    """AdamW parameter groups with timm's ``lr_scale``: block group i of n at ``layer_decay``^(n-1-i)
    (the last at 1), the head at 1; 1-d weights (norms, biases) without weight decay, as timm does."""
    last = len(block_groups(backbone)) - 1  # trailing norm-only groups count as the last stage
    group_of = group_parameters(backbone, backbone.group_matcher(coarse=True))
    scales = {name: layer_decay ** (last - min(i, last)) if layer_decay else 1.0
              for i, names in group_of.items() for name in names}
    out: dict = {}
    weighted = [(p, scales[n]) for n, p in backbone.named_parameters()] + [(p, 1.0) for p in head.parameters()]
    for p, scale in weighted:
        if not p.requires_grad:
            continue
        decay = 0.0 if p.ndim <= 1 else weight_decay
        group = out.setdefault((scale, decay), {"params": [], "lr_scale": scale, "weight_decay": decay})
        group["params"].append(p)
    return list(out.values())


def layer_decay_optimizer(backbone: nn.Module, head: nn.Module, lr: float, weight_decay: float,
                          layer_decay: Optional[float], epochs: int, updates_per_epoch: int):
    """AdamW over :func:`layer_decay_param_groups` and timm's per-update cosine schedule, which is
    what applies each group's ``lr_scale``."""
    opt = create_optimizer_v2(layer_decay_param_groups(backbone, head, weight_decay, layer_decay), opt="adamw",
                              lr=lr, weight_decay=weight_decay)
    sched, _ = create_scheduler_v2(opt, sched="cosine", num_epochs=epochs, step_on_epochs=False,
                                   updates_per_epoch=updates_per_epoch)
    sched.step_update(0)  # the first step already at each group's scaled rate
    return opt, sched


def training_augment(rotation_degrees: float) -> nn.Module:
    """Random rotation by up to ``rotation_degrees`` either way and both flips, on the device: a
    galaxy's orientation on the sky carries no label."""
    return nn.Sequential(K.RandomRotation(rotation_degrees, p=1.0 if rotation_degrees else 0.0),
                         K.RandomHorizontalFlip(), K.RandomVerticalFlip())


class FinetuneModule(pl.LightningModule):
    def __init__(self, backbone: nn.Module, head: nn.Module, transform: nn.Module, task: str, *,
                 lr: float, weight_decay: float, layer_decay: Optional[float], epochs: int,
                 updates_per_epoch: int, seed: int, rotation_degrees: float,
                 schema: Optional[Schema] = None, target_mean: float = 0.0, target_std: float = 1.0,
                 class_weights: Optional[torch.Tensor] = None):
        super().__init__()
        self.backbone, self.head, self.transform, self.task = backbone, head, transform, task
        self.augment = training_augment(rotation_degrees)
        self.schema, self.target_mean, self.target_std = schema, target_mean, target_std
        self.register_buffer("class_weights", class_weights, persistent=False)
        if task == "classification":  # epoch-level ROC AUC (one-vs-rest, macro) beside accuracy
            n_classes = head[-1].out_features
            self.val_auc = torchmetrics.AUROC("multiclass", num_classes=n_classes)
            self.val_accuracy = torchmetrics.Accuracy("multiclass", num_classes=n_classes)
        self.opt_args = dict(lr=lr, weight_decay=weight_decay, layer_decay=layer_decay, epochs=epochs,
                             updates_per_epoch=updates_per_epoch)
        self.seed = seed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> head outputs (classification logits, standardised value, concentrations)."""
        return self.head(self.backbone(self.transform(images)))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return F.cross_entropy(out, target, weight=self.class_weights)
        if self.task == "regression":
            return F.mse_loss(out[:, 0], (target.float() - self.target_mean) / self.target_std)
        # counts were checked when read (prepare, the catalog reader); non-finite concentrations of a
        # diverging run make a NaN loss, which FiniteGuard reports, as in pretraining
        return dirichlet_multinomial_loss(out, target, self.schema, validate=False)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # each batch's augmentation and dropout from its own seed (the sampler reshuffles per epoch likewise):
        # a run resumed from an epoch's checkpoint continues exactly as the uninterrupted one, however
        # much of the global RNG Lightning and the DataLoader drew in between
        seq = np.random.SeedSequence([self.seed, self.current_epoch, batch_idx])
        torch.manual_seed(int(seq.generate_state(1)[0]))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = self.transform(batch["image"])
        loss = self.loss(self.head(self.backbone(self.augment(x))), batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(batch["image"])
        n = len(out)
        self.log("val/loss", self.loss(out, batch["target"]), prog_bar=True, batch_size=n)
        if self.task == "classification":
            self.val_accuracy(out, batch["target"])
            self.val_auc(out.float().softmax(1), batch["target"])
            self.log("val/accuracy", self.val_accuracy, prog_bar=True, batch_size=n)
            self.log("val/auc", self.val_auc, prog_bar=True, batch_size=n)

    def configure_optimizers(self):
        opt, sched = layer_decay_optimizer(self.backbone, self.head, **self.opt_args)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        scheduler.step_update(self.global_step)  # timm schedulers count updates themselves
