"""Fine-tuning protocol: the whole backbone plus a new linear head, trained on the subset.

A plain loop rather than a Lightning Trainer: a benchmark runs this once per (backbone,
budget, seed) cell, for a few epochs, and a Trainer's per-run setup and log directories would
cost more than the training itself. Layer-wise LR decay comes from timm's optimizer factory
(``param_groups_layer_decay`` over the model's own layer grouping).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import MISSING
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

from hybridssl import export
from hybridssl.evaluate.features import eval_transform, image_batches


@dataclass
class FinetuneConfig:
    epochs: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    layer_decay: Optional[float] = MISSING   # null = one LR for every layer
    batch_size: int = MISSING


def finetune(backbone_dir, shard_dir, train_idx: np.ndarray, test_idx: np.ndarray, label_of: dict,
             cfg: FinetuneConfig, n_classes: int, augment_preset: str, seed: int,
             device: str = "cpu", num_workers: int = 0) -> tuple[np.ndarray, dict]:
    """Class probabilities (n_test, n_classes) for ``test_idx`` after fine-tuning on ``train_idx``.

    ``label_of``: id_str -> class index (rows are matched by id, not by position).
    """
    torch.manual_seed(seed)
    model, info = export.load_backbone(backbone_dir)
    model.reset_classifier(n_classes)
    model = model.to(device)
    transform = eval_transform(info, augment_preset)[0].to(device)
    opt = create_optimizer_v2(model, opt="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
                              layer_decay=cfg.layer_decay)
    per_epoch = max(len(train_idx) // cfg.batch_size, 1)  # training batches drop the ragged tail
    # timm's scheduler is what applies the per-layer ``lr_scale`` that layer decay sets
    sched, _ = create_scheduler_v2(opt, sched="cosine", num_epochs=cfg.epochs, step_on_epochs=False,
                                   updates_per_epoch=per_epoch)
    losses = []
    model.train()
    for epoch in range(cfg.epochs):
        for batch in image_batches(shard_dir, cfg.batch_size, num_workers, train_idx, shuffle_seed=seed * 1000 + epoch):
            x = transform(batch["image"].to(device))
            flip = torch.rand(len(x), device=device) < 0.5  # the one augmentation: orientation carries no class
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            y = torch.as_tensor([label_of[i] for i in batch["id_str"]], device=device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            sched.step_update(len(losses))
            opt.step()
            losses.append(loss.item())
    model.eval()
    probs = []
    with torch.inference_mode():
        for batch in image_batches(shard_dir, cfg.batch_size, num_workers, test_idx):
            probs.append(model(transform(batch["image"].to(device))).softmax(-1).float().cpu().numpy())
    return np.concatenate(probs), {"final_loss": float(np.mean(losses[-5:])) if losses else math.nan,
                                   "steps": len(losses)}
