"""Cluster defaults (issue 16): what a multi-node GPU launch gets without any override."""
import importlib
from pathlib import Path

import pytest

from hybridssl.config import load_config
from hybridssl.train.config import PretrainConfig
from hybridssl.train.resume import ExactResume

run = importlib.import_module("hybridssl.train.run")  # the package re-exports a run() function
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"


@pytest.fixture
def built(monkeypatch):
    """``built(cfg, geometry)``: build_trainer's Trainer kwargs and DDPStrategy kwargs, nothing launched."""
    def build(cfg, geometry):
        strategy = {}
        monkeypatch.setattr(run, "launch_geometry", lambda t: geometry)
        monkeypatch.setattr(run, "DDPStrategy", lambda **kw: strategy.update(kw) or "ddp")
        monkeypatch.setattr(run.pl, "Trainer", lambda **kw: kw)
        return run.build_trainer(cfg, ExactResume()), strategy
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


def test_slurm_launches_requeue_themselves(built, tmp_path):
    cfg = load_config(PretrainConfig, CONFIGS / "base.yaml", [f"out_dir={tmp_path}", "data.labelled=[shards/l]", "data.unlabelled=[shards/u]"])
    kwargs, _ = built(cfg, ("gpu", 4, 2, True))
    slurm = [p for p in kwargs["plugins"] if type(p).__name__ == "SLURMEnvironment"]
    assert len(slurm) == 1 and slurm[0].auto_requeue
    sbatch = (CONFIGS.parent / "launch" / "slurm.sbatch").read_text()
    assert "#SBATCH --signal=SIGUSR1@120" in sbatch
