"""Tiny exported backbones for evaluation tests, in the ``hybridssl export`` layout.

``DIR/model.safetensors`` (a random-init timm model with ``num_classes=0``) and
``DIR/config.json``, so ``hybridssl.export.load_backbone(DIR)`` loads them like real exports;
with ``head_dropout`` set, also a random Dirichlet head (``head.safetensors``) for ``load_head``.
"""
from __future__ import annotations

import json
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

from hybridssl.model.heads import DirichletHead
from hybridssl.schema import load_schema


SCHEMA = load_schema("gz_evo_v0.1")


def write_export(out_dir, arch: str = "test_resnet", image_size: int = 32, seed: int = 0,
                 mode: str = "scratch", head_dropout: float | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    info = {"architecture": arch, "num_features": model.num_features, "in_chans": 3, "image_size": image_size,
            "mean": mean, "std": std, "schema": "gz_evo_v0.1", "schema_hash": SCHEMA.hash, "mode": mode,
            "pretrained_cfg": {"architecture": arch, "num_classes": 0, "input_size": [3, image_size, image_size],
                               "crop_pct": 1.0, "interpolation": "bilinear", "mean": mean, "std": std}}
    if head_dropout is not None:
        head = DirichletHead(model.num_features, SCHEMA.n_answers, head_dropout)
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out / "head.safetensors"))
        info["head"] = {"in_features": model.num_features, "n_answers": SCHEMA.n_answers,
                        "dropout": head_dropout, "file": "head.safetensors"}
    (out / "config.json").write_text(json.dumps(info, indent=1))
    return out
