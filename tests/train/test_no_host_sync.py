"""No host-device wait inside a training step (issue 22): the real ``pretrain`` with its real
callbacks, the cluster preset (configs/pretrain/gz_evo.yaml) sized down to the CPU.

A CPU cannot say which calls would make the host wait for a GPU, so a TorchDispatchMode watches
every tensor op from the start to the end of each batch that is neither a logging nor a
checkpoint step (where values are read back by design) and records the ops that on a GPU need
the result on the host: ``_local_scalar_dense`` (``item()``, ``bool()``, ``int()``, ``tolist()`` of
a scalar), ``nonzero``, ``masked_select``, boolean indexing, ``unique`` and friends. What it cannot
see (C++ code that reads memory without dispatching an op) is left to
``benchmarks/device_check.py``, which runs the same steps under CUDA's sync debug mode.
"""
import collections
import importlib
import traceback

import pytest
import pytorch_lightning as pl
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import _overrides
from hybridssl.config import config_dir, load_config
from hybridssl.train.config import PretrainConfig
from hybridssl.train.guards import is_logging_step

from hybridssl.train import run
dirichlet = importlib.import_module("hybridssl.model.losses.dirichlet")

SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "equal", "unique", "_unique",
               "_unique2", "unique_consecutive", "unique_dim", "repeat_interleave", "bincount", "histc"}


# Reads of tensors that stay on the host in a GPU run too, so they wait for nothing there
HOST_TENSORS = {
    "kornia/filters/gaussian.py": "the blur's sigma: TwoViews keeps that generator on the CPU "
                                  "(tests/augment/test_augment_rgb.py::test_blur_draws_its_sigma_on_the_host)",
}


class HostReads(TorchDispatchMode):
    """Counts the ops that read a device result back to the host, by the line (outside torch) that ran them."""

    def __init__(self, sites: collections.Counter):
        super().__init__()
        self.sites = sites

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._overloadpacket.__name__
        boolean_index = name == "index" and any(t is not None and t.dtype == torch.bool for t in args[1])
        if name in SYNCING_OPS or boolean_index:
            ours = [f for f in traceback.extract_stack()[:-1] if "/torch/" not in f.filename and f.filename != __file__]
            if ours and any(ours[-1].filename.endswith(path) for path in HOST_TENSORS):
                return func(*args, **(kwargs or {}))
            self.sites[f"{name} at {ours[-1].filename}:{ours[-1].lineno}" if ours else name] += 1
        return func(*args, **(kwargs or {}))


class _Watch(pl.Callback):
    """On for the whole batch: inserted first in the Trainer's callbacks (start) and appended last (stop)."""

    def __init__(self, state: dict, start: bool):
        self.state, self.start = state, start

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        checkpoint_step = (trainer.global_step + 1) % trainer.checkpoint_callback._every_n_train_steps == 0
        if self.start and not is_logging_step(trainer) and not checkpoint_step:
            self.state["mode"] = HostReads(self.state["sites"])
            self.state["mode"].__enter__()
            self.state["steps"] += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self.start and self.state.get("mode") is not None:
            self.state.pop("mode").__exit__(None, None, None)


@pytest.mark.parametrize("extra", [(), ("augment=byol_imagenet", "mode=byol"), ("mode=supervised",),
                                   ("data.in_memory=true",)],
                         ids=["hybrid", "byol-imagenet-recipe", "supervised", "small-data-mode"])
def test_cluster_preset_steps_never_read_the_device_back(shard_sets, tmp_path, monkeypatch, extra):
    from hybridssl.augment.config import recipe_overrides
    recipe = [o for e in extra if e.startswith("augment=") for o in recipe_overrides(e.split("=")[1])]
    cfg = load_config(PretrainConfig, config_dir() / "pretrain" / "gz_evo.yaml", _overrides(
        shard_sets, tmp_path / "run", "trainer.accelerator=cpu", "trainer.max_steps=7", "trainer.log_every_n_steps=3",
        "trainer.checkpoint_every_n_steps=3", "trainer.progress_bar=true", *recipe,
        *[e for e in extra if not e.startswith("augment=")]))
    assert cfg.optim.name == "lars"  # the preset under test
    # the Dirichlet loss's CPU-only shortcut (nonzero) is not the GPU's path: take the GPU's
    monkeypatch.setattr(dirichlet, "_skips_zero_counts", lambda device: False)
    state = {"sites": collections.Counter(), "steps": 0}
    build = run.build_trainer

    def watched(*args):
        trainer = build(*args)
        trainer.callbacks.insert(0, _Watch(state, start=True))
        trainer.callbacks.append(_Watch(state, start=False))
        return trainer

    monkeypatch.setattr(run, "build_trainer", watched)
    assert run.pretrain(cfg) is not None
    assert state["steps"] == 5  # 7 steps; the 3rd and 6th log and checkpoint
    assert not state["sites"], f"host reads inside the training step: {dict(state['sites'])}"
