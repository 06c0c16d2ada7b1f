"""An exported model ready to apply: backbone, Dirichlet head (if any), schema, preprocessing;
and what ``predict``, ``calibrate`` and ``acquire`` share (model options, checks, the
concentration stream).

The backbone runs once per batch; MC dropout samples only the head (its dropout is the only
stochastic layer the model was trained with), so K samples cost K small matmuls, not K
backbone passes.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch

from hybridssl.cli import progress
from hybridssl.export import timm_folder as export
from hybridssl.apply.sources import SourceError, add_source_arguments, open_source
from hybridssl.cli import int_at_least
from hybridssl.schema import Schema, load_schema

positive_int = int_at_least(1)


class ModelError(ValueError):
    """The export cannot do what was asked (e.g. no Dirichlet head)."""


@dataclass
class ExportedModel:
    backbone: torch.nn.Module
    head: Optional[torch.nn.Module]
    schema: Schema
    transform: torch.nn.Module
    info: dict
    device: str = "cpu"
    task_head: Optional[torch.nn.Module] = None  # a finetuned classification/regression head (finetune/export.py)
    fast_gpu: bool = False  # bf16 autocast and channels_last for the backbone (survey runs on a GPU)

    @property
    def image_size(self) -> int:
        return int(self.info["image_size"])

    @property
    def in_chans(self) -> int:
        return int(self.info["in_chans"])

    @property
    def bands(self) -> dict | None:
        """The band normalisation it was trained on (``prepare --image-format npy``); None: 8-bit RGB."""
        return self.info.get("bands")

    def require_head(self, what: str) -> None:
        if self.head is None:
            raise ModelError(f"{what} needs a Dirichlet head; this export ({self.info.get('mode')} mode) has "
                             "none: export a hybrid or supervised run")

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 or (B, in_chans, H, W) float bands -> (B, num_features) float32 pooled features."""
        x = self.transform(images.to(self.device, non_blocking=True))  # non-blocking from pinned batches
        if not self.fast_gpu:
            return self.backbone(x).float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return self.backbone(x.contiguous(memory_format=torch.channels_last)).float()

    def use_fast_gpu(self) -> None:
        """bf16 autocast and channels_last on a CUDA device; nothing elsewhere (CPU results stay fp32)."""
        if torch.device(self.device).type == "cuda":
            self.backbone.to(memory_format=torch.channels_last)
            self.fast_gpu = True

    @torch.inference_mode()
    def concentrations(self, features: torch.Tensor, mc_samples: int = 1) -> torch.Tensor:
        """(K, B, n_answers) Dirichlet concentrations; K = ``mc_samples`` with head dropout on
        when K > 1, one deterministic pass otherwise."""
        self.require_head("predicting votes")
        if mc_samples < 1:
            raise ValueError(f"mc_samples must be >= 1, got {mc_samples}")
        self.head.train(mc_samples > 1)
        try:
            return torch.stack([self.head(features) for _ in range(mc_samples)])
        finally:
            self.head.eval()


def load_model(export_dir: str | os.PathLike, device: str = "cpu", augment_preset: str = "minimal") -> ExportedModel:
    from hybridssl.evaluate.features import eval_transform
    from hybridssl.finetune.export import load_task_head

    backbone, info = export.load_backbone(export_dir)
    head = export.load_head(export_dir)
    task = load_task_head(export_dir)
    schema = load_schema(info["schema"])
    if info.get("schema_hash") and info["schema_hash"] != schema.hash:
        raise ModelError(f"{export_dir}: exported with schema {info['schema']} hash {info['schema_hash']}, "
                         f"the installed schema's hash is {schema.hash}")
    for name in ("head", "task_head"):  # a head built for other features fails mid-batch otherwise
        if name in info and info[name]["in_features"] != backbone.num_features:
            raise ModelError(f"{export_dir}: config.json {name}.in_features is {info[name]['in_features']}, but "
                             f"the backbone gives {backbone.num_features} features")
    transform, _ = eval_transform(info, augment_preset)
    return ExportedModel(backbone.to(device).eval(), None if head is None else head.to(device).eval(),
                         schema, transform.to(device), info, device, None if task is None else task[0].to(device))


def mc_dropout_rate(model: ExportedModel) -> float:
    return float((model.info.get("head") or {}).get("dropout", 0.0))


class PreBatched:
    """Batches already made, standing in for a dataset: one shard's part of a survey rank's single
    loader (``hybridssl.apply.survey``). ``len`` is the number of samples."""

    def __init__(self, batches: Iterator[dict], n_samples: int):
        self.batches, self.n_samples = batches, n_samples

    def __len__(self) -> int:
        return self.n_samples


def batches(dataset, batch_size: int, num_workers: int = 0, desc: str = "") -> Iterator[dict]:
    """Every sample once, in order, batched (the evaluation loader), with a progress bar."""
    from hybridssl.data import make_eval_loader

    if isinstance(dataset, PreBatched):
        yield from dataset.batches
        return
    if len(dataset) == 0:
        raise SourceError(f"{desc or 'source'}: no galaxies to process (every catalog row rejected, or an "
                          "empty shard set)")
    yield from progress(make_eval_loader(dataset, batch_size, num_workers), desc=desc, unit="batch", leave=False)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def add_model_arguments(parser, mc_default: int) -> None:
    parser.add_argument("--model", required=True, help="a `hybridssl export` directory with a Dirichlet head")
    add_source_arguments(parser)
    parser.add_argument("--mc-samples", type=positive_int, default=mc_default,
                        help=f"MC-dropout samples of the head (default {mc_default}; 1 = dropout off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the MC-dropout masks (reruns match)")


def open_model_and_source(args, what: str, min_samples: int = 1, task_head_ok: bool = False):
    """(model, dataset) after the checks that can fail before any galaxy is processed; with
    ``task_head_ok`` a finetuned classification/regression head will do instead of a Dirichlet head."""
    model = open_model(args, what, min_samples, task_head_ok)
    dataset = open_source(args, model.schema, model.image_size, model.in_chans, model.bands)
    rejected = getattr(dataset, "rejected", [])
    if rejected:
        print(f"{what}: skipping {len(rejected)} catalog rows (first: row {rejected[0].row}, "
              f"{rejected[0].reason})", file=sys.stderr)
    return model, dataset


def open_model(args, what: str, min_samples: int = 1, task_head_ok: bool = False) -> ExportedModel:
    """The model with a head fit for ``what`` and ``--mc-samples``; MC masks seeded by ``--seed``."""
    model = load_model(args.model, args.device)
    if not (task_head_ok and model.task_head is not None):
        model.require_head(what)
    if args.mc_samples < min_samples:
        raise ModelError(f"{what} needs --mc-samples >= {min_samples} (MC samples must be able to disagree), "
                         f"got {args.mc_samples}")
    if args.mc_samples > 1 and mc_dropout_rate(model) == 0:
        raise ModelError(f"--mc-samples {args.mc_samples} needs head dropout, but the head of {args.model} has "
                         "dropout 0: every MC sample would be the same" +
                         ("" if min_samples > 1 else "; use --mc-samples 1"))
    torch.manual_seed(args.seed)
    return model


def concentration_batches(model, dataset, args, desc: str) -> Iterator[tuple[dict, np.ndarray]]:
    """(batch, (K, B, n_answers) float64 concentrations) for every batch: one backbone pass, K head passes."""
    for batch in batches(dataset, args.batch_size, args.workers, desc):
        conc = model.concentrations(model.features(batch["image"]), args.mc_samples)
        yield batch, conc.cpu().double().numpy()
