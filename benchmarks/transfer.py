"""``hybridssl benchmark``: the low-label transfer benchmark of exported backbones.

The grid is backbone x seed x label budget x protocol. Per backbone, frozen features are
extracted once (and cached on disk); per seed, one stratified ordering of the training split
gives nested budgets. Each finished cell is appended to ``out_dir/cells.jsonl``; a re-run
with the same settings skips it, so a killed benchmark resumes where it stopped. A cell keeps
its prediction for every test galaxy, so the reports can bootstrap over test galaxies: backbones
named ``MODE_seedK`` are grouped into one mode, and every mode's accuracy and every paired
difference between modes gets an interval over test galaxies, pretraining seeds and probe seeds
(``hybridssl.evaluate.bootstrap``). At the end ``results.json/.csv/.md``, ``results_modes.csv``,
``results_differences.csv`` and ``label_curve.png`` are written and the tables are printed.

A budget larger than the training split is a ``ConfigError`` naming ``budgets`` (not clamped
to ``all``), so every column of the table is the experiment its name says.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import sklearn
import timm
import torch
import torchmetrics
from omegaconf import MISSING
from tqdm import tqdm

import hybridssl
from hybridssl import export
from hybridssl.config import ConfigError, load_config, resolve_config_path, to_dict
from hybridssl.data import read_meta
from hybridssl.evaluate.bootstrap import BootstrapConfig, groups
from hybridssl.evaluate.features import backbone_hash, extract_features
from hybridssl.evaluate.finetune import FinetuneConfig, finetune
from hybridssl.evaluate.metrics import classification_scores
from hybridssl.evaluate.probes import KnnConfig, LinearProbeConfig, knn_probe, linear_probe
from hybridssl.evaluate.report import append_cell, cell_key, load_cells, write_reports
from hybridssl.evaluate.subsets import budget_size, check_budgets, nested_subsets
from hybridssl.outputs import check_outputs
from hybridssl.shards import MANIFEST, ShardError, sha256_file

PROTOCOLS = ("linear", "knn", "finetune")


@dataclass
class BenchmarkConfig:
    backbones: Dict[str, str] = MISSING      # name -> export dir (`hybridssl export`), checkpoint or run dir
    task: str = MISSING                      # shard set of the downstream task (`hybridssl prepare`)
    label_column: str = MISSING              # meta.json field holding the class
    split_column: str = MISSING              # meta.json field holding train/test
    train_split: str = MISSING
    test_split: str = MISSING
    budgets: List[Union[int, str]] = MISSING  # label counts, or "all"
    seeds: List[int] = MISSING
    protocols: List[str] = MISSING           # any of linear, knn, finetune
    augment: str = MISSING                   # eval preprocessing preset (configs/augment/)
    batch_size: int = MISSING
    num_workers: int = MISSING
    device: str = MISSING                    # cpu | cuda | auto
    out_dir: str = MISSING
    cache_dir: Optional[str] = MISSING       # null = out_dir/features
    title: str = MISSING
    linear: LinearProbeConfig = field(default_factory=LinearProbeConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)

    def validate(self) -> None:
        if not self.backbones:
            raise ConfigError("config key 'backbones' is empty; give name=DIR pairs, e.g. backbones.hybrid=runs/export")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not self.protocols:
            raise ConfigError(f"config key 'protocols': {bad or 'empty'}; valid choices: {list(PROTOCOLS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"config key 'seeds': {self.seeds} must be a non-empty list of distinct integers")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"config key 'device': {self.device!r}; valid choices: cpu, cuda, auto")
        if self.bootstrap.draws < 1 or not 0 < self.bootstrap.confidence < 1:
            raise ConfigError(f"config keys 'bootstrap.draws' ({self.bootstrap.draws}) and 'bootstrap.confidence' "
                              f"({self.bootstrap.confidence}) must be >= 1 and between 0 and 1")


@dataclass
class Task:
    """The downstream task read from the shard set's meta.json fields."""
    classes: list[str]
    train_rows: np.ndarray    # dataset row indices of the training split
    test_rows: np.ndarray
    y: np.ndarray             # class index of every dataset row (-1 outside train/test)
    ids: list[str]
    manifest_sha256: str


