"""Performance suite (issue 7): every stage against its baseline, side by side in one process.

    python -m benchmarks.throughput [--quick] [--device cpu|cuda] [--arch A] [--image-size PX]
                                    [--precision bf16|32] [--only loss,step,aug,loader]

Each pair runs interleaved (A, B, B, A, ...) in this process and the median of the repeats is
kept, so machine noise hits both sides alike and the ratio stays meaningful on a shared box.
Writes ``benchmarks/results/throughput-<device>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytorch_lightning as pl
import timm
import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import v2

from hybridssl.cli import progress
from hybridssl.storage.atomic import atomic_write_text
from hybridssl.augment.rgb import TwoViews
from hybridssl.model.losses import dirichlet_multinomial_nll
from hybridssl.model.hybrid import backbone_args
from hybridssl.schema import Schema, load_schema
from hybridssl.train.module import PretrainModule

RESULTS = Path(__file__).resolve().parent / "results"
# ratio -> goal from issue 7 (aug_ratio and mfu have goals only on a GPU)
GOALS = {"step_ratio": 0.95, "loss_ratio": 10.0, "loader_ratio": 1.0, "loader_vs_train": 5.0}
GPU_GOALS = {"aug_ratio": 10.0, "mfu": 0.35}


# ---------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each fn; calls alternate order every repeat (ABBA...)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[n]()
            sync(device)
            times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(t) for n, t in times.items()}


# ---------------------------------------------------------------- loss
def realistic_counts(schema: Schema, batch: int, seed: int = 0) -> torch.Tensor:
    """Votes like GZ-Evo's: each galaxy in one campaign, children asked of their parent's voters."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((batch, schema.n_answers), dtype=np.float32)
    for row, campaign in enumerate(rng.choice(schema.campaigns, batch)):
        for q in schema.questions:  # parents come before children
            if q.campaign != campaign:
                continue
            n = int(rng.integers(5, 41)) if q.parent is None else int(counts[row, schema.column_index[q.parent]])
            if n:
                counts[row, q.start:q.end] = rng.multinomial(n, rng.dirichlet(np.ones(len(q.answers))))
    return torch.from_numpy(counts)


def looped_dirichlet_nll(concentrations: torch.Tensor, counts: torch.Tensor, schema: Schema) -> torch.Tensor:
    """The baseline: the same closed form, one Python iteration per question. (B, n_questions)."""
    out = []
    for q in schema.questions:
        a, n = concentrations[:, q.start:q.end], counts[:, q.start:q.end]
        big_n, big_a = n.sum(1), a.sum(1)
        log_p = (torch.lgamma(big_n + 1) + torch.lgamma(big_a) - torch.lgamma(big_n + big_a)
                 + (torch.lgamma(n + a) - torch.lgamma(a) - torch.lgamma(n + 1)).sum(1))
        out.append(torch.where(big_n > 0, -log_p, torch.zeros_like(log_p)))
    return torch.stack(out, 1)


def bench_loss(device: torch.device, repeats: int, batch: int = 256, schema: str = "gz_evo_v0.1") -> dict:
    """loss_ratio: vectorised vs per-question loop, forward + backward, plus their agreement."""
    sch = load_schema(schema)
    counts = realistic_counts(sch, batch).to(device)
    g = torch.Generator().manual_seed(0)
    conc = (1 + 100 * torch.rand(batch, sch.n_answers, generator=g)).to(device).requires_grad_(True)

    def run(fn):
        conc.grad = None
        fn(conc, counts).sum().backward()
        return conc.grad

    vec = lambda c, n: dirichlet_multinomial_nll(c, n, sch, validate=False)  # noqa: E731 (trainer's path)
    loop = lambda c, n: looped_dirichlet_nll(c, n, sch)  # noqa: E731
    v_val, l_val = vec(conc, counts).detach(), loop(conc, counts).detach()
    v_grad, l_grad = run(vec).clone(), run(loop).clone()
    t = interleaved({"vectorised": lambda: run(vec), "loop": lambda: run(loop)}, repeats, device)
    return {"batch": batch, "n_answers": sch.n_answers, "n_questions": sch.n_questions,
            "vectorised_ms": 1e3 * t["vectorised"], "loop_ms": 1e3 * t["loop"],
            "loss_ratio": t["loop"] / t["vectorised"],
            "max_abs_diff_loss": float((v_val - l_val).abs().max()),
            "max_abs_diff_grad": float((v_grad - l_grad).abs().max()),
            "agree": bool(torch.allclose(v_val, l_val, rtol=1e-4, atol=1e-3)
                          and torch.allclose(v_grad, l_grad, rtol=1e-4, atol=1e-5))}


