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
import os
from pathlib import Path

from hybridssl.atomic import atomic_write_bytes, atomic_write_text

MODEL_FILE, HEAD_FILE, CONFIG_FILE = "model.safetensors", "head.safetensors", "config.json"
_BACKBONE, _HEAD = "model.backbone.", "model.head."


def _prefixed(state_dict: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v.contiguous() for k, v in state_dict.items() if k.startswith(prefix)}


def _save_tensors(tensors: dict, path: Path, metadata: dict) -> None:
    from safetensors.torch import save
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def export_checkpoint(ckpt_or_run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Write the export of a checkpoint (or a run's newest complete one); returns config.json's content."""
    from hybridssl.locks import ensure_dir
    from hybridssl.train.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
    from hybridssl.train.guards import non_finite
    from hybridssl.train.module import CHECKPOINT_KEY

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
        arch, head_file = info["architecture"], (info.get("head") or {}).get("file", HEAD_FILE)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ExportError(f"{path}: not a `hybridssl export` config.json ({type(e).__name__}: {e})") from None
    if not isinstance(arch, str) or arch not in timm.list_models():
        raise ExportError(f"{path}: architecture {arch!r} is not a plain timm model name "
                          f"(hub or local-dir sources are refused)")
    sources = [k for k in (info.get("model_args") or {}) if k.startswith(("pretrained", "checkpoint"))]
    if not isinstance(info.get("model_args", {}), dict) or sources:
        raise ExportError(f"{path}: model_args may only hold model-building arguments, not {sources or 'a non-dict'}")
    if not isinstance(head_file, str) or Path(head_file).name != head_file or head_file in ("", ".", ".."):
        raise ExportError(f"{path}: head file {head_file!r} must be a file name inside {export_dir}")
    return info


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


def _load_weights(model, path: Path):
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
    """The exported Dirichlet head (``hybridssl.heads.DirichletHead``), or None when the mode had none."""
    from hybridssl.heads import DirichletHead

    info = read_export_info(export_dir)
    if "head" not in info:
        return None
    h = info["head"]
    head = DirichletHead(h["in_features"], h["n_answers"], h["dropout"])
    return _load_weights(head, Path(export_dir) / h["file"])


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