def load_task(cfg: BenchmarkConfig, metas: list[dict]) -> Task:
    for key, column in (("label_column", cfg.label_column), ("split_column", cfg.split_column)):
        missing = [m["id_str"] for m in metas if column not in m]
        if missing:
            cols = sorted(metas[0].keys()) if metas else []
            raise ConfigError(f"config key {key!r}: {column!r} is not in the meta.json of {len(missing)} samples of "
                              f"{cfg.task} (first: {missing[0]!r}); fields there: {cols}")
    split = np.array([str(m[cfg.split_column]) for m in metas])
    in_task = (split == cfg.train_split) | (split == cfg.test_split)
    unlabelled = [m["id_str"] for m, t in zip(metas, in_task) if t and m[cfg.label_column] is None]
    if unlabelled:
        raise ConfigError(f"{cfg.task}: {len(unlabelled)} samples have no {cfg.label_column!r} value "
                          f"(first: {unlabelled[0]!r})")
    classes = sorted({m[cfg.label_column] for m, t in zip(metas, in_task) if t}, key=lambda v: (str(type(v)), v))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[m[cfg.label_column]] if t else -1 for m, t in zip(metas, in_task)], dtype=np.int64)
    task = Task([str(c) for c in classes], np.flatnonzero(split == cfg.train_split),
                np.flatnonzero(split == cfg.test_split), y, [m["id_str"] for m in metas],
                sha256_file(Path(cfg.task) / MANIFEST))
    for key, rows in (("train_split", task.train_rows), ("test_split", task.test_rows)):
        if len(rows) == 0:
            raise ConfigError(f"config key {key!r}: no sample of {cfg.task} has {cfg.split_column}="
                              f"{getattr(cfg, key)!r}; values there: {sorted(set(split))}")
    if len(classes) < 2:
        raise ConfigError(f"config key 'label_column': {cfg.label_column!r} has a single class {task.classes} "
                          f"in {cfg.task}")
    return task


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "scikit-learn": sklearn.__version__, "torchmetrics": torchmetrics.__version__,
            "hybridssl": hybridssl.__version__}


def resolve_backbone(name: str, path: str, out_dir: str) -> str:
    """An export directory as given; a pretraining checkpoint or run directory is exported
    (``hybridssl export``) to ``out_dir/exports/NAME`` first."""
    p = Path(path)
    if (p / export.CONFIG_FILE).is_file() and (p / export.MODEL_FILE).is_file():
        return str(p)
    from hybridssl.train.checkpoint import CheckpointError

    target = Path(out_dir) / "exports" / name
    try:
        export.export_checkpoint(p, target)
    except (CheckpointError, FileNotFoundError, IsADirectoryError) as e:
        raise ConfigError(f"config key 'backbones.{name}': {path} is neither an export directory (model.safetensors "
                          f"+ config.json) nor a pretraining checkpoint or run directory ({e})") from e
    return str(target)


def _backbone_info(path: str) -> dict:
    info = export.read_export_info(path)
    return {"dir": str(path), "hash": backbone_hash(path),
            **{k: info.get(k) for k in ("architecture", "num_features", "image_size", "schema", "schema_hash", "mode")}}


def run_grid(cfg: BenchmarkConfig, task: Task, backbones: dict) -> list[dict]:
    """Run every cell not already in ``out_dir/cells.jsonl``; return all cells of this grid."""
    n_classes = len(task.classes)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    out = Path(cfg.out_dir)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out / "features"
    task_fp = [task.manifest_sha256, cfg.label_column, cfg.split_column, cfg.train_split, cfg.test_split, cfg.augment]

    def fingerprint(name, protocol):  # a finished cell counts only under the same settings
        return _hash([backbones[name]["hash"], protocol, to_dict(getattr(cfg, protocol)), *task_fp])

    done = {cell_key(c): c for c in load_cells(out)}
    grid = [(name, seed, budget, protocol) for name in cfg.backbones for seed in cfg.seeds
            for budget in cfg.budgets for protocol in cfg.protocols]
    cells = []
    bar = tqdm(total=len(grid), desc="benchmark cells", unit="cell")
    features, subsets = {}, {}
    for name, seed, budget, protocol in grid:
        fp = fingerprint(name, protocol)
        prior = done.get((name, protocol, str(budget), seed))
        # a cell logged before per-galaxy predictions were kept is redone: the bootstrap needs them
        if prior is not None and prior.get("fingerprint") == fp and "test_pred" in prior:
            cells.append(prior)
            bar.update()
            continue
        bar.set_postfix_str(f"{name} {protocol} {budget} seed {seed}")
        if seed not in subsets:
            subsets[seed] = nested_subsets(task.y[task.train_rows], cfg.budgets, seed)
        subset = task.train_rows[subsets[seed][budget]]
        start = time.perf_counter()
        if protocol == "finetune":
            label_of = {task.ids[i]: int(task.y[i]) for i in subset}
            probs, info = finetune(cfg.backbones[name], cfg.task, subset, task.test_rows, label_of, cfg.finetune,
                                   n_classes, cfg.augment, seed, device, cfg.num_workers)
        else:
            if name not in features:
                features[name] = _aligned(extract_features(cfg.backbones[name], cfg.task, cache, cfg.augment,
                                                           cfg.batch_size, cfg.num_workers, device, desc=name), task)
            x = features[name]
            if protocol == "linear":
                probs, info = linear_probe(x[subset], task.y[subset], x[task.test_rows], cfg.linear, n_classes, seed)
            else:
                probs, info = knn_probe(x[subset], task.y[subset], x[task.test_rows], cfg.knn, n_classes)
        cell = {"backbone": name, "protocol": protocol, "budget": budget, "seed": seed,
                "n_labels": budget_size(budget, len(task.train_rows)), "fingerprint": fp,
                "scores": classification_scores(probs, task.y[task.test_rows]), "info": info,
                "test_pred": probs.argmax(1).tolist(),  # per test galaxy, for the bootstrap
                "seconds": round(time.perf_counter() - start, 3)}
        append_cell(out, cell)
        cells.append(cell)
        bar.update()
    bar.close()
    return cells


