"""Exact resume after SIGKILL, newest-complete-checkpoint selection, refusal of pickles, full disk."""
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch

from hybridssl.storage.atomic import DiskWriteError
from hybridssl.train.checkpoint import CheckpointError, UnsafeCheckpointError, latest_checkpoint, load_checkpoint
from hybridssl.train.checkpoint_io import AtomicCheckpointIO
from hybridssl.train.run import pretrain

STEPS = 6


def wait_for(path, proc, limit: float = 180.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() - t0 < limit, f"no {path.name} after {limit} s"
        time.sleep(0.02)


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_config, tiny_args, child_env, state_of, tmp_path):
    extra = ("mode=hybrid", f"trainer.max_steps={STEPS}")
    reference = pretrain(tiny_config(*extra, out_dir=tmp_path / "uninterrupted"))

    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "hybridssl.cli", "pretrain", *tiny_args(run, *extra)],
                            env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run / "checkpoints" / "step00000002.ckpt", proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "checkpoints" / reference.name).exists(), "killed too late to test anything"
    for ckpt in (run / "checkpoints").iterdir():  # whatever survived the kill is complete
        load_checkpoint(ckpt)

    # resume=auto (the default): everything this run knows of the killed one is in its checkpoints
    final = pretrain(tiny_config(*extra, out_dir=run))
    assert final.name == reference.name and load_checkpoint(final)["global_step"] == STEPS
    want, got = state_of(reference), state_of(final)
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6, msg=k)
    # a finished run resumes to the same end
    assert load_checkpoint(pretrain(tiny_config(*extra, out_dir=run)))["global_step"] == STEPS


def small_checkpoint(step: int) -> dict:
    return {"state_dict": {"w": torch.full((4,), float(step))}, "global_step": step}


def test_latest_checkpoint_skips_damaged_and_refuses_pickles(tmp_path):
    io, ckpts = AtomicCheckpointIO(), tmp_path / "checkpoints"
    for step in (2, 4, 6):
        io.save_checkpoint(small_checkpoint(step), ckpts / f"step{step:08d}.ckpt")
    assert latest_checkpoint(tmp_path).name == "step00000006.ckpt"
    newest = ckpts / "step00000006.ckpt"
    newest.write_bytes(newest.read_bytes()[:100])  # damaged outside our control
    with pytest.raises(CheckpointError, match="step00000006"):
        load_checkpoint(newest)
    assert latest_checkpoint(tmp_path).name == "step00000004.ckpt"
    assert not list(ckpts.glob(".*.tmp"))


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling this would create the marker file
        return open, (self.marker, "w")


def test_crafted_pickle_checkpoint_is_refused_not_run(tiny_config, tmp_path):
    cfg = tiny_config("mode=byol", "trainer.max_steps=2")
    pretrain(cfg)
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {}, "global_step": 99, "hyper_parameters": _Payload(marker)},
               tmp_path / "run" / "checkpoints" / "step00000099.ckpt")
    with pytest.raises(UnsafeCheckpointError, match="refusing to load .*step00000099.ckpt"):
        pretrain(tiny_config("mode=byol", "trainer.max_steps=4"))
    assert not marker.exists()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "step00000002.ckpt"
    io.save_checkpoint(small_checkpoint(2), path)
    before = path.read_bytes()
    big = {"state_dict": {"w": torch.zeros(1 << 20)}, "global_step": 4}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, hard))  # Python ignores SIGXFSZ: writes get EFBIG
    try:
        with pytest.raises(DiskWriteError, match="step00000002.ckpt.*intact"):
            io.save_checkpoint(big, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == before
    assert load_checkpoint(path)["global_step"] == 2
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


SLURM_ENV = {"SLURM_NTASKS": "1", "SLURM_NNODES": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "hybridssl",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}


def test_slurm_requeue_signal_checkpoints_and_resume_auto_continues(tiny_args, child_env, tmp_path):
    """What SLURM does at --signal=SIGUSR1@300: the run writes hpc_ckpt_1.ckpt at the next step, calls
    `scontrol requeue` (absent here: logged) and stops; the requeued job (resume=auto) continues from
    the newest of that and the step checkpoints."""
    run, env = tmp_path / "requeued", dict(child_env, **SLURM_ENV)
    proc = subprocess.Popen([sys.executable, "-m", "hybridssl.cli", "pretrain",
                             *tiny_args(run, "mode=byol", "trainer.max_steps=1000",
                                        "trainer.requeue_check_every_n_steps=1")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run / "checkpoints" / "step00000002.ckpt", proc)  # training, signal handlers in place
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=120) == 130  # stopped as interrupted; SLURM restarts the requeued job
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    hpc = run / "hpc_ckpt_1.ckpt"
    candidates = [hpc, *(run / "checkpoints").glob("step*.ckpt")]
    steps = {p: load_checkpoint(p)["global_step"] for p in candidates}
    assert steps[hpc] >= 2
    newest = max(candidates, key=lambda p: (steps[p], p != hpc))  # a tie goes to the step checkpoint
    done = subprocess.run([sys.executable, "-m", "hybridssl.cli", "pretrain",
                           *tiny_args(run, "mode=byol", f"trainer.max_steps={steps[newest] + 2}")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {newest}" in done.stdout
    assert f"finished at step {steps[newest] + 2}" in done.stdout
