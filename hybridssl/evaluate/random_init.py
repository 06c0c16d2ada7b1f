"""The random-init baseline: an export of a backbone's architecture with timm's fresh, seeded weights.

Written in the ``hybridssl export`` layout (same ``config.json``: architecture, model arguments,
input size, normalisation), so it is extracted, probed and fine-tuned exactly as the pretrained
backbones are; only the weights differ. Nothing is downloaded (``pretrained=False``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import timm
import torch

from hybridssl.export import timm_folder as export
from hybridssl.storage.atomic import atomic_write_text

MODE = "random_init"


def write_random_init(like: str | os.PathLike, out_dir: str | os.PathLike, seed: int) -> Path:
    """Export the architecture of the export ``like`` at its random initialisation (``seed``) to ``out_dir``."""
    info = export.read_export_info(like)
    args = {"in_chans": info.get("in_chans", 3), **(info.get("model_args") or {}), "num_classes": 0}
    torch.manual_seed(seed)
    model = timm.create_model(info["architecture"], pretrained=False, **args)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    export._save_tensors({k: v.contiguous() for k, v in model.state_dict().items()}, out / export.MODEL_FILE,
                         {"architecture": info["architecture"], "mode": MODE})
    kept = {k: v for k, v in info.items() if k not in ("head", "checkpoint")}  # no trained head, no checkpoint
    atomic_write_text(out / export.CONFIG_FILE,
                      json.dumps({**kept, "mode": MODE, "random_init_seed": seed},
                                 indent=1))
    return out