# ---------------------------------------------------------------- peak
def peak_matmul_flops(device: torch.device, precision: str, n: int, repeats: int) -> float:
    """FLOP/s of an n x n matmul in the training dtype: the device's practical ceiling."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = interleaved({"mm": lambda: torch.mm(a, b)}, repeats, device)["mm"]
    return 2 * n ** 3 / t


# ---------------------------------------------------------------- training step
def pretrain_config(config: str, arch: str | None, image_size: int | None, batch: int | None,
                    precision: str | None):
    """The pretraining config being measured, with the suite's size overrides."""
    from hybridssl.config import load_config, resolve_config_path
    from hybridssl.train.config import PretrainConfig

    over = ["mode=hybrid", "data.labelled=[unused]", "data.unlabelled=[unused]", "model.in_chans=3"]  # RGB batches
    if arch:
        over.append(f"model.backbone={arch}")
    if image_size:
        blur = max(3, image_size // 10 | 1)  # ~10% of the crop and odd, as BYOL's 23 px at 224
        over += [f"augment.crop_size={image_size}", f"augment.resize_size={image_size}", f"augment.blur_kernel={blur}"]
    if batch:
        over.append(f"data.batch_size={batch}")
    if precision:
        over.append(f"trainer.precision={'bf16-mixed' if precision == 'bf16' else '32-true'}")
    return load_config(PretrainConfig, resolve_config_path(config, "pretrain"), over)


def synthetic_batch(cfg, schema: Schema, seed: int = 0) -> dict:
    """A stream-shaped batch (docs/DESIGN.md): uint8 images, labelled rows first with GZ-like votes."""
    b, size = cfg.data.batch_size, cfg.augment.crop_size
    n_lab = round(b * cfg.data.labelled_fraction)
    g = torch.Generator().manual_seed(seed)
    votes = torch.zeros(b, schema.n_answers)
    votes[:n_lab] = realistic_counts(schema, n_lab, seed)
    return {"image": torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g),
            "votes": votes, "has_votes": torch.arange(b) < n_lab, "id_str": [f"x{i}" for i in range(b)],
            "campaign": [None] * b, "n_skipped": torch.zeros((), dtype=torch.int64)}