def _aligned(feats, task: Task) -> np.ndarray:
    if feats.ids != task.ids:
        raise ShardError(f"feature cache {feats.key}: sample ids differ from the shard set's; delete the cache file")
    return feats.x


def provenance(cfg: BenchmarkConfig, task: Task, backbones: dict) -> dict:
    """What made the numbers: versions, the resolved config, the task's data and the backbones."""
    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), "versions": _versions(), "config": to_dict(cfg),
            "task": {"shards": cfg.task, "manifest_sha256": task.manifest_sha256, "classes": task.classes,
                     "n_train": int(len(task.train_rows)), "n_test": int(len(task.test_rows)),
                     "test_class_counts": np.bincount(task.y[task.test_rows], minlength=len(task.classes)).tolist()},
            "backbones": backbones,
            "schema_hashes": sorted({b["schema_hash"] for b in backbones.values() if b.get("schema_hash")})}


def benchmark(cfg: BenchmarkConfig) -> dict[str, Path]:
    """The whole benchmark: check the config against the data, run the grid, write the reports."""
    cfg.backbones = {name: resolve_backbone(name, path, cfg.out_dir) for name, path in cfg.backbones.items()}
    backbones = {name: _backbone_info(path) for name, path in cfg.backbones.items()}
    task = load_task(cfg, read_meta(cfg.task))
    check_budgets(cfg.budgets, len(task.train_rows), len(task.classes), where=f" of {cfg.task}")
    cells = run_grid(cfg, task, backbones)
    prov = provenance(cfg, task, backbones)
    notes = [f"Task `{cfg.label_column}` ({', '.join(task.classes)}) from `{cfg.task}`: {len(task.train_rows)} train / "
             f"{len(task.test_rows)} test galaxies; seeds {list(cfg.seeds)}; protocols {', '.join(cfg.protocols)}.",
             "Backbones: " + ", ".join(f"{n} ({b['architecture']}, {b['mode']})" for n, b in backbones.items()) + ".",
             "Modes (backbones named MODE_seedK are the pretraining seeds of MODE): "
             + "; ".join(f"{g} = {', '.join(m)}" for g, m in groups(backbones).items()) + "."]
    return write_reports(cfg.out_dir, cells, cfg.budgets, task.y[task.test_rows], cfg.bootstrap, prov, cfg.title,
                         notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="benchmark config: a YAML path or a name under configs/benchmark/ (e.g. demo)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. task=shards/rings backbones.hybrid=export/hybrid budgets=[50,all]")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(BenchmarkConfig, resolve_config_path(args.config, "benchmark"), args.overrides)
    check_outputs({"out_dir": cfg.out_dir, "cache_dir": cfg.cache_dir},
                  {"task": cfg.task, **{f"backbones.{k}": v for k, v in cfg.backbones.items()}}, folder_outputs=True)
    paths = benchmark(cfg)
    print(paths["md"].read_text())
    print(f"label curve: {paths['png']}")
    return 0
