"""The rows a finetune learns from: labels read from the shards' meta.json (``prepare
--keep-columns``) or a catalog column, checked with one clear line per problem, and split into
training and validation rows. Rows without a label are skipped (and counted), never guessed."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import torch

from hybridssl.finetune.config import FinetuneConfig


class LabelError(ValueError):
    """The labels cannot train the task asked for; the message names the column and a row."""


@dataclass
class TaskData:
    source: torch.utils.data.Dataset   # IndexedShards or CatalogImages
    rows: np.ndarray                   # the source rows used, in source order
    targets: Optional[np.ndarray]      # class index (int64) or value (float32); None: votes come with the image
    classes: Optional[list]            # classification: the label of each class index, sorted
    train: np.ndarray                  # positions in ``rows`` used for training
    val: np.ndarray                    # positions in ``rows`` held out for early stopping
    scale: tuple = (0.0, 1.0)          # regression: the training targets' (mean, std), which the head learns in units of


class TaskSamples(torch.utils.data.Dataset):
    """``{"image": uint8 (3, H, W), "target": ...}`` for the given positions of a :class:`TaskData`."""

    def __init__(self, data: TaskData, positions: np.ndarray):
        self.data, self.positions = data, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        p = int(self.positions[i])
        sample = self.data.source[int(self.data.rows[p])]
        target = sample["votes"] if self.data.targets is None else torch.as_tensor(self.data.targets[p])
        return {"image": sample["image"], "target": target}


def training_loader(samples: torch.utils.data.Dataset, batch_size: int, num_workers: int, seed: int):
    """Shuffled batches whose order depends on (seed, epoch) only: the sampler has ``set_epoch``, which
    Lightning calls, so a resumed run sees the batches the uninterrupted one would. The ragged tail is
    dropped: a batch of one breaks batch norm in train mode."""
    sampler = torch.utils.data.DistributedSampler(samples, num_replicas=1, rank=0, shuffle=True, seed=seed)
    return torch.utils.data.DataLoader(samples, batch_size, sampler=sampler, num_workers=num_workers,
                                       drop_last=len(samples) > batch_size)


def _column(args, source, column: str) -> tuple[list, list[str], str]:
    """(values for every source row, ids, where they come from) of a meta.json field or catalog column."""
    if args.shards:
        from hybridssl.data import read_meta

        metas = read_meta(args.shards)
        if not any(column in m for m in metas):
            fields = sorted({k for m in metas for k in m})
            raise LabelError(f"{args.shards}: no column {column!r} in its samples' meta.json (fields: "
                             f"{', '.join(fields)}); prepare the catalog with --keep-columns {column}")
        return [m.get(column) for m in metas], [m["id_str"] for m in metas], f"{args.shards} meta.json"
    from hybridssl.storage.catalog import read_catalog

    df = read_catalog(args.catalog, (args.id_column, args.path_column))
    if column not in df.columns:
        raise LabelError(f"catalog {args.catalog}: no column {column!r}; columns are "
                         f"{', '.join(map(str, df.columns[:30]))}")
    return list(df[column].to_numpy(dtype=object)[source.rows.rows]), source.rows.ids, f"catalog {args.catalog}"


def split_text(v) -> str:
    """A split value as text, integral numbers without a decimal point (1.0 and 1 are "1")."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _missing(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v))) or (isinstance(v, str) and not v.strip())


def _encode(values: list, ids: list[str], cfg: FinetuneConfig, where: str) -> tuple[np.ndarray, Optional[list]]:
    col = f"label column {cfg.label_column!r} ({where})"
    if cfg.task == "classification":
        classes = sorted(set(values))
        if len(classes) < 2:
            raise LabelError(f"{col}: one class only ({classes[0]!r}) in the {len(values)} usable rows; "
                             "classification needs at least 2")
        lookup = {c: k for k, c in enumerate(classes)}
        return np.array([lookup[v] for v in values], dtype=np.int64), [_plain(c) for c in classes]
    out = np.empty(len(values), dtype=np.float32)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise LabelError(f"{col}: row {ids[i]!r} has {v!r}, not a number (regression needs numbers)") from None
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise LabelError(f"{col}: row {ids[bad]!r} has {values[bad]!r}; regression needs finite numbers")
    return out, None


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


