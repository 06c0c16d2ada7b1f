"""One writer per output directory: a live holder is refused, a dead one's lock is taken over."""
import os
import socket
import subprocess
import sys

import pytest

from hybridssl.locks import LOCK_FILE, LockError, hold_lock


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_second_holder_is_refused_naming_host_and_pid(tmp_path):
    with hold_lock(tmp_path / "run", "pretrain") as lock:
        assert lock.read_text().split()[:3] == [socket.gethostname(), str(os.getpid()), "pretrain"]
        with pytest.raises(LockError, match=rf"in use by another run \({socket.gethostname()} {os.getpid()}"):
            with hold_lock(tmp_path / "run", "pretrain"):
                pass
    assert not (tmp_path / "run" / LOCK_FILE).exists(), "the lock outlived its block"
    with hold_lock(tmp_path / "run", "pretrain"):  # free again
        pass


def test_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    lock = tmp_path / LOCK_FILE
    lock.write_text(f"{socket.gethostname()} {dead_pid()} pretrain 2020-01-01T00:00:00\n")
    with hold_lock(tmp_path, "pretrain") as held:
        assert held.read_text().split()[1] == str(os.getpid())


def test_lock_of_another_host_is_not_guessed_stale(tmp_path):
    (tmp_path / LOCK_FILE).write_text(f"other-node {dead_pid()} pretrain 2020-01-01T00:00:00\n")
    with pytest.raises(LockError, match="other-node"):
        with hold_lock(tmp_path, "pretrain"):
            pass


def test_disabled_lock_touches_nothing(tmp_path):  # DDP ranks > 0: rank 0 holds the lock
    with hold_lock(tmp_path / "run", "pretrain"):
        with hold_lock(tmp_path / "run", "pretrain", enabled=False) as lock:
            assert lock is None
    with hold_lock(tmp_path / "other", "pretrain", enabled=False):
        assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("sub", ["file", "file/below"])
def test_an_existing_file_as_the_directory_is_one_clear_error(tmp_path, sub):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LockError, match="file"):
        with hold_lock(tmp_path / sub, "pretrain"):
            pass
