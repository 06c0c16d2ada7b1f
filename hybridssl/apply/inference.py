"""An exported model ready to apply: backbone, Dirichlet head (if any), schema, preprocessing.

The backbone runs once per batch; MC dropout samples only the head (its dropout is the only
stochastic layer the model was trained with), so K samples cost K small matmuls, not K
backbone passes.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from tqdm import tqdm

from hybridssl import export
from hybridssl.schema import Schema, load_schema


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

    @property
    def image_size(self) -> int:
        return int(self.info["image_size"])

    def require_head(self, what: str) -> None:
        if self.head is None:
            raise ModelError(f"{what} needs a Dirichlet head; this export ({self.info.get('mode')} mode) has "
                             "none: export a hybrid or supervised run")

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> (B, num_features) float32 pooled backbone features."""
        return self.backbone(self.transform(images.to(self.device))).float()

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

    backbone, info = export.load_backbone(export_dir)
    head = export.load_head(export_dir)
    schema = load_schema(info["schema"])
    if info.get("schema_hash") and info["schema_hash"] != schema.hash:
        raise ModelError(f"{export_dir}: exported with schema {info['schema']} hash {info['schema_hash']}, "
                         f"the installed schema's hash is {schema.hash}")
    transform, _ = eval_transform(info, augment_preset)
    return ExportedModel(backbone.to(device).eval(), None if head is None else head.to(device).eval(),
                         schema, transform.to(device), info, device)


def mc_dropout_rate(model: ExportedModel) -> float:
    return float((model.info.get("head") or {}).get("dropout", 0.0))


def batches(dataset, batch_size: int, num_workers: int = 0, desc: str = "") -> Iterator[dict]:
    """Every sample once, in order, batched, with a progress bar."""
    from hybridssl.data import collate_samples

    if len(dataset) == 0:
        from hybridssl.apply.sources import SourceError
        raise SourceError(f"{desc or 'source'}: no galaxies to process (every catalog row rejected, or an "
                          "empty shard set)")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=functools.partial(collate_samples, n_answers=getattr(dataset, "n_answers", None)))
    yield from tqdm(loader, desc=desc, unit="batch", leave=False)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
