"""``hybridssl benchmark``: the low-label transfer benchmark of exported backbones.

Every table has the baselines as rows (``baselines``): the photometric baseline and the colours
measured from the task's pixels (``hybridssl.evaluate.photometric``) and the random init of the
backbones' architecture (``hybridssl.evaluate.random_init``; a backbone named ``scratch`` is taken
as the random init when given).

The headline (``repeated``, for small tasks): repeated class-balanced draws over every galaxy of
the task, train and test splits together, the same draws for every row; ROC AUC, accuracy and
log-loss with a bootstrap over galaxies and draws (``hybridssl.evaluate.repeated``); the
per-galaxy predictions go to ``predictions.parquet``. ``repeated.draws=0`` turns it off.

The second, optional part is the task's fixed train/test split (``protocols``; ``[]`` = off).
Its grid is backbone x seed x label budget x protocol. Per backbone, frozen features are
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
import pandas as pd
import sklearn
import timm
import torch
import torchmetrics
from omegaconf import MISSING

import hybridssl
from hybridssl.cli import progress
from hybridssl.export import timm_folder as export
from hybridssl.storage.atomic import atomic_path, atomic_write_text
from hybridssl.config import ConfigError, load_config, resolve_config_path, to_dict
from hybridssl.data import read_meta
from hybridssl.evaluate.bootstrap import BootstrapConfig, groups
from hybridssl.evaluate.draws import balanced_draws, check_draw_budgets
from hybridssl.evaluate.features import backbone_hash, extract_features
from hybridssl.evaluate.finetune import FinetuneConfig, finetune
from hybridssl.evaluate.metrics import classification_scores
from hybridssl.evaluate.photometric import pixel_baselines
from hybridssl.evaluate.probes import KnnConfig, LinearProbeConfig, knn_probe, linear_probe
from hybridssl.evaluate.random_init import write_random_init
from hybridssl.evaluate.repeated import PREDICTIONS, RepeatedConfig, markdown, predict_draws, summarise
from hybridssl.evaluate.report import append_cell, cell_key, load_cells, write_reports
from hybridssl.evaluate.subsets import budget_size, check_budgets, nested_subsets
from hybridssl.storage.outputs import check_outputs
from hybridssl.storage.shards import MANIFEST, ShardError, sha256_file

PROTOCOLS = ("linear", "knn", "finetune")
BASELINES = ("photometric", "colour", "random_init")
PIXEL_BASELINES = ("photometric", "colour")
BASELINE_KINDS = {"photometric": "8 numbers from the pixels", "colour": "2 colours from the pixels",
                  "random_init": "random init"}


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
    protocols: List[str] = MISSING           # fixed-split grid: any of linear, knn, finetune; [] = off
    baselines: List[str] = MISSING           # rows of every table: any of photometric, colour, random_init
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
    repeated: RepeatedConfig = field(default_factory=RepeatedConfig)

    def validate(self) -> None:
        if not self.backbones:
            raise ConfigError("config key 'backbones' is empty; give name=DIR pairs, e.g. backbones.hybrid=runs/export")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not (self.protocols or self.repeated.draws):
            raise ConfigError(f"config key 'protocols': {bad or 'empty, and repeated.draws is 0'}; valid choices: "
                              f"{list(PROTOCOLS)}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ConfigError(f"config key 'baselines': {bad}; valid choices: {list(BASELINES)}")
        if self.repeated.draws < 0:
            raise ConfigError(f"config key 'repeated.draws': {self.repeated.draws} must be >= 0 (0 = off)")
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


def run_grid(cfg: BenchmarkConfig, task: Task, backbones: dict, pixel: dict[str, np.ndarray]) -> list[dict]:
    """Run every cell not already in ``out_dir/cells.jsonl``; return all cells of this grid. ``pixel``:
    the features of the pixel baselines (probed like a backbone's; they have nothing to fine-tune)."""
    n_classes = len(task.classes)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    out = Path(cfg.out_dir)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out / "features"
    task_fp = [task.manifest_sha256, cfg.label_column, cfg.split_column, cfg.train_split, cfg.test_split, cfg.augment]

    def fingerprint(name, protocol):  # a finished cell counts only under the same settings
        return _hash([backbones[name]["hash"], protocol, to_dict(getattr(cfg, protocol)), *task_fp])

    done = {cell_key(c): c for c in load_cells(out)}
    grid = [(name, seed, budget, protocol) for name in [*cfg.backbones, *pixel] for seed in cfg.seeds
            for budget in cfg.budgets for protocol in cfg.protocols if not (name in pixel and protocol == "finetune")]
    cells = []
    bar = progress(total=len(grid), desc="benchmark cells", unit="cell")
    features, subsets = dict(pixel), {}
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


def add_random_init(cfg: BenchmarkConfig) -> Optional[str]:
    """The name of the random-init row: ``scratch`` when given, else ``random_init``, an export of the
    first backbone's architecture at its seeded random initialisation (``repeated.seed``) added to
    ``cfg.backbones``; None when the config asks for no random init and gives no scratch."""
    if "scratch" in cfg.backbones:
        return "scratch"
    if "random_init" not in cfg.baselines:
        return None
    if "random_init" in cfg.backbones:
        raise ConfigError("config key 'backbones.random_init': the name is taken by the random-init baseline; "
                          "rename the backbone, or drop random_init from 'baselines'")
    like = next(iter(cfg.backbones.values()))
    cfg.backbones["random_init"] = str(write_random_init(like, Path(cfg.out_dir) / "exports" / "random_init",
                                                         cfg.repeated.seed))
    return "random_init"


def pixel_features(cfg: BenchmarkConfig, task: Task) -> dict[str, np.ndarray]:
    """The requested pixel baselines, rows aligned with the task's samples."""
    wanted = [b for b in cfg.baselines if b in PIXEL_BASELINES]
    if not wanted:
        return {}
    ids, feats = pixel_baselines(cfg.task, cfg.batch_size)
    if ids != task.ids:
        raise ShardError(f"{cfg.task}: the images are not in meta.json's order; run `hybridssl verify {cfg.task}`")
    return {b: feats[b] for b in wanted}


def run_repeated(cfg: BenchmarkConfig, task: Task, pixel: dict[str, np.ndarray], random_name: Optional[str]
                 ) -> tuple[list[str], dict]:
    """The headline design over every galaxy of the task: its markdown and its JSON part; writes
    ``predictions.parquet``."""
    rows = np.sort(np.concatenate([task.train_rows, task.test_rows]))
    y, ids, rc = task.y[rows], [task.ids[i] for i in rows], cfg.repeated
    draws = balanced_draws(y, rc.draws, rc.budgets, rc.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out_dir) / "features"
    frames = []
    for tta in ([False, True] if rc.tta else [False]):
        for name, path in cfg.backbones.items():
            x = _aligned(extract_features(path, cfg.task, cache, cfg.augment, cfg.batch_size, cfg.num_workers,
                                          device, desc=name, tta=tta), task)
            frames.append(predict_draws(name, x[rows], y, ids, task.classes, draws, rc.probe, tta))
    for name, x in pixel.items():  # invariant to rotations and flips: the same rows serve the D4 table
        plain = predict_draws(name, x[rows], y, ids, task.classes, draws, rc.probe, False)
        frames += [plain] + ([plain.assign(tta=True)] if rc.tta else [])
    pred = pd.concat(frames, ignore_index=True)
    path = Path(cfg.out_dir) / PREDICTIONS
    with atomic_path(path) as tmp:
        pred.to_parquet(tmp, index=False)
    against = [n for n in ("photometric", random_name) if n and (n in pixel or n in cfg.backbones)]
    results = summarise(pred, task.classes, against, [*pixel, *([random_name] if random_name else [])],
                        cfg.bootstrap)
    kinds = {**{b: BASELINE_KINDS[b] for b in pixel}, **({random_name: "random init"} if random_name else {})}
    md = markdown(results, rc.budgets, kinds, len(rows), rc.draws, cfg.bootstrap)
    doc = {"design": {"draws": rc.draws, "budgets": list(rc.budgets), "n_galaxies": int(len(rows)),
                      "class_counts": np.bincount(y, minlength=len(task.classes)).tolist(),
                      "n_test_per_draw": int(len(draws[0].test)), "predictions": PREDICTIONS},
           **{("tta" if tta else "plain"): {"scores": r, "differences": d} for tta, (r, d) in results.items()}}
    return md, doc


def benchmark(cfg: BenchmarkConfig) -> dict[str, Path]:
    """The whole benchmark: check the config against the data, run the designs, write the reports."""
    cfg.backbones = {name: resolve_backbone(name, path, cfg.out_dir) for name, path in cfg.backbones.items()}
    task = load_task(cfg, read_meta(cfg.task))
    if cfg.repeated.draws:
        check_draw_budgets(cfg.repeated.budgets, task.y[np.concatenate([task.train_rows, task.test_rows])],
                           where=f" of {cfg.task}")
    if cfg.protocols:
        check_budgets(cfg.budgets, len(task.train_rows), len(task.classes), where=f" of {cfg.task}")
    random_name = add_random_init(cfg)
    backbones = {name: _backbone_info(path) for name, path in cfg.backbones.items()}
    pixel = pixel_features(cfg, task)
    for name, x in pixel.items():
        backbones[name] = {"architecture": None, "mode": "baseline", "hash": _hash(x.tolist()),
                           "description": BASELINE_KINDS[name]}
    prov = provenance(cfg, task, backbones)
    notes = [f"Task `{cfg.label_column}` ({', '.join(task.classes)}) from `{cfg.task}`: {len(task.train_rows)} train / "
             f"{len(task.test_rows)} test galaxies.",
             "Backbones: " + ", ".join(f"{n} ({b['architecture']}, {b['mode']})" for n, b in backbones.items()
                                       if n not in pixel) + ".",
             "Baselines: " + (", ".join(f"{n} ({BASELINE_KINDS[n]})" for n in pixel) or "none from the pixels")
             + (f"; {random_name} is the random init" if random_name else "; no random init") + "."]
    headline, extra = run_repeated(cfg, task, pixel, random_name) if cfg.repeated.draws else ([], {})
    if not cfg.protocols:
        out = Path(cfg.out_dir)
        paths = {"json": out / "results.json", "md": out / "results.md", "predictions": out / PREDICTIONS}
        atomic_write_text(paths["json"], json.dumps({**prov, "repeated": extra}, indent=1, sort_keys=True, default=str))
        atomic_write_text(paths["md"], "\n".join([f"# {cfg.title}", "", *notes, "", *headline]))
        return paths
    if cfg.bootstrap.reference not in cfg.backbones and random_name:
        cfg.bootstrap.reference = random_name
    cells = run_grid(cfg, task, backbones, pixel)
    notes.append(f"Fixed split: seeds {list(cfg.seeds)}; protocols {', '.join(cfg.protocols)}; modes (backbones "
                 "named MODE_seedK are the pretraining seeds of MODE): "
                 + "; ".join(f"{g} = {', '.join(m)}" for g, m in groups(backbones).items()) + ".")
    paths = write_reports(cfg.out_dir, cells, cfg.budgets, task.y[task.test_rows], cfg.bootstrap, prov, cfg.title,
                          notes, headline=headline, extra={"repeated": extra} if extra else {})
    if extra:
        paths["predictions"] = Path(cfg.out_dir) / PREDICTIONS
    return paths


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
    if "png" in paths:
        print(f"label curve: {paths['png']}")
    return 0
