"""Atomic file writes: write to a temp file beside the target, fsync, rename.

A reader (or a resumed run) sees either the previous complete file or the new complete
file, never a partial one, even after SIGKILL or a full disk.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class DiskWriteError(OSError):
    """Writing failed (often a full disk); the previous file at ``path`` is untouched."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path in the target's directory; on success rename it onto ``path``."""
    path = Path(path)
    try:  # no space or no inodes left fails here already, before a byte is written
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(e, path) from e
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        _unlink(tmp)
        raise _write_error(e, path) from e
    except BaseException:
        _unlink(tmp)
        raise


def _write_error(e: OSError, path: Path) -> DiskWriteError:
    return DiskWriteError(e.errno, f"could not write {path} ({e.strerror or e}); "
                          f"the previous {path.name}, if any, is intact")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unlink(p) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p)


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
