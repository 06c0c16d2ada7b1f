"""A finetuned model in the ``hybridssl export`` format, so ``predict`` and ``embed`` load it.

``model.safetensors`` holds the finetuned backbone. A ``votes`` task writes its Dirichlet head
where pretraining exports write theirs (``head.safetensors``, ``config.json["head"]``), so
``predict`` gives vote fractions unchanged. Classification and regression heads go to
``task_head.safetensors``, described by ``config.json["task_head"]`` (task, label column, classes
or the target's scale); ``config.json["finetune"]`` records how the model was trained.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from timm.utils.model import unfreeze

from hybridssl.storage.atomic import atomic_write_text
from hybridssl.export.timm_folder import CONFIG_FILE, HEAD_FILE, MODEL_FILE, _save_tensors, load_weights, read_export_info

TASK_HEAD_FILE = "task_head.safetensors"


def write_finetuned(out_dir: str | os.PathLike, module, frozen: list[str], source_info: dict, head_spec: dict,
                    summary: dict) -> dict:
    """Write the export of ``module`` (a trained FinetuneModule); returns config.json's content."""
    out = Path(out_dir)
    if frozen:  # back to plain BatchNorm, so timm.create_model + load_state_dict takes the weights
        unfreeze(module.backbone, frozen)
    info = {k: v for k, v in source_info.items() if k not in ("head", "task_head", "checkpoint", "finetune")}
    meta = {"architecture": info["architecture"], "schema": info["schema"], "mode": "finetune"}
    _save_tensors(dict(module.backbone.state_dict()), out / MODEL_FILE, meta)
    if module.task == "votes":
        info.update(schema=module.schema.name, schema_hash=module.schema.hash)
        info["head"] = {**head_spec, "file": HEAD_FILE}
        _save_tensors(dict(module.head.state_dict()), out / HEAD_FILE, meta)
    else:
        info["task_head"] = {**head_spec, "file": TASK_HEAD_FILE}
        _save_tensors(dict(module.head.state_dict()), out / TASK_HEAD_FILE, meta)
    info["finetune"] = summary
    atomic_write_text(out / CONFIG_FILE, json.dumps(info, indent=1))
    return info


def load_task_head(export_dir: str | os.PathLike) -> Optional[tuple]:
    """(head module in eval mode, its config.json spec) of a finetuned classification/regression
    export; None for any other export."""
    from hybridssl.finetune.module import task_head

    spec = read_export_info(export_dir).get("task_head")
    if spec is None:
        return None
    head = task_head(spec["task"], spec["in_features"], spec["n_outputs"], spec["dropout"])
    return load_weights(head, Path(export_dir) / spec["file"]), spec  # a wrong shape is one line
