"""``hybridssl export CKPT_OR_RUN_DIR --out DIR``: the online backbone in timm's format.

``DIR`` is a timm model folder: ``timm.create_model("local-dir:DIR", pretrained=True)`` rebuilds
the backbone from ``config.json`` (``architecture``, ``model_args``: ``num_classes=0``,
``in_chans`` and the run's ``model.backbone_kwargs``, ``pretrained_cfg``) and loads
``DIR/model.safetensors`` (README, "Using an exported backbone"; nothing is downloaded); that is
:func:`load_backbone`. ``config.json`` also says what was trained (features, input size,
normalisation, schema, mode).
The Dirichlet head, when the mode trained one, goes to ``head.safetensors``. Nothing here
unpickles: checkpoints load with ``weights_only=True``, exports are safetensors + JSON.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from hybridssl.storage.atomic import atomic_write_bytes, atomic_write_text

MODEL_FILE, HEAD_FILE, CONFIG_FILE = "model.safetensors", "head.safetensors", "config.json"
_BACKBONE, _HEAD = "model.backbone.", "model.head."


def _prefixed(state_dict: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v.contiguous() for k, v in state_dict.items() if k.startswith(prefix)}


def _save_tensors(tensors: dict, path: Path, metadata: dict) -> None:
    from safetensors.torch import save
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def export_checkpoint(ckpt_or_run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Write the export of a checkpoint (or a run's newest complete one); returns config.json's content."""
    from hybridssl.storage.locks import ensure_dir
    from hybridssl.train.checkpoint import (CHECKPOINT_KEY, CheckpointError, load_checkpoint, non_finite,
                                            resolve_checkpoint)

    path = resolve_checkpoint(ckpt_or_run_dir)
    ckpt = load_checkpoint(path)
    ours = ckpt.get(CHECKPOINT_KEY)
    if ours is None or "export" not in ours:
        raise CheckpointError(f"{path} was not written by hybridssl pretrain (no '{CHECKPOINT_KEY}' entry)")
    info = dict(ours["export"])
    backbone = _prefixed(ckpt["state_dict"], _BACKBONE)
    if not backbone:
        raise CheckpointError(f"{path}: no '{_BACKBONE}*' weights in its state_dict")
    bad = non_finite(ckpt["state_dict"])
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} weight tensors hold NaN or infinity (e.g. {bad[0]}); the run "
                              f"diverged, export an earlier checkpoint")
    out = ensure_dir(out_dir)
    size = info["image_size"]
    info["pretrained_cfg"] = {"architecture": info["architecture"], "num_classes": 0,
                              "input_size": [info["in_chans"], size, size], "crop_pct": 1.0,
                              "interpolation": "bilinear", "mean": info["mean"], "std": info["std"]}
    info["checkpoint"] = {"file": path.name, "global_step": int(ckpt.get("global_step", 0))}
    meta = {"architecture": info["architecture"], "schema": info["schema"], "mode": info["mode"]}
    _save_tensors(backbone, out / MODEL_FILE, meta)
    if "head" in info:
        _save_tensors(_prefixed(ckpt["state_dict"], _HEAD), out / HEAD_FILE, meta)
        info["head"] = {**info["head"], "file": HEAD_FILE}
    atomic_write_text(out / CONFIG_FILE, json.dumps(info, indent=1))
    return info


class ExportError(ValueError):
    """An export folder is incomplete or was altered; the message names the file and the field."""


