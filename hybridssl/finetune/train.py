"""One finetune run: open the export and the labelled rows, build the head, fit with Lightning, export the best epoch."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader

from hybridssl.export import timm_folder as export
from hybridssl.finetune.config import CHECKPOINTS, FinetuneConfig
from hybridssl.finetune.labels import LabelError, TaskData, TaskSamples, load_task_data, training_loader
from hybridssl.finetune.module import FinetuneModule, freeze_blocks, task_head
from hybridssl.train.checkpoint import non_finite
from hybridssl.train.guards import FiniteGuard, NonFiniteError

# a non-empty checkpoint directory is the resume case (cli.py refuses a finished run's); the other
# is a deprecation inside Lightning itself
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def _schema(args, info: dict):
    """Votes are read over the shards' own schema (a new campaign's questions); else the export's."""
    from hybridssl.schema import load_schema
    from hybridssl.storage.shards import read_manifest

    return load_schema(read_manifest(args.shards)["schema"] if args.shards else info["schema"])


def _loaders(data: TaskData, cfg: FinetuneConfig) -> tuple[DataLoader, DataLoader]:
    return (training_loader(TaskSamples(data, data.train), cfg.batch_size, cfg.num_workers, cfg.seed),
            DataLoader(TaskSamples(data, data.val), cfg.batch_size, num_workers=cfg.num_workers))


def _head_spec(cfg: FinetuneConfig, data: TaskData, in_features: int, n_outputs: int, scale: tuple) -> dict:
    if cfg.task == "votes":
        return {"in_features": in_features, "n_answers": n_outputs, "dropout": cfg.head_dropout}
    spec = {"task": cfg.task, "label_column": cfg.label_column, "in_features": in_features,
            "n_outputs": n_outputs, "dropout": cfg.head_dropout}
    if cfg.task == "classification":
        return {**spec, "classes": data.classes}
    return {**spec, "target_mean": scale[0], "target_std": scale[1]}


def _initial_head(model_dir, info: dict, cfg: FinetuneConfig, schema, in_features: int, n_outputs: int):
    """A new head; for votes on the export's own schema (same hash), the export's Dirichlet head, so
    finetuning starts from the predictions the export already makes."""
    head = task_head(cfg.task, in_features, n_outputs, cfg.head_dropout)
    if cfg.task == "votes" and cfg.init_vote_head and "head" in info and info.get("schema_hash") == schema.hash:
        head.load_state_dict(export.load_head(model_dir).state_dict())
    return head


def _class_weights(cfg: FinetuneConfig, data: TaskData) -> Optional[torch.Tensor]:
    """``balanced``: sklearn's n / (k * n_class) over the training rows, so rare classes count as much."""
    if cfg.task != "classification" or cfg.class_weights is None:
        return None
    from sklearn.utils.class_weight import compute_class_weight

    y = data.targets[data.train]
    classes = np.arange(len(data.classes))
    if len(np.unique(y)) < len(classes):
        raise LabelError(f"class_weights={cfg.class_weights}: class {data.classes[int(np.setdiff1d(classes, y)[0])]!r} "
                         "has no training row; drop class_weights or add rows of that class")
    return torch.as_tensor(compute_class_weight(cfg.class_weights, classes=classes, y=y), dtype=torch.float32)


def _trainer(cfg: FinetuneConfig, out: Path, log_every: int) -> tuple[pl.Trainer, ModelCheckpoint]:
    from hybridssl.train.checkpoint_io import AtomicCheckpointIO

    # saved when the epoch ends (after its validation): one saved inside validation makes a resumed
    # run train that epoch's batches again
    best = ModelCheckpoint(dirpath=out / CHECKPOINTS, filename="best", monitor="val/loss", mode="min",
                           save_top_k=1, save_last=True, enable_version_counter=False, save_on_train_epoch_end=True)
    accelerator = "gpu" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    # FiniteGuard: a NaN loss stops the run before its backward pass, and non-finite weights are never
    # checkpointed, so the newest checkpoint is the last finite one (pretraining's guard)
    trainer = pl.Trainer(max_epochs=cfg.epochs, accelerator=accelerator, devices=1, precision=cfg.precision,
                         callbacks=[FiniteGuard(hint="lower lr"),
                                    EarlyStopping("val/loss", patience=cfg.patience, mode="min"), best],
                         logger=CSVLogger(out, name="logs"), plugins=[AtomicCheckpointIO()], default_root_dir=out,
                         log_every_n_steps=log_every, num_sanity_val_steps=0, enable_model_summary=False)
    return trainer, best


def finetune(args, cfg: FinetuneConfig, out: Path, resume: Optional[Path]) -> Optional[dict]:
    """Train per ``cfg`` on ``args``' source; the written export's config.json (None when interrupted)."""
    from hybridssl.apply.sources import open_source
    from hybridssl.evaluate.features import eval_transform
    from hybridssl.finetune.export import write_finetuned
    from hybridssl.train.checkpoint import load_checkpoint

    backbone, info = export.load_backbone(args.model)
    schema = _schema(args, info)
    data = load_task_data(args, open_source(args, schema, int(info["image_size"]), int(info.get("in_chans", 3)),
                                                  info.get("bands")), cfg)
    n_outputs = {"classification": len(data.classes or ()), "regression": 1, "votes": schema.n_answers}[cfg.task]
    pl.seed_everything(cfg.seed, verbose=False)
    head = _initial_head(args.model, info, cfg, schema, backbone.num_features, n_outputs)
    frozen = freeze_blocks(backbone, cfg.train_blocks)
    train_loader, val_loader = _loaders(data, cfg)
    module = FinetuneModule(backbone, head, eval_transform(info, cfg.augment)[0], cfg.task, lr=cfg.lr,
                            weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay, epochs=cfg.epochs,
                            updates_per_epoch=max(len(train_loader), 1), seed=cfg.seed,
                            rotation_degrees=cfg.rotation_degrees, schema=schema, target_mean=data.scale[0],
                            target_std=data.scale[1], class_weights=_class_weights(cfg, data))
    trainer, best = _trainer(cfg, out, log_every=min(50, max(len(train_loader), 1)))
    module.train()  # load_backbone returns eval mode, and Lightning keeps each module's mode as found
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    if trainer.interrupted:
        return None
    module.load_state_dict(load_checkpoint(best.best_model_path)["state_dict"])
    bad = non_finite(module.state_dict())
    if bad:  # e.g. a validation loss of NaN made no epoch "best" but the first; never exported
        raise NonFiniteError(f"the best checkpoint {best.best_model_path} holds non-finite weights "
                             f"({', '.join(bad[:3])}); nothing exported (lower lr)")
    best_epoch = int(load_checkpoint(best.best_model_path, mmap=True)["epoch"])
    scores = trainer.validate(module, val_loader, verbose=False)[0]  # the exported weights' validation metrics
    summary = {"from": str(Path(args.model).resolve()), "task": cfg.task, "label_column": cfg.label_column,
               "train_blocks": cfg.train_blocks, "frozen_modules": len(frozen), "n_train": len(data.train),
               "n_val": len(data.val), "epochs_run": trainer.current_epoch, "best_epoch": best_epoch,
               "best_val_loss": float(best.best_model_score), "stopped_early": trainer.current_epoch < cfg.epochs,
               **{f"val_{k.split('/')[1]}": float(v) for k, v in scores.items() if k != "val/loss"}}
    return write_finetuned(out, module, frozen, info, _head_spec(cfg, data, backbone.num_features, n_outputs,
                                                                 data.scale), summary)
