"""``hybridssl finetune --model EXPORT (--shards D | --catalog F) --out DIR [--task T] [key=value ...]``.

Trains the exported backbone plus a new task head on your labels with a Lightning Trainer:
a held-out validation split, early stopping on its loss, a progress bar, and
``DIR/checkpoints/last.ckpt`` after every epoch, so the same command after a kill resumes where it
stopped. A non-finite loss or weights stop the run with one line (pretraining's guard), the
newest checkpoint staying the last finite one; ``DIR`` is held by the same writer lock as
pretraining's (``hybridssl/storage/locks.py``). The best epoch's weights are written to ``DIR`` in the export format
(``hybridssl/finetune/export.py``), which ``predict`` and ``embed`` load.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hybridssl.cli import int_at_least
from hybridssl.finetune.config import CHECKPOINTS, LAST

# what a resumed run must share with the run that wrote its checkpoints
_RESUME_KEYS = ("model", "shards", "catalog", "task", "label_column", "split_column", "train_split",
                "val_fraction", "train_blocks", "seed")


def add_arguments(parser) -> None:
    from hybridssl.apply.sources import add_source_arguments
    from hybridssl.finetune.config import TASKS

    parser.add_argument("--model", required=True, metavar="DIR", help="a `hybridssl export` directory")
    add_source_arguments(parser)
    parser.set_defaults(batch_size=None, workers=None, device=None)  # the config's unless given
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output: the finetuned export, its checkpoints and logs")
    parser.add_argument("--config", default="base", help="a configs/finetune/ name or a YAML path (default base)")
    parser.add_argument("--task", choices=TASKS, help="what the head learns (default: the config's)")
    parser.add_argument("--label-column", help="meta.json field (--shards) or catalog column holding the label")
    parser.add_argument("--train-blocks", type=int_at_least(-1), metavar="N",
                        help="train only the last N block groups (timm's grouping) and the head; -1 = all")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. epochs=5")


def load_run_config(args):
    from hybridssl.config import load_config, resolve_config_path
    from hybridssl.finetune.config import FinetuneConfig

    flags = {"task": args.task, "label_column": args.label_column, "train_blocks": args.train_blocks,
             "batch_size": args.batch_size, "num_workers": args.workers, "device": args.device}
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.overrides)
    return load_config(FinetuneConfig, resolve_config_path(args.config, "finetune"), overrides)


def _check_resume(out: Path, settings: dict) -> Path | None:
    """``last.ckpt`` when ``out`` holds an unfinished run with the same settings; None for a fresh run."""
    import yaml

    from hybridssl.config import ConfigError
    from hybridssl.export.timm_folder import CONFIG_FILE

    if (out / CONFIG_FILE).exists():
        raise ConfigError(f"{out} already holds a finished finetune ({CONFIG_FILE}); choose a new --out")
    last, saved = out / CHECKPOINTS / LAST, out / "finetune.yaml"
    if not last.exists():
        return None
    was = yaml.safe_load(saved.read_text()) if saved.exists() else {}
    changed = [k for k in _RESUME_KEYS if was.get(k) != settings.get(k)]
    if changed:
        raise ConfigError(f"{out} holds an unfinished finetune with other settings ({', '.join(changed)}: "
                          f"{[was.get(k) for k in changed]}); resume with the same ones or choose a new --out")
    return last


def run(args) -> int:
    from hybridssl.storage.locks import dir_lock

    cfg = load_run_config(args)
    out = Path(args.out)
    with dir_lock(out, "finetune"):  # one writer per folder, as pretrain's out_dir
        return _run_locked(args, cfg, out)


def _run_locked(args, cfg, out: Path) -> int:
    import yaml

    from hybridssl.storage.atomic import atomic_write_text
    from hybridssl.config import to_dict
    from hybridssl.finetune.train import finetune

    settings = {"model": str(Path(args.model).resolve()),
                "shards": args.shards and str(Path(args.shards).resolve()),
                "catalog": args.catalog and str(Path(args.catalog).resolve()), **to_dict(cfg)}
    resume = _check_resume(out, settings)
    atomic_write_text(out / "finetune.yaml", yaml.safe_dump(settings, sort_keys=False))
    if resume is not None:
        print(f"finetune: resuming from {resume}", file=sys.stderr)
    info = finetune(args, cfg, out, resume)
    if info is None:
        print(f"finetune: interrupted; run the same command again to resume from {out / CHECKPOINTS / LAST}",
              file=sys.stderr)
        return 130
    s = info["finetune"]
    print(f"finetune: {s['task']} on {s['n_train']} rows ({s['n_val']} validation), {s['epochs_run']} epochs, "
          f"best validation loss {s['best_val_loss']:.4g} (epoch {s['best_epoch']})"
          + (f", ROC AUC {s['val_auc']:.3f}, accuracy {s['val_accuracy']:.3f}" if "val_auc" in s else "") + f" -> {out}")
    return 0