def read_export_info(export_dir: str | os.PathLike) -> dict:
    """config.json, checked: a plain timm architecture (no ``hf-hub:``/``local-dir:`` source that
    would reach the network or other folders) and file fields naming files inside the folder."""
    import timm

    path = Path(export_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is {export_dir} a `hybridssl export` directory?")
    try:
        info = json.loads(path.read_text())
        arch = info["architecture"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ExportError(f"{path}: not a `hybridssl export` config.json ({type(e).__name__}: {e})") from None
    if not isinstance(arch, str) or arch not in timm.list_models():
        raise ExportError(f"{path}: architecture {arch!r} is not a plain timm model name "
                          f"(hub or local-dir sources are refused)")
    sources = [k for k in (info.get("model_args") or {}) if k.startswith(("pretrained", "checkpoint"))]
    if not isinstance(info.get("model_args", {}), dict) or sources:
        raise ExportError(f"{path}: model_args may only hold model-building arguments, not {sources or 'a non-dict'}")
    _check_fields(path, info)
    return info


def _is_int(v, low: int, high: float = float("inf")) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_fields(path: Path, info: dict) -> None:
    """The fields readers build models from: one :class:`ExportError` naming the first bad key, so a
    hand-edited config.json never reaches a traceback or another key's error."""
    from hybridssl.storage.images import MAX_IMAGE_SIZE

    bands = info.get("in_chans", 3)
    checks = [("image_size", _is_int(info.get("image_size"), 1, MAX_IMAGE_SIZE), f"an integer in 1..{MAX_IMAGE_SIZE}"),
              ("in_chans", _is_int(bands, 1), "an integer >= 1")]
    for key in ("mean", "std"):
        if key in info:
            v = info[key]
            checks.append((key, isinstance(v, list) and len(v) == (bands if _is_int(bands, 1) else -1)
                           and all(_is_number(x) and (key == "mean" or x > 0) for x in v),
                           f"a list of {bands} finite numbers" + (" > 0" if key == "std" else "")))
    heads = {"head": {"in_features": 1, "n_answers": 1}, "task_head": {"in_features": 1, "n_outputs": 1}}
    for name, ints in heads.items():
        if name not in info:
            continue
        spec = info[name]
        if not isinstance(spec, dict):
            raise ExportError(f"{path}: {name} must be an object, got {spec!r}")
        default = HEAD_FILE if name == "head" else None
        file = spec.get("file", default)
        checks.append((f"{name}.file", isinstance(file, str) and Path(file).name == file
                       and file not in ("", ".", ".."), f"a file name inside {path.parent}"))
        checks += [(f"{name}.{k}", _is_int(spec.get(k), low), f"an integer >= {low}") for k, low in ints.items()]
        checks.append((f"{name}.dropout", _is_number(spec.get("dropout", 0.0)) and 0 <= spec.get("dropout", 0.0) < 1,
                       "a number in [0, 1)"))
        if name == "task_head":
            task = spec.get("task")
            checks.append(("task_head.task", task in ("classification", "regression"), "classification or regression"))
            if task == "classification":
                checks.append(("task_head.classes", isinstance(spec.get("classes"), list)
                               and len(spec["classes"]) == spec.get("n_outputs"), "a list of n_outputs classes"))
            elif task == "regression":
                checks += [(f"task_head.{k}", _is_number(spec.get(k)) and (k == "target_mean" or spec[k] > 0),
                            "a finite number" + (" > 0" if k == "target_std" else "")) for k in ("target_mean", "target_std")]
    for key, ok, valid in checks:
        if not ok:
            value = info
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            raise ExportError(f"{path}: {key} {value!r} is not valid; it must be {valid}")


@contextlib.contextmanager
def _weights_problems(path: Path):
    """A pickle, a damaged file or other shapes in the safetensors ``path`` as one :class:`ExportError` line."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, OSError, RuntimeError) as e:
        detail = str(e).splitlines()[0] if isinstance(e, SafetensorError) else \
            "; ".join(ln.strip() for ln in str(e).splitlines()[1:4]) or str(e)
        raise ExportError(f"{path}: not weights of this export's model ({type(e).__name__}: {detail[:300]})") \
            from None


def load_weights(model, path: Path):
    """safetensors weights into ``model`` (see :func:`_weights_problems`)."""
    from safetensors.torch import load_file

    with _weights_problems(path):
        model.load_state_dict(load_file(str(path)))
    return model.eval()


def load_backbone(export_dir: str | os.PathLike):
    """(timm model with ``num_classes=0``, config.json dict) from an export directory."""
    import timm

    info = read_export_info(export_dir)
    path = Path(export_dir) / MODEL_FILE
    if not path.is_file():  # timm would take any other *.safetensors there
        raise FileNotFoundError(f"{path} not found; re-run `hybridssl export`")
    # exports from before model_args existed rebuild the same way: timm takes num_classes and
    # in_chans from pretrained_cfg
    with _weights_problems(path):
        model = timm.create_model(f"local-dir:{Path(export_dir).resolve()}", pretrained=True)
    return model.eval(), info


def load_head(export_dir: str | os.PathLike):
    """The exported Dirichlet head (``hybridssl.model.heads.DirichletHead``), or None when the mode had none."""
    from hybridssl.model.heads import DirichletHead

    info = read_export_info(export_dir)
    if "head" not in info:
        return None
    h = info["head"]
    head = DirichletHead(h["in_features"], h["n_answers"], h["dropout"])
    return load_weights(head, Path(export_dir) / h["file"])


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT_OR_RUN_DIR",
                        help="a .ckpt file, or a run directory (its newest complete checkpoint)")
    parser.add_argument("--out", required=True, help="output directory (model.safetensors, config.json, "
                                                     "head.safetensors)")


def run(args) -> int:
    info = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {info['architecture']} ({info['mode']}, step {info['checkpoint']['global_step']}) "
          f"to {args.out}" + (" with Dirichlet head" if "head" in info else ""))
    return 0
