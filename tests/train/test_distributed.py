"""Two "nodes" on loopback: two torchrun launchers (node ranks 0 and 1, one process each), gloo on CPU.

Each node gets its own out_dir, so anything node 1 wrote would show up in its directory.
"""
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridssl.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


@pytest.fixture
def two_nodes(tiny_args, child_env, tmp_path):
    """``start(*extra) -> [launcher of node 0, launcher of node 1]``; all killed at teardown."""
    started = []

    def start(*extra):
        port = free_port()
        for node in (0, 1):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port),
                   "-m", "hybridssl.cli", "pretrain", *tiny_args(tmp_path / f"node{node}", *extra)]
            started.append(subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True, start_new_session=True))
        return started[-2:]
    yield start
    for p in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()


def test_ranks_end_with_identical_weights_and_only_rank0_writes(two_nodes, tmp_path):
    launchers = two_nodes("mode=hybrid", "trainer.max_steps=4")
    logs = [p.communicate(timeout=400)[0] for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    digests = [re.search(r"rank (\d): finished at step 4; weights digest ([0-9a-f]+)", log).groups() for log in logs]
    assert {rank for rank, _ in digests} == {"0", "1"}
    assert digests[0][1] == digests[1][1]
    ckpts = sorted(p.name for p in (tmp_path / "node0" / "checkpoints").iterdir())
    assert ckpts == ["step00000002.ckpt", "step00000004.ckpt"]
    assert load_checkpoint(tmp_path / "node0" / "checkpoints" / ckpts[-1])["global_step"] == 4
    assert not (tmp_path / "node1").exists()  # rank 1 wrote nothing: no checkpoint, log or config


def test_a_dead_rank_fails_the_job_quickly(two_nodes, tmp_path):
    timeout = 30
    launchers = two_nodes("mode=byol", "trainer.max_steps=1000", f"trainer.ddp_timeout_s={timeout}")
    first = tmp_path / "node0" / "checkpoints" / "step00000002.ckpt"
    t0 = time.monotonic()
    while not first.exists():
        assert all(p.poll() is None for p in launchers), "a launcher ended before training started"
        assert time.monotonic() - t0 < 300, "no checkpoint after 300 s"
        time.sleep(0.1)
    workers = children(launchers[1].pid)
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    killed = time.monotonic()
    for p in launchers:
        p.communicate(timeout=timeout + 90)  # raises TimeoutExpired if the job hangs
    assert all(p.returncode not in (0, None) for p in launchers)
    assert time.monotonic() - killed < timeout + 90
