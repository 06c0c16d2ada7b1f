"""``pretrain(cfg)``: build the Lightning Trainer for this launch, resume if asked, train, checkpoint.

Launch geometry comes from the environment when ``trainer.devices``/``num_nodes`` are ``auto``:
``torchrun`` (``WORLD_SIZE``/``LOCAL_WORLD_SIZE``; also inside a SLURM job, where Lightning picks its
torchelastic environment first), SLURM ``srun`` without torchrun (``SLURM_NTASKS``/``SLURM_NNODES``,
Lightning's SLURMEnvironment), else one process per GPU or a single CPU process. In a SLURM job the
requeue signal (the sbatch template's ``--signal=SIGUSR1@300``) is handled by
:class:`~hybridssl.train.requeue.RequeueOnSignal`, never inside the signal handler. ``out_dir`` must
be on a filesystem every rank sees: rank 0 writes the checkpoints and every rank reads the one it
resumes from.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy

from hybridssl.storage.atomic import atomic_write_text
from hybridssl.config import ConfigError, to_yaml
from hybridssl.data.memory import build_loader
from hybridssl.storage.locks import dir_lock
from hybridssl.data.distributed import derive_seed, rank_and_world_size
from hybridssl.schema import load_schema
from hybridssl.train.checkpoint import (CHECKPOINT_DIR, CHECKPOINT_KEY, CheckpointError, checkpoint_name,
                                        latest_checkpoint, load_checkpoint, step_checkpoints, tidy_checkpoints)
from hybridssl.train.checkpoint_io import AtomicCheckpointIO
from hybridssl.train.config import PretrainConfig, TrainerConfig, resolve_images
from hybridssl.train.guards import FiniteGuard
from hybridssl.train.launches import check_resume_config, check_weight_shapes, record_launch
from hybridssl.train.module import PretrainModule
from hybridssl.train.requeue import RequeueOnSignal, hpc_checkpoints
from hybridssl.train.progress import progress_callbacks, shows_progress
from hybridssl.train.resume import ExactResume
from hybridssl.train.throughput import StepThroughput

log = logging.getLogger(__name__)

# Known, harmless Lightning warnings that would bury the progress lines: a deprecation inside
# Lightning itself, and the IterableDataset-with-__len__ notice (TrainStream's length is per
# rank and accounts for its workers).
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


def slurm_launched() -> bool:
    """True when ``srun`` started these processes itself (not torchrun inside a SLURM job)."""
    return SLURMEnvironment.detect() and not TorchElasticEnvironment.detect()


def launch_geometry(t: TrainerConfig) -> tuple[str, int, int, bool]:
    """(accelerator, devices per node, num_nodes, launched by srun) for this launch."""
    accelerator = {"auto": "gpu" if torch.cuda.is_available() else "cpu", "cuda": "gpu"}.get(t.accelerator,
                                                                                          t.accelerator)
    env, slurm = os.environ, slurm_launched()
    if "LOCAL_WORLD_SIZE" in env and "WORLD_SIZE" in env:  # torchrun
        local = int(env["LOCAL_WORLD_SIZE"])
        nodes = int(env["WORLD_SIZE"]) // local
    elif slurm:
        nodes = int(env["SLURM_NNODES"])
        local = int(env["SLURM_NTASKS"]) // nodes
    else:
        nodes, local = 1, (max(torch.cuda.device_count(), 1) if accelerator == "gpu" else 1)
    devices = local if str(t.devices) == "auto" else int(t.devices)
    num_nodes = nodes if str(t.num_nodes) == "auto" else int(t.num_nodes)
    return accelerator, devices, num_nodes, slurm


def build_trainer(cfg: PretrainConfig, exact_resume: ExactResume, requeue: RequeueOnSignal) -> pl.Trainer:
    """``requeue`` is added in a SLURM job, whichever launcher; the SLURM environment plugin only when
    srun launched the processes (under torchrun, Lightning's own choice is torchelastic), and with
    Lightning's in-handler requeue off."""
    t, out = cfg.trainer, Path(cfg.out_dir)
    accelerator, devices, num_nodes, slurm = launch_geometry(t)
    in_slurm_job = "SLURM_JOB_ID" in os.environ  # whichever launcher: no progress bar, requeue on signal
    if accelerator == "gpu":
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for the fp32 matmuls
    strategy = "auto"
    if devices * num_nodes > 1:
        # gloo on CPU; a dead peer makes the others fail after ddp_timeout_s instead of hanging
        strategy = DDPStrategy(process_group_backend="nccl" if accelerator == "gpu" else "gloo",
                               timeout=timedelta(seconds=t.ddp_timeout_s))
    checkpoints = ModelCheckpoint(dirpath=out / CHECKPOINT_DIR, filename="step{step:08d}",
                                  auto_insert_metric_name=False, every_n_train_steps=t.checkpoint_every_n_steps,
                                  monitor="step", mode="max", save_top_k=t.keep_checkpoints,
                                  save_on_train_epoch_end=False)
    return pl.Trainer(
        max_steps=t.max_steps, max_epochs=-1, accelerator=accelerator, devices=devices, num_nodes=num_nodes,
        strategy=strategy, precision="32-true" if str(t.precision) == "32" else str(t.precision),
        accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=t.gradient_clip_val or None,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=shows_progress(t, in_slurm_job),
        benchmark=accelerator == "gpu",  # cudnn.benchmark: fixed shapes, the fastest kernels
        callbacks=[exact_resume, FiniteGuard(), checkpoints, LearningRateMonitor(logging_interval="step"),
                   StepThroughput(), *progress_callbacks(t, in_slurm_job), *([requeue] if in_slurm_job else [])],
        logger=[CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tensorboard")],
        plugins=[AtomicCheckpointIO(), *([SLURMEnvironment(auto_requeue=False)] if slurm else [])],
        default_root_dir=out, use_distributed_sampler=False,
        num_sanity_val_steps=0, enable_model_summary=False)


def resume_checkpoint(cfg: PretrainConfig) -> Optional[Path]:
    """The checkpoint this run continues from, checked against the config; None = fresh start."""
    out = Path(cfg.out_dir)
    if cfg.resume == "never":
        if step_checkpoints(out):
            raise ConfigError(f"out_dir {out} already holds checkpoints; pass resume=auto to continue "
                              f"that run, or choose a new out_dir")
        return None
    path = newest_with_requeue(out, latest_checkpoint(out)) if cfg.resume == "auto" else Path(cfg.resume)
    if path is None:
        return None
    ours = load_checkpoint(path, mmap=True).get(CHECKPOINT_KEY)
    if ours is None:
        raise CheckpointError(f"checkpoint {path} was not written by hybridssl pretrain")
    was = ours["config"]
    check_resume_config(path, was, cfg)
    if was["trainer"]["max_steps"] != cfg.trainer.max_steps:
        log.warning("resuming %s (planned for %d steps) to trainer.max_steps=%d: the restored lr schedule "
                    "keeps its plan, the target momentum follows the new one", path,
                    was["trainer"]["max_steps"], cfg.trainer.max_steps)
    return path


def newest_with_requeue(out: Path, step_checkpoint: Optional[Path]) -> Optional[Path]:
    """``step_checkpoint``, or Lightning's SLURM requeue checkpoint (``out/hpc_ckpt_N.ckpt``, highest
    N, written atomically on the requeue signal) when that one has trained further."""
    numbered = hpc_checkpoints(out)
    if not numbered:
        return step_checkpoint
    hpc = numbered[max(numbered)]
    if step_checkpoint is None:
        return hpc
    step_of = lambda p: int(load_checkpoint(p, mmap=True).get("global_step", 0))  # noqa: E731
    return hpc if step_of(hpc) > step_of(step_checkpoint) else step_checkpoint


ONLINE_PARTS = ("backbone", "projection", "prediction", "head")


def sync_online_batchnorm(model: torch.nn.Module) -> list[str]:
    """SyncBatchNorm in the online network's parts that have BatchNorm; the momentum target keeps
    its own (it is never trained, and syncing it adds collectives to every forward). Returns the
    converted parts."""
    converted = []
    for name in ONLINE_PARTS:
        part = getattr(model, name, None)
        if part is not None and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in part.modules()):
            setattr(model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(part))
            converted.append(name)
    return converted


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of every trainable parameter: equal on all DDP ranks after any step."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def save_random_init(cfg: PretrainConfig, module: PretrainModule, rank: int) -> Path:
    """``scratch``: the untrained model as a step-0 checkpoint, for export and the benchmark."""
    path = Path(cfg.out_dir) / CHECKPOINT_DIR / checkpoint_name(0)
    ckpt = {"state_dict": module.state_dict(), "global_step": 0, "epoch": 0,
            "pytorch-lightning_version": pl.__version__}
    module.on_save_checkpoint(ckpt)
    if rank == 0:
        AtomicCheckpointIO().save_checkpoint(ckpt, path)
    return path


def pretrain(cfg: PretrainConfig) -> Optional[Path]:
    """Train per ``cfg``; returns the final checkpoint (None when interrupted). Global rank 0
    holds out_dir's lock for the whole run: every rank shares out_dir, and torchrun/srun end
    the other ranks when rank 0 refuses."""
    rank, _ = rank_and_world_size()
    with dir_lock(cfg.out_dir, "pretrain", enabled=rank == 0):
        return _pretrain_locked(cfg, rank)


def _pretrain_locked(cfg: PretrainConfig, rank: int) -> Optional[Path]:
    schema = load_schema(cfg.schema)
    bands = resolve_images(cfg, schema)  # model.in_chans from the data, before it is compared or saved
    resume_from = resume_checkpoint(cfg)
    out = Path(cfg.out_dir)
    if rank == 0:
        tidy_checkpoints(out, cfg.trainer.keep_checkpoints, resume_from)
        record_launch(out, cfg)
        atomic_write_text(out / "config.yaml", to_yaml(cfg))
        if resume_from is not None:
            print(f"resuming from {resume_from}", flush=True)
    pl.seed_everything(cfg.seed, verbose=False)  # the same initial weights on every rank
    if cfg.mode == "scratch":
        if resume_from is not None:
            return resume_from
        final = save_random_init(cfg, PretrainModule(cfg, schema, bands), rank)
        if rank == 0:
            print(f"random init (mode=scratch) checkpoint: {final}", flush=True)
        return final

    exact_resume, requeue = ExactResume(), RequeueOnSignal(out, cfg.trainer.requeue_check_every_n_steps)
    trainer = build_trainer(cfg, exact_resume, requeue)
    module = PretrainModule(cfg, schema, bands)
    if cfg.trainer.sync_batchnorm and trainer.world_size > 1 and trainer.strategy.root_device.type == "cuda":
        sync_online_batchnorm(module.model)  # SyncBatchNorm over gloo is unreliable: GPU only
    if resume_from is not None:
        check_weight_shapes(resume_from, load_checkpoint(resume_from, mmap=True)["state_dict"], module)
    torch.manual_seed(derive_seed(cfg.seed, trainer.global_rank, 1))  # each rank its own augmentations
    exact_resume.loader = build_loader(cfg.data, schema, trainer.strategy.root_device, rank=trainer.global_rank,
                                       world_size=trainer.world_size)
    trainer.fit(module, train_dataloaders=exact_resume.loader, ckpt_path=resume_from)
    if trainer.interrupted or requeue.saved is not None:
        return None
    final = out / CHECKPOINT_DIR / checkpoint_name(trainer.global_step)
    if trainer.global_step % cfg.trainer.checkpoint_every_n_steps:  # ModelCheckpoint saved the others
        trainer.save_checkpoint(final, weights_only=False)
    # one write for the whole line: ranks share a terminal or a log, and print() writes the newline apart
    sys.stdout.write(f"rank {trainer.global_rank}: finished at step {trainer.global_step}; "
                     f"weights digest {weights_digest(module.model)}\n")
    sys.stdout.flush()
    if trainer.is_global_zero:
        tidy_checkpoints(out, cfg.trainer.keep_checkpoints)
        print(f"final checkpoint: {final}", flush=True)
    return final