class LightlyBYOL(pl.LightningModule):
    """The baseline: lightly's BYOL example (per-view forward, momentum update at step start) with
    the same timm backbone, heads, augmentations, memory layout and optimizer as the hybrid run."""

    def __init__(self, cfg):
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.backbone = timm.create_model(m.backbone, pretrained=False, **backbone_args(m))
        self.projection_head = BYOLProjectionHead(self.backbone.num_features, m.projection_hidden_dim, m.projection_dim)
        self.prediction_head = BYOLPredictionHead(m.projection_dim, m.prediction_hidden_dim, m.projection_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()
        self.augment = TwoViews(cfg.augment)
        if m.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x):
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()

    def training_step(self, batch, batch_idx):
        m = cosine_schedule(self.global_step, self.cfg.trainer.max_steps, self.cfg.optim.target_momentum_start, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)
        layout = torch.channels_last if self.cfg.model.channels_last else torch.contiguous_format
        x0, x1 = (v.contiguous(memory_format=layout) for v in self.augment(batch["image"]))
        p0, z0 = self.forward(x0), self.forward_momentum(x0)
        p1, z1 = self.forward(x1), self.forward_momentum(x1)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))

    def configure_optimizers(self):
        from hybridssl.train.optim import build_optimizer, build_scheduler, scaled_lr
        opt = build_optimizer(self, self.cfg.optim, scaled_lr(self.cfg.optim.base_lr, self.cfg.data.batch_size))
        sched = build_scheduler(opt, self.cfg.optim, self.cfg.trainer.max_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _Repeat:
    """The same in-memory batch ``n`` times (re-iterable: Lightning may iterate it again)."""

    def __init__(self, batch: dict, n: int):
        self.batch, self.n = batch, n

    def __iter__(self):
        return (self.batch for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


class _StepTimer(pl.Callback):
    """Wall time of each whole Lightning step: training_step, backward, optimizer, target update."""

    def __init__(self, device: torch.device):
        self.device, self.times, self._t0 = device, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sync(self.device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync(self.device)
        self.times.append(time.perf_counter() - self._t0)


class SteppedTrainer:
    """A Lightning Trainer on one module that can be advanced a few steps at a time, so two
    modules' steps can be interleaved; global_step (and thus the momentum schedule) carries on."""

    def __init__(self, module: pl.LightningModule, cfg, batch: dict, device: torch.device):
        self.module, self.batch, self.timer = module, batch, _StepTimer(device)
        self.trainer = pl.Trainer(
            max_steps=0, max_epochs=-1, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
            precision=cfg.trainer.precision, gradient_clip_val=cfg.trainer.gradient_clip_val or None,
            log_every_n_steps=cfg.trainer.log_every_n_steps, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            callbacks=[self.timer])

    def run(self, steps: int) -> list[float]:
        """Seconds of each of the next ``steps`` steps (fit builds a fresh optimizer each call)."""
        self.trainer.fit_loop.epoch_loop.max_steps = self.trainer.global_step + steps
        first = len(self.timer.times)
        self.trainer.fit(self.module, train_dataloaders=_Repeat(self.batch, steps))
        return self.timer.times[first:]


def interleave_steps(sides: dict[str, SteppedTrainer], rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per step of each side, advancing them in turns (ABBA...) after one warm-up step."""
    for side in sides.values():
        if side.trainer.global_step == 0:
            side.run(1)
    times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(rounds):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            times[name] += sides[name].run(steps)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_step(cfg, device: torch.device, rounds: int, steps: int) -> dict:
    """step_ratio: the hybrid step vs lightly's BYOL step, plus the FLOPs of one hybrid step."""
    schema = load_schema(cfg.schema)
    batch = synthetic_batch(cfg, schema)
    pl.seed_everything(0, verbose=False)
    sides = {"hybrid": SteppedTrainer(PretrainModule(cfg, schema), cfg, batch, device),
             "byol": SteppedTrainer(LightlyBYOL(cfg), cfg, batch, device)}
    with FlopCounterMode(display=False) as flops:  # counted on the (untimed) warm-up step
        sides["hybrid"].run(1)
    med = interleave_steps(sides, rounds, steps)
    b = cfg.data.batch_size
    return {"arch": cfg.model.backbone, "image_size": cfg.augment.crop_size, "batch": b,
            "precision": cfg.trainer.precision, "channels_last": cfg.model.channels_last,
            "hybrid_samples_per_s": b / med["hybrid"], "byol_samples_per_s": b / med["byol"],
            "step_ratio": med["byol"] / med["hybrid"],
            "hybrid_step_flops": float(flops.get_total_flops()),
            "hybrid_flop_per_s": flops.get_total_flops() / med["hybrid"]}


# (trainer.precision, model.channels_last) of the hybrid step compared by bench_speedups
SPEEDUP_VARIANTS = {"fp32": ("32-true", False), "fp32_channels_last": ("32-true", True),
                    "bf16_channels_last": ("bf16-mixed", True), "bf16": ("bf16-mixed", False)}


def bench_speedups(cfg, device: torch.device, rounds: int, steps: int) -> dict:
    """Hybrid samples/s with each precision/layout, interleaved: what bf16 and channels_last give."""
    schema = load_schema(cfg.schema)
    sides = {}
    for name, (precision, channels_last) in SPEEDUP_VARIANTS.items():
        c = copy.deepcopy(cfg)
        c.trainer.precision, c.model.channels_last = precision, channels_last
        pl.seed_everything(0, verbose=False)
        sides[name] = SteppedTrainer(PretrainModule(c, schema), c, synthetic_batch(c, schema), device)
    med = interleave_steps(sides, rounds, steps)
    out = {f"{k}_samples_per_s": cfg.data.batch_size / v for k, v in med.items()}
    out.update({f"{k}_vs_fp32": med["fp32"] / v for k, v in med.items() if k != "fp32"})
    return {"arch": cfg.model.backbone, "image_size": cfg.augment.crop_size, "batch": cfg.data.batch_size, **out}


# ---------------------------------------------------------------- augmentations
def tv2_view(cfg, view: int) -> v2.Compose:
    """torchvision v2 per-sample equivalent of ``TwoViews``' view ``view``: same ops, order, ranges."""
    bilinear = v2.InterpolationMode.BILINEAR  # Kornia's default resampling
    return v2.Compose([
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomApply([v2.RandomRotation(list(cfg.rotation_degrees), interpolation=bilinear)], p=cfg.rotation_p),
        v2.RandomHorizontalFlip(cfg.hflip_p),
        v2.RandomVerticalFlip(cfg.vflip_p),
        v2.RandomResizedCrop(cfg.crop_size, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio),
                             interpolation=bilinear, antialias=False),
        v2.RandomApply([v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)], p=cfg.jitter_p),
        v2.RandomGrayscale(cfg.greyscale_p),
        v2.RandomApply([v2.GaussianNoise(sigma=cfg.noise_std)], p=cfg.noise_p),
        v2.RandomApply([v2.GaussianBlur(cfg.blur_kernel, tuple(cfg.blur_sigma))], p=cfg.blur_p[view]),
        v2.RandomSolarize(0.5, p=cfg.solarize_p[view]),
        v2.Normalize(list(cfg.mean), list(cfg.std)),
    ])


class TV2TwoViews(torch.utils.data.Dataset):
    """The baseline: two views of one uint8 image at a time, made in DataLoader workers."""

    def __init__(self, images: torch.Tensor, cfg):
        self.images, self.views = images, [tv2_view(cfg, v) for v in (0, 1)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.views[0](self.images[i]), self.views[1](self.images[i])


def bench_aug(cfg, device: torch.device, repeats: int, workers: int) -> dict:
    """aug_ratio: Kornia ``TwoViews`` on batches on the device vs torchvision v2 per sample on CPU workers."""
    b = cfg.data.batch_size
    n_batches = max(1, workers)  # one batch per worker per pass
    images = torch.cat([synthetic_batch(cfg, load_schema(cfg.schema), seed=s)["image"] for s in range(n_batches)])
    kornia = TwoViews(copy.deepcopy(cfg.augment)).to(device)
    on_device = images.to(device).split(b)
    loader = torch.utils.data.DataLoader(TV2TwoViews(images, cfg.augment), batch_size=b, num_workers=workers,
                                         persistent_workers=workers > 0)
    v1, v2_ = next(iter(loader))
    k1, k2 = kornia(on_device[0])
    assert v1.shape == k1.shape and v2_.shape == k2.shape, "the two pipelines must make the same views"

    def run_kornia():
        for x in on_device:
            kornia(x)

    def run_tv2():
        for _ in loader:
            pass

    t = interleaved({"kornia": run_kornia, "tv2": run_tv2}, repeats, device)
    n = len(images)
    return {"image_size": cfg.augment.crop_size, "batch": b, "workers": workers,
            "kornia_samples_per_s": n / t["kornia"], "tv2_samples_per_s": n / t["tv2"],
            "aug_ratio": t["tv2"] / t["kornia"]}


# ---------------------------------------------------------------- loader
def bench_loader(cfg, n: int, workers: int) -> dict:
    """loader_ratio from ``benchmarks/loader_throughput.py`` (shard vs per-file JPEG, same images)."""
    from benchmarks.loader_throughput import measure
    threads = torch.get_num_threads()
    try:
        return measure(n=n, image_size=cfg.augment.crop_size, batch_size=cfg.data.batch_size,
                       workers=workers, decode=cfg.data.decode)
    finally:
        torch.set_num_threads(threads)  # measure() pins the main process to one thread


# ---------------------------------------------------------------- suite
PARTS = ("loss", "step", "aug", "loader", "speedups")


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).lower().replace(" ", "-")
    return f"cpu-{os.cpu_count()}core"


def allocator() -> str:
    """tcmalloc when preloaded (LD_PRELOAD), else the C library's malloc."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = os.environ.get("LD_PRELOAD", "")
    return "tcmalloc" if "tcmalloc" in maps else "glibc"


def run_suite(a: argparse.Namespace) -> dict:
    """Every selected measurement; returns the JSON record (ratios, goals, raw numbers, machine state)."""
    device = torch.device(a.device)
    cfg = pretrain_config(a.config, a.arch, a.image_size, a.batch, a.precision)
    reps = 5 if a.quick else 20
    res: dict = {}
    parts = progress(a.only, desc="throughput suite")
    for part in parts:
        parts.set_postfix_str(part)
        if part == "loss":
            res["loss"] = bench_loss(device, reps)
        elif part == "step":
            res["step"] = bench_step(cfg, device, rounds=2 if a.quick else 4, steps=1 if a.quick else 3)
            dtype_peak = peak_matmul_flops(device, "bf16" if "bf16" in cfg.trainer.precision else "32",
                                           n=1024 if a.quick else 4096, repeats=3 if a.quick else 10)
            res["peak_matmul_flop_per_s"] = dtype_peak
        elif part == "aug":
            res["aug"] = bench_aug(cfg, device, reps, a.workers)
        elif part == "loader":
            res["loader"] = bench_loader(cfg, 1024 if a.quick else 5000, a.workers)
        elif part == "speedups":
            res["speedups"] = bench_speedups(cfg, device, rounds=2, steps=1 if a.quick else 3)
    ratios = {"step_ratio": res.get("step", {}).get("step_ratio"),
              "loss_ratio": res.get("loss", {}).get("loss_ratio"),
              "loader_ratio": res.get("loader", {}).get("loader_ratio"),
              "aug_ratio": res.get("aug", {}).get("aug_ratio")}
    if "step" in res:
        ratios["mfu"] = res["step"]["hybrid_flop_per_s"] / res["peak_matmul_flop_per_s"]
    if "step" in res and "loader" in res:
        ratios["loader_vs_train"] = res["loader"]["shard_samples_per_s"] / res["step"]["hybrid_samples_per_s"]
    goals = {**GOALS, **(GPU_GOALS if device.type == "cuda" else {})}
    return {"device": device_label(device), "quick": a.quick, "config": a.config,
            "ratios": {k: v for k, v in ratios.items() if v is not None},
            "goals": {k: {"goal": g, "value": ratios.get(k), "met": ratios.get(k) is not None and ratios[k] >= g}
                      for k, g in goals.items() if ratios.get(k) is not None},
            "results": res, "machine": machine_state()}


def machine_state() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "allocator": allocator(),
            "loadavg": os.getloadavg(), "python": platform.python_version(), "torch": torch.__version__,
            "timm": timm.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def table(record: dict) -> str:
    rows = [f"{'metric':<16}{'value':>10}{'goal':>8}  met", "-" * 40]
    for k, v in record["ratios"].items():
        g = record["goals"].get(k)
        rows.append(f"{k:<16}{v:>10.3f}{g['goal'] if g else '-':>8}  {('yes' if g['met'] else 'NO') if g else ''}")
    res = record["results"]
    if "step" in res:
        s = res["step"]
        rows.append(f"hybrid {s['arch']} {s['image_size']}px b{s['batch']} {s['precision']}: "
                    f"{s['hybrid_samples_per_s']:.1f} samples/s (lightly BYOL {s['byol_samples_per_s']:.1f})")
    if "speedups" in res:
        rows += [f"{k:<34}{v:>8.2f}" for k, v in res["speedups"].items() if k.endswith(("_per_s", "_vs_fp32"))]
    m = record["machine"]
    rows.append(f"{record['device']}, {m['torch_threads']} threads, {m['allocator']}, load {m['loadavg']}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small repeats and data: <= 2 minutes on 2 CPU cores")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--config", default="demo", help="pretrain config measured (name or YAML; default demo)")
    p.add_argument("--arch", help="timm backbone (default: the config's)")
    p.add_argument("--image-size", type=int, help="crop size in px (default: the config's)")
    p.add_argument("--batch", type=int, help="batch size (default: the config's)")
    p.add_argument("--precision", choices=("bf16", "32"), help="training precision (default: the config's)")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="CPU workers of the loader and "
                   "torchvision baselines (default: CPU count)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, i.e. OMP_NUM_THREADS "
                   "or all cores; use 1 on a machine shared with other jobs)")
    p.add_argument("--only", type=lambda s: s.split(","), help=f"comma list of parts from {PARTS} "
                   "(default: all; speedups only in full runs)")
    p.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/throughput-<device>.json)")
    a = p.parse_args(argv)
    a.only = a.only or [x for x in PARTS if not (a.quick and x == "speedups")]
    unknown = set(a.only) - set(PARTS)
    if unknown:
        p.error(f"--only: unknown parts {sorted(unknown)}; choose from {PARTS}")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # per-fit banners would bury the table
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning.*")
    if a.threads:
        torch.set_num_threads(a.threads)
    t0, load0 = time.perf_counter(), os.getloadavg()
    record = run_suite(a)
    command = " ".join(["python -m benchmarks.throughput", *(sys.argv[1:] if argv is None else argv)])
    record.update(elapsed_s=time.perf_counter() - t0, loadavg_start=load0, command=command,
                  created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_record(record, a.out, table(record))
    return 0


def write_record(record: dict, out: Path | None, text: str) -> None:
    """The JSON to ``out`` (default ``results/throughput-<device>.json``), then the table."""
    out = out or RESULTS / f"throughput-{record['device']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    print(text)
    print(f"wrote {out} ({record['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    from hybridssl.cli import run_command
    raise SystemExit(run_command("python -m benchmarks.throughput", main))
