"""Fine-tuning protocol: the whole backbone plus a new linear head, trained on the subset.

The training is ``hybridssl finetune``'s (``hybridssl/finetune/module.py``: one loop in the project,
per-stage LR decay, random rotations and flips), run by a bare Lightning Trainer
(no logger, checkpoints, validation split or progress bar: a benchmark runs this once per
(backbone, budget, seed) cell for a fixed number of epochs).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from omegaconf import MISSING

from hybridssl.export import timm_folder as export
from hybridssl.data import read_meta
from hybridssl.evaluate.features import eval_transform, image_batches

# the benchmark trains for fixed epochs; the module's validation step serves `hybridssl finetune`
warnings.filterwarnings("ignore", message=r"You defined a `validation_step` but have no `val_dataloader`")


@dataclass
class FinetuneConfig:
    epochs: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    layer_decay: Optional[float] = MISSING   # null = one LR for every layer
    batch_size: int = MISSING
    rotation_degrees: float = MISSING        # training augmentation, as hybridssl finetune's


def finetune(backbone_dir, shard_dir, train_idx: np.ndarray, test_idx: np.ndarray, label_of: dict,
             cfg: FinetuneConfig, n_classes: int, augment_preset: str, seed: int,
             device: str = "cpu", num_workers: int = 0) -> tuple[np.ndarray, dict]:
    """Class probabilities (n_test, n_classes) for ``test_idx`` after fine-tuning on ``train_idx``.

    ``label_of``: id_str -> class index (rows are matched by id, not by position).
    """
    import pytorch_lightning as pl  # here, not at the top: `hybridssl benchmark` without finetuning never needs it

    from hybridssl.data import IndexedShards
    from hybridssl.finetune.labels import TaskData, TaskSamples, training_loader
    from hybridssl.finetune.module import FinetuneModule, task_head

    pl.seed_everything(seed, verbose=False)
    backbone, info = export.load_backbone(backbone_dir)
    ids = [m["id_str"] for m in read_meta(shard_dir)]
    rows = np.asarray(train_idx)
    data = TaskData(IndexedShards(shard_dir), rows, np.array([label_of[ids[r]] for r in rows], dtype=np.int64),
                    None, np.arange(len(rows)), np.arange(0))
    loader = training_loader(TaskSamples(data, data.train), cfg.batch_size, num_workers, seed)
    module = FinetuneModule(backbone.train(), task_head("classification", backbone.num_features, n_classes, 0.0),
                            eval_transform(info, augment_preset)[0], "classification", lr=cfg.lr,
                            weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay, epochs=cfg.epochs,
                            updates_per_epoch=max(len(loader), 1), seed=seed,
                            rotation_degrees=cfg.rotation_degrees)
    trainer = pl.Trainer(max_epochs=cfg.epochs, accelerator="gpu" if str(device).startswith("cuda") else "cpu",
                         devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, loader)
    module = module.to(device).eval()
    probs = []
    with torch.inference_mode():
        for batch in image_batches(shard_dir, cfg.batch_size, num_workers, test_idx):
            probs.append(module(batch["image"].to(device)).softmax(-1).float().cpu().numpy())
    loss = trainer.callback_metrics.get("train/loss")
    return np.concatenate(probs), {"final_loss": float("nan") if loss is None else float(loss),
                                   "steps": trainer.global_step}
