"""One writer per output directory: ``with dir_lock(out, "prepare"): ...`` (prepare, pretrain, finetune).

The lock is ``.hybridssl.lock`` in the directory, held with ``flock`` while the command runs
and naming its host, pid and command, so a second run refuses with one line saying who holds
it. The kernel drops an ``flock`` when its process dies (SIGKILL included), so a lock file
left by a killed run is stale by construction: the next run takes it over and says so.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_FILE = ".hybridssl.lock"


class LockError(ValueError):
    """The directory cannot be claimed: another run holds it, it is a file, or it cannot be
    created or locked; the message says which."""


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{info['command']} (pid {info['pid']} on host {info['host']}, started {info['started']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def _acquire(path: Path) -> int:
    """An fd holding the flock on ``path``; retried when the file was replaced meanwhile (a
    holder unlinks it on exit, so a lock on the old inode would guard nothing)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a full disk or no inodes left, a read-only directory
            raise LockError(f"cannot create {path} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockError(f"{path.parent} is in use by {holder}; wait for it to finish or use "
                                "another output directory") from None
            raise LockError(f"cannot lock {path} ({e.strerror or e}); is this a filesystem "
                            "without file locks?") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)


def ensure_dir(directory: str | os.PathLike) -> Path:
    """``directory``, created if missing; a file there (or above it) is a one-line :class:`LockError`."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LockError(f"{directory} is a file, not a directory; name a directory for the output") from None
    except OSError as e:  # a parent that is a file, no permission, a full disk
        raise LockError(f"cannot create directory {directory} ({e.strerror or e})") from None
    return directory


@contextlib.contextmanager
def dir_lock(directory: str | os.PathLike, command: str, enabled: bool = True):
    """Hold ``directory`` (created if missing) for ``command`` until the block ends. ``enabled=False``
    (DDP ranks other than 0, which share rank 0's directory and write nothing there) does nothing."""
    if not enabled:
        yield None
        return
    path = ensure_dir(directory) / LOCK_FILE
    fd = _acquire(path)
    try:
        if os.fstat(fd).st_size:  # a lock file nobody holds: its run died without cleaning up
            print(f"note: {path}: taking over a stale lock of {_holder(fd)}, which is no longer running",
                  file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # before the unlock, so a waiter never locks a file about to vanish
        os.close(fd)