# a standardised prediction this many standard deviations from the mean must still be finite on the label scale
_PREDICTION_SPAN = 10.0


def _standardisation(targets: np.ndarray, ids: list[str], col: str) -> tuple[float, float]:
    """(mean, std) of regression targets, computed in float64 (float32 sums of labels near 3e38
    overflow); refused when predictions put back on the label scale would not fit float32."""
    y = targets.astype(np.float64)
    mean, std = float(y.mean()), float(y.std()) or 1.0
    if abs(mean) + _PREDICTION_SPAN * std > float(np.finfo(np.float32).max):
        worst = int(np.argmax(np.abs(y - mean)))
        raise LabelError(f"{col}: row {ids[worst]!r} has {float(targets[worst]):.6g}; the labels' mean {mean:.3g} and std "
                         f"{std:.3g} are too large for float32 predictions; rescale the column (other units)")
    return mean, std


def _split(n: int, targets: Optional[np.ndarray], cfg: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if n < 2:
        raise LabelError(f"{n} usable row(s): a training and a validation row are the least a finetune needs")
    stratify = None
    if cfg.task == "classification" and np.bincount(targets).min() >= 2:  # stratify only where every class can
        stratify = targets
    n_val = min(max(round(n * cfg.val_fraction), len(np.unique(targets)) if stratify is not None else 1), n - 1)
    train, val = train_test_split(np.arange(n), test_size=n_val, random_state=cfg.seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def load_task_data(args, source, cfg: FinetuneConfig) -> TaskData:
    """The usable rows of ``source`` (the dataset ``--shards``/``--catalog`` opened) with their targets."""
    keep = np.ones(len(source), dtype=bool)
    if cfg.split_column:
        split, _, where = _column(args, source, cfg.split_column)
        # compared as text: an integer column (1, or 1.0 beside a NaN) matches train_split "1"
        keep &= np.array([split_text(s) == split_text(cfg.train_split) for s in split])
        if not keep.any():
            raise LabelError(f"{where}: no row has {cfg.split_column} == {split_text(cfg.train_split)!r} "
                             f"(values: {sorted(set(map(split_text, split)))[:10]})")
    if cfg.task == "votes":
        if not source.labelled:
            raise LabelError(f"{args.shards or args.catalog}: no votes; task votes needs shards prepared with "
                             "votes (without --unlabelled) or a catalog with the schema's vote columns")
        rows = np.flatnonzero(keep)
        train, val = _split(len(rows), None, cfg)
        return TaskData(source, rows, None, None, train, val)
    values, ids, where = _column(args, source, cfg.label_column)
    missing = np.array([_missing(v) for v in values])
    skipped = keep & missing
    if not (keep & ~missing).any():
        raise LabelError(f"label column {cfg.label_column!r} ({where}): no row has a label (all NaN or empty)")
    if skipped.any():
        first = int(np.flatnonzero(skipped)[0])
        print(f"finetune: skipping {int(skipped.sum())} rows without a {cfg.label_column!r} label "
              f"(first: {ids[first]!r})", file=sys.stderr)
    rows = np.flatnonzero(keep & ~missing)
    row_ids = [ids[r] for r in rows]
    targets, classes = _encode([values[r] for r in rows], row_ids, cfg, where)
    train, val = _split(len(rows), targets, cfg)
    scale = (0.0, 1.0)
    if cfg.task == "regression":  # the head learns the standardised target; predict undoes it
        scale = _standardisation(targets[train], [row_ids[i] for i in train],
                                 f"label column {cfg.label_column!r} ({where})")
    return TaskData(source, rows, targets, classes, train, val, scale)
