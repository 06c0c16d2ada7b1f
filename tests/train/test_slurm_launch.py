"""SLURM launches on CPU (gloo) with a faked SLURM environment: torchrun inside a one-task
allocation, srun-style processes without torchrun, and the requeue signal sent to one rank."""
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from hybridssl.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
JOB = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "hybridssl", "SLURM_NNODES": "1", "SLURM_NODEID": "0",
       "SLURM_NODELIST": "localhost"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def launched():
    """``launch(cmd, env) -> Popen``; every process killed at teardown."""
    started = []

    def launch(cmd, env):
        started.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True))
        return started[-1]
    yield launch
    for p in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()


def finished(log: str) -> tuple[str, str]:
    """(step, weights digest) a rank printed at the end."""
    return re.search(r"finished at step (\d+); weights digest ([0-9a-f]+)", log).groups()


def test_torchrun_inside_a_one_task_slurm_allocation(launched, tiny_args, child_env, tmp_path):
    """`srun --ntasks-per-node=1 torchrun --nproc-per-node=2`: SLURM says one task, torchrun starts two."""
    env = dict(child_env, **JOB, SLURM_NTASKS="1", SLURM_NTASKS_PER_NODE="1", SLURM_PROCID="0", SLURM_LOCALID="0")
    proc = launched([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                     str(free_port()), "-m", "hybridssl.cli", "pretrain",
                     *tiny_args(tmp_path / "run", "mode=byol", "trainer.max_steps=2")], env)
    log = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, log[-3000:]
    ends = re.findall(r"rank (\d): finished at step 2; weights digest ([0-9a-f]+)", log)
    assert sorted(r for r, _ in ends) == ["0", "1"] and ends[0][1] == ends[1][1], log[-3000:]


def srun_pair(launched, tiny_args, child_env, out, tmp_path, *extra):
    """Two processes as `srun --ntasks=2` starts them: SLURM_PROCID 0 and 1, no torchrun; a stand-in
    `scontrol` on PATH records its arguments."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    (fake / "scontrol").chmod(0o755)
    port = str(free_port())
    return [launched([sys.executable, "-m", "hybridssl.cli", "pretrain", *tiny_args(out, *extra)],
                     dict(child_env, **JOB, SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="2", SLURM_PROCID=str(rank),
                          SLURM_LOCALID=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                          PATH=f"{fake}:{child_env['PATH']}"))
            for rank in (0, 1)]


def test_requeue_signal_to_one_srun_rank_saves_once_exits_and_resumes_exactly(launched, tiny_args, child_env,
                                                                              tmp_path):
    steps = ("mode=byol", "trainer.max_steps=20", "trainer.requeue_check_every_n_steps=1")
    reference = srun_pair(launched, tiny_args, child_env, tmp_path / "reference", tmp_path, *steps)
    ref_logs = [p.communicate(timeout=600)[0] for p in reference]
    assert [p.returncode for p in reference] == [0, 0], ref_logs[0][-3000:]

    run = tmp_path / "requeued"
    ranks = srun_pair(launched, tiny_args, child_env, run, tmp_path, *steps)
    t0 = time.monotonic()
    while not (run / "checkpoints" / "step00000002.ckpt").exists():
        assert all(p.poll() is None for p in ranks), "a rank ended before step 2"
        assert time.monotonic() - t0 < 400, "no step-2 checkpoint after 400 s"
        time.sleep(0.02)
    os.kill(ranks[1].pid, signal.SIGUSR1)  # SLURM signals every task; one must be enough, and never hang
    signalled = time.monotonic()
    logs = [p.communicate(timeout=120)[0] for p in ranks]  # far below the 1,800 s DDP timeout
    assert time.monotonic() - signalled < 120
    assert [p.returncode for p in ranks] == [130, 130], logs[0][-3000:] + logs[1][-3000:]
    assert sorted(p.name for p in run.glob("hpc_ckpt_*")) == ["hpc_ckpt_1.ckpt"]
    assert (tmp_path / "scontrol.log").read_text().split("\n")[:-1] == ["requeue 4242"]  # rank 0 only, once
    stopped = load_checkpoint(run / "hpc_ckpt_1.ckpt")["global_step"]
    assert 2 <= stopped < 20

    resumed = srun_pair(launched, tiny_args, child_env, run, tmp_path, *steps)
    res_logs = [p.communicate(timeout=600)[0] for p in resumed]
    assert [p.returncode for p in resumed] == [0, 0], res_logs[0][-3000:]
    resumed_from = re.search(r"resuming from (\S+)", res_logs[0]).group(1)
    assert load_checkpoint(resumed_from)["global_step"] == stopped  # the requeue one, or a step one as new
    assert finished(res_logs[0]) == finished(res_logs[1]) == finished(ref_logs[0]) == ("20", finished(ref_logs[0])[1])
