"""One writer per output directory: a held lock refuses, a dead holder's lock is taken over."""
import json
import os
import signal
import subprocess
import sys

import pytest

from hybridssl.storage.locks import LOCK_FILE, LockError, dir_lock

_HOLD = """
import sys, time
from hybridssl.storage.locks import dir_lock
with dir_lock(sys.argv[1], "holder"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path):
    """A separate process holding the lock on ``path`` (the real case: two commands)."""
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_held_directory_refuses_naming_the_holder_and_a_killed_holder_is_stale(tmp_path, capsys):
    p = _holder(tmp_path / "out")
    try:
        with pytest.raises(LockError, match=rf"in use by holder \(pid {p.pid} on host"):
            with dir_lock(tmp_path / "out", "second"):
                pass
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert json.loads((tmp_path / "out" / LOCK_FILE).read_text())["pid"] == p.pid  # left behind
    with dir_lock(tmp_path / "out", "third") as lock:
        assert json.loads(lock.read_text())["command"] == "third"
    assert f"stale lock of holder (pid {p.pid}" in capsys.readouterr().err
    assert not (tmp_path / "out" / LOCK_FILE).exists()


def test_the_lock_is_released_after_the_block_even_on_error(tmp_path):
    with pytest.raises(KeyError):
        with dir_lock(tmp_path, "first"):
            raise KeyError("boom")
    with dir_lock(tmp_path, "again"):
        with pytest.raises(LockError, match="in use by again"):
            with dir_lock(tmp_path, "nested"):
                pass


def test_a_file_or_a_path_through_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(LockError, match="is a file, not a directory"):
        with dir_lock(tmp_path / "f", "x"):
            pass
    with pytest.raises(LockError, match="cannot create directory"):
        with dir_lock(tmp_path / "f" / "sub", "x"):
            pass


def test_disabled_lock_touches_nothing(tmp_path):  # DDP ranks > 0: rank 0 holds the lock
    with dir_lock(tmp_path / "run", "pretrain"):
        with dir_lock(tmp_path / "run", "pretrain", enabled=False) as lock:
            assert lock is None
    with dir_lock(tmp_path / "other", "pretrain", enabled=False):
        assert not (tmp_path / "other").exists()
