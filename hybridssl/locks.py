"""One writer per output directory: ``with hold_lock(out_dir, "pretrain"):``.

The lock is a file, ``DIR/.hybridssl.lock``, created with ``O_EXCL`` (atomic on local disks and
on NFSv3+) holding ``host pid what started``. A second run on the same directory refuses with
one line naming the holder. A lock left by a killed run is stale when it names this host and a
pid that no longer exists: it is taken over with a warning. A lock from another host cannot be
checked from here; the message says which file to delete once that run is known to be gone.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_FILE = ".hybridssl.lock"


class LockError(ValueError):
    """Another live run holds the directory (or the directory cannot be one)."""


def ensure_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a directory (created if missing); an existing file there is a one-line error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LockError(f"{what}: {path} exists and is not a directory; choose another output directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise LockError(f"{what}: cannot create directory {path}: a parent is a file ({e.filename})") from None
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> tuple[str, int, str]:
    """(host, pid, the whole line) of a lock file; an unreadable one counts as held."""
    try:
        text = lock.read_text().strip()
        host, pid = text.split()[:2]
        return host, int(pid), text
    except (OSError, ValueError):
        return "", -1, "an unreadable lock"


def _try_create(lock: Path, what: str) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()} {what} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    except OSError as e:  # a full disk: no half-written lock left behind
        lock.unlink(missing_ok=True)
        raise LockError(f"{what}: cannot write the lock file {lock} ({e.strerror or e})") from None
    return True


def acquire(directory: str | os.PathLike, what: str) -> Path:
    """Take the lock of ``directory`` (created if missing) or raise :class:`LockError`."""
    lock = ensure_dir(directory, what) / LOCK_FILE
    for _ in range(3):  # a stale lock removed by a racing run: try again
        if _try_create(lock, what):
            return lock
        host, pid, line = _holder(lock)
        if host == socket.gethostname() and pid > 0 and not _pid_alive(pid):
            log.warning("%s: taking over the stale lock %s (%s; that process is gone)", what, lock, line)
            if _holder(lock)[2] == line:  # still the stale one, not a racing run's fresh lock
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
            continue
        raise LockError(f"{what}: {Path(directory)} is in use by another run ({line}); wait for it, or "
                        f"delete {lock} if that run is gone")
    raise LockError(f"{what}: could not take {lock}: other runs keep taking it")


def release(lock: Path) -> None:
    """Remove ``lock`` if it is still this process's."""
    host, pid, _ = _holder(lock)
    if host == socket.gethostname() and pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def hold_lock(directory: str | os.PathLike, what: str, enabled: bool = True):
    """Hold ``directory``'s lock for the block. ``enabled=False`` (DDP ranks other than 0, which
    share the directory with rank 0 and must write nothing there) does nothing."""
    if not enabled:
        yield None
        return
    lock = acquire(directory, what)
    try:
        yield lock
    finally:
        release(lock)
