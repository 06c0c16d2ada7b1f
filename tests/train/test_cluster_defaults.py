"""Cluster defaults (issue 16): what a multi-node GPU launch gets without any override."""
import os
import subprocess
from pathlib import Path

import pytest

from hybridssl.config import load_config
from hybridssl.train.config import PretrainConfig
from hybridssl.train.requeue import RequeueOnSignal
from hybridssl.train.resume import ExactResume

from hybridssl.train import run
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"


@pytest.fixture
def built(monkeypatch):
    """``built(cfg, geometry)``: build_trainer's Trainer kwargs and DDPStrategy kwargs, nothing launched."""
    def build(cfg, geometry):
        strategy = {}
        monkeypatch.setattr(run, "launch_geometry", lambda t: geometry)
        monkeypatch.setattr(run, "DDPStrategy", lambda **kw: strategy.update(kw) or "ddp")
        monkeypatch.setattr(run.pl, "Trainer", lambda **kw: kw)
        return run.build_trainer(cfg, ExactResume(), RequeueOnSignal(cfg.out_dir, 10)), strategy
    return build


@pytest.mark.parametrize("preset", ["base", "gz_evo"])
def test_shipped_presets_wait_half_an_hour_for_a_slow_rank(preset, built, tmp_path):
    cfg = load_config(PretrainConfig, CONFIGS / f"{preset}.yaml", [f"out_dir={tmp_path}", "data.labelled=[shards/l]", "data.unlabelled=[shards/u]"])
    assert cfg.trainer.ddp_timeout_s == 1800  # Lightning's own default; slow shared filesystems need it
    kwargs, strategy = built(cfg, ("gpu", 4, 2, False))
    assert kwargs["strategy"] == "ddp" and strategy["process_group_backend"] == "nccl"
    assert strategy["timeout"].total_seconds() == 1800


def test_gpu_runs_enable_tf32_and_cpu_runs_leave_matmul_precision_alone(built, monkeypatch, tmp_path):
    cfg = load_config(PretrainConfig, CONFIGS / "base.yaml", [f"out_dir={tmp_path}", "data.labelled=[shards/l]", "data.unlabelled=[shards/u]"])
    calls = []
    monkeypatch.setattr(run.torch, "set_float32_matmul_precision", calls.append)
    built(cfg, ("cpu", 1, 1, False))
    assert calls == []
    built(cfg, ("gpu", 1, 1, False))
    assert calls == ["high"]


SLURM = {"SLURM_NTASKS": "1", "SLURM_NNODES": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "hybridssl",
         "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}


def base_config(tmp_path):
    return load_config(PretrainConfig, CONFIGS / "base.yaml",
                       [f"out_dir={tmp_path}", "data.labelled=[shards/l]", "data.unlabelled=[shards/u]"])


def test_srun_launches_get_the_slurm_environment_without_lightnings_in_handler_requeue(built, monkeypatch,
                                                                                        tmp_path):
    for k, v in SLURM.items():
        monkeypatch.setenv(k, v)
    assert run.slurm_launched()
    kwargs, _ = built(base_config(tmp_path), run.launch_geometry(base_config(tmp_path).trainer))
    slurm = [p for p in kwargs["plugins"] if type(p).__name__ == "SLURMEnvironment"]
    assert len(slurm) == 1 and not slurm[0].auto_requeue
    assert any(isinstance(c, RequeueOnSignal) for c in kwargs["callbacks"])


def test_torchrun_inside_a_slurm_job_is_left_to_lightnings_torchelastic_choice(built, monkeypatch, tmp_path):
    """`srun --ntasks-per-node=1 torchrun --nproc-per-node=4`: SLURM says one task, torchrun four."""
    for k, v in {**SLURM, "TORCHELASTIC_RUN_ID": "x", "RANK": "3", "LOCAL_RANK": "3", "WORLD_SIZE": "8",
                 "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(k, v)
    assert not run.slurm_launched()
    cfg = base_config(tmp_path)
    accelerator, devices, nodes, slurm = run.launch_geometry(cfg.trainer)
    assert (devices, nodes, slurm) == (4, 2, False)
    kwargs, _ = built(cfg, (accelerator, devices, nodes, slurm))
    assert not [p for p in kwargs["plugins"] if type(p).__name__ == "SLURMEnvironment"]
    assert any(isinstance(c, RequeueOnSignal) for c in kwargs["callbacks"])  # the job can still requeue


def test_no_requeue_handler_outside_slurm(built, monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    kwargs, _ = built(base_config(tmp_path), ("cpu", 1, 1, False))
    assert not any(isinstance(c, RequeueOnSignal) for c in kwargs["callbacks"])


def test_sync_batchnorm_converts_the_online_network_only():
    import torch

    from hybridssl.model.hybrid import HybridModel
    from hybridssl.train.config import PretrainConfig as Cfg

    cfg = load_config(Cfg, CONFIGS / "demo.yaml", ["out_dir=x", "data.labelled=[l]", "data.unlabelled=[u]",
                                                   "model.backbone=test_resnet", "model.in_chans=3"])
    model = HybridModel(cfg.model, "hybrid", 10)
    assert run.sync_online_batchnorm(model) == ["backbone", "projection", "prediction"]  # the head has no BN
    kinds = lambda m: {type(x).__name__ for x in m.modules()}  # noqa: E731
    assert "SyncBatchNorm" in kinds(model.backbone) and "BatchNorm2d" not in kinds(model.backbone)
    assert "SyncBatchNorm" not in kinds(model.target_backbone) | kinds(model.target_projection)
    assert isinstance(model.head, torch.nn.Module) and "SyncBatchNorm" not in kinds(model.head)


def test_sbatch_template_srun_line(tmp_path):
    """The template run with a stand-in srun that records its arguments (no SLURM here)."""
    sbatch = CONFIGS.parent / "launch" / "slurm.sbatch"
    text = sbatch.read_text()
    assert "#SBATCH --signal=SIGUSR1@300" in text and "#SBATCH --requeue" in text
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_ARGS"\n')
    (fake / "srun").chmod(0o755)
    for cpus, workers in (("8", "7"), ("1", "1")):
        env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", SLURM_CPUS_PER_TASK=cpus,
                   SRUN_ARGS=str(tmp_path / "args"))
        subprocess.run(["bash", str(sbatch), "cfg.yaml", "out_dir=o"], env=env, check=True)
        args = (tmp_path / "args").read_text().split("\n")
        assert args[:2] == [f"--cpus-per-task={cpus}", "--kill-on-bad-exit=1"]
        assert f"data.num_workers={workers}" in args and args[-2] == "out_dir=o"
