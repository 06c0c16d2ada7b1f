"""Tiny pretraining runs: 32 px shards, a 0.4M-parameter timm test backbone, batch 8, CPU, fp32.

``data.deterministic`` with a seed and no workers makes the stream a pure function of the
config, so two runs of the same config give the same weights (what the resume tests compare).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from factories import write_shards
from hybridssl.config import config_dir, load_config
from hybridssl.train.config import PretrainConfig

DEMO = config_dir() / "pretrain" / "demo.yaml"


@pytest.fixture(scope="session")
def shard_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_shards")
    return (write_shards(root / "labelled", 64, labelled=True, n_shards=4, image_size=32, seed=1),
            write_shards(root / "unlabelled", 64, labelled=False, n_shards=4, image_size=32, seed=2))


def _overrides(shard_sets, out_dir, *extra) -> list[str]:
    labelled, unlabelled = shard_sets
    return [f"out_dir={out_dir}", f"data.labelled=[{labelled}]", f"data.unlabelled=[{unlabelled}]",
            "data.batch_size=8", "data.num_workers=0", "data.deterministic=true", "data.shuffle_buffer=16",
            "model.backbone=test_resnet", "model.projection_hidden_dim=32", "model.prediction_hidden_dim=32",
            "model.projection_dim=16", "augment.crop_size=32", "augment.resize_size=32", "augment.blur_kernel=3",
            "trainer.precision=32-true", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
            "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2", "trainer.keep_checkpoints=-1",
            "trainer.devices=auto", "trainer.num_nodes=auto", "optim.warmup_steps=1", *extra]


@pytest.fixture
def tiny_args(shard_sets):
    """``tiny_args(out_dir, *extra)``: the command-line overrides of a tiny run."""
    return lambda out_dir, *extra: ["--config", str(DEMO), *_overrides(shard_sets, out_dir, *extra)]


@pytest.fixture
def tiny_config(shard_sets, tmp_path):
    """``tiny_config(*extra, out_dir=None)``: the same run as a loaded PretrainConfig."""
    def make(*extra, out_dir=None) -> PretrainConfig:
        return load_config(PretrainConfig, DEMO, _overrides(shard_sets, out_dir or tmp_path / "run", *extra))
    return make


@pytest.fixture
def child_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


@pytest.fixture
def cli(child_env):
    """``cli(*args, timeout=)``: ``hybridssl ARGS`` in a fresh process, always with a timeout."""
    def call(*args, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hybridssl.cli", *map(str, args)], env=child_env,
                              capture_output=True, text=True, timeout=timeout)
    return call


def load_state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture
def state_of():
    """``state_of(ckpt)``: a checkpoint's state_dict, loaded the safe way."""
    return load_state
