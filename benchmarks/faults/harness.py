"""What every fault needs: result rows, the `hybridssl` CLI as a subprocess, kills, small inputs.

Every command runs in its own process group with a timeout and ``OMP_NUM_THREADS=1``, so a
fault that hangs is recorded as a failure instead of stalling the suite, and a SIGKILL takes
the command's worker processes down with it, as a dying node would.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hybridssl.schema import load_schema

SCHEMA = "gz_evo_v0.1"
CAMPAIGN = "dr5"


@dataclass
class Row:
    """One line of the summary table. ``data_lost``: samples, steps or files lost or leaked."""
    fault: str
    tries: int
    survived: int
    data_lost: int
    detail: str
    seconds: float = 0.0  # wall time, shared equally by the rows one fault function returns

    @property
    def ok(self) -> bool:
        return self.survived == self.tries and self.data_lost == 0


@dataclass
class Proc:
    """A finished command; ``rc`` is None when it ran past its timeout (and was killed)."""
    args: list
    rc: int | None
    out: str
    err: str
    seconds: float

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    def message(self, n: int = 240) -> str:
        """The command's error line (``... error: ...``), else the end of its output."""
        lines = [ln for ln in self.err.splitlines() if "error" in ln.lower()]
        return lines[-1][:n] if lines else self.tail(n)

    def tail(self, n: int = 300) -> str:
        text = (self.err.strip() or self.out.strip()).replace("\n", " | ")
        return text[-n:]


def run_inprocess(args: list[str]) -> Proc:
    from hybridssl.cli import main
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    logging.getLogger().addHandler(handler)
    t0 = time.monotonic()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as PYTHONWARNINGS=ignore in child_env
            try:
                rc = main(args)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else int(e.code is not None)
            except Exception:
                traceback.print_exc()
                rc = 1
    finally:
        logging.getLogger().removeHandler(handler)
    return Proc(["hybridssl", *args], rc, out.getvalue(), err.getvalue(), time.monotonic() - t0)


def child_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONWARNINGS="ignore", **{k: str(v) for k, v in extra.items()})
    return env


def hybridssl_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "hybridssl.cli", *map(str, args)]


def torchrun_cmd(nproc: int, port: int, *args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
            "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "hybridssl.cli", *map(str, args)]


def kill_group(p: subprocess.Popen) -> None:
    """SIGKILL a command and every process it started (its process group)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def kill_landed(p: subprocess.Popen) -> bool:
    """SIGKILL the command's group; True only when that kill ended it. A command that had already
    exited (on its own, or between a check and the kill) was not killed: no fault was injected."""
    kill_group(p)
    return p.returncode == -signal.SIGKILL


def descendants(pid: int) -> list[int]:
    """Child pids, recursively (from /proc; no psutil needed)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for k in kids:
            out += [k, *descendants(k)]
    return out


@dataclass
class Ctx:
    """One suite run: a scratch directory, the size (quick or full) and a seeded RNG."""
    work: Path
    quick: bool = True
    seed: int = 0
    inprocess: bool | None = None  # run commands that need no kill or limit in this process (default: quick)
    rng: np.random.Generator = field(init=False)
    _cache: dict = field(default_factory=dict, init=False)

    def __post_init__(self):
        self.work = Path(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.rng = np.random.default_rng(self.seed)
        if self.inprocess is None:
            self.inprocess = self.quick

    def path(self, *parts) -> Path:
        p = self.work.joinpath(*map(str, parts))
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def cli(self, *args, timeout: float = 300, cmd: list | None = None, **popen) -> Proc:
        """Run ``hybridssl ARGS`` to the end (or to ``timeout``) and capture its output.

        In-process (``self.inprocess``, and no ``cmd``/``popen``) it calls the same entry point,
        ``hybridssl.cli.main``, without paying torch's import again; an exception escaping it is
        printed as Python would, so the no-traceback checks mean the same thing.
        """
        if self.inprocess and cmd is None and not popen:
            return run_inprocess(list(map(str, args)))
        cmd = cmd or hybridssl_cmd(*args)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=popen.pop("env", child_env()), start_new_session=True, **popen)
        try:
            out, err = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            kill_group(p)
            out, err = p.communicate()
            rc, err = None, err + f"\n[faults] killed after {timeout:.0f} s timeout"
        return Proc(cmd, rc, out, err, time.monotonic() - t0)

    def spawn(self, *args, log: Path, cmd: list | None = None, env: dict | None = None) -> subprocess.Popen:
        """Start ``hybridssl ARGS`` in the background (its own process group), output to ``log``."""
        f = open(log, "w")
        return subprocess.Popen(cmd or hybridssl_cmd(*args), stdout=f, stderr=subprocess.STDOUT,
                                env=env or child_env(), start_new_session=True)

    def cached(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


# -- small inputs ------------------------------------------------------------------------------
def galaxy_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """Noise plus a coloured elliptical blob: cheap, varied, and compresses like a real cutout."""
    yy, xx = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    q, theta = rng.uniform(0.4, 1.0), rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u, v = dx * np.cos(theta) + dy * np.sin(theta), (dy * np.cos(theta) - dx * np.sin(theta)) / q
    blob = np.exp(-(u ** 2 + v ** 2) / (2 * 0.12 ** 2))
    img = rng.normal(20, 8, (size, size, 3)) + blob[..., None] * rng.uniform(120, 220, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def tree_votes(rng: np.random.Generator, schema, campaign: str = CAMPAIGN, volunteers=(5, 40)) -> np.ndarray:
    """Integer votes on one campaign: ``volunteers`` (low, high) answer the root question and each
    child question is asked of its parent answer's voters (file order lists parents first)."""
    votes = np.zeros(schema.n_answers, dtype=np.float64)
    for q in schema.questions:
        if q.campaign != campaign:
            continue
        n = int(rng.integers(*volunteers)) if q.parent is None else int(votes[schema.column_index[q.parent]])
        if n:
            votes[q.start:q.end] = rng.multinomial(n, rng.dirichlet(np.ones(len(q.answers))))
    return votes


def galaxy_id(i: int, seed: int) -> str:
    """Dots and a plus sign, like real ids (``J004544.11-005037.5``)."""
    return f"J{seed:02d}{i:05d}.1+00{i % 7}.5"


def image_bytes(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def write_catalog(root: Path, n: int, seed: int, size: int = 40, labelled: bool = True,
                  extra: dict | None = None, name: str = "catalog.parquet") -> Path:
    """A galaxy-datasets-style catalog: ``id_str, file_loc`` (relative), campaign, vote columns."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    schema = load_schema(SCHEMA)
    rows = []
    for i in range(n):
        loc = f"images/g{seed:02d}_{i:05d}.jpg"
        (root / loc).write_bytes(image_bytes(galaxy_image(rng, size), "JPEG"))
        row = {"id_str": galaxy_id(i, seed), "file_loc": loc}
        if labelled:
            row["campaign"] = CAMPAIGN
            row.update(zip(schema.label_cols, tree_votes(rng, schema)))
        rows.append(row)
    df = pd.DataFrame(rows)
    for k, v in (extra or {}).items():
        df[k] = v
    return save_catalog(df, root / name)


def save_catalog(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


# -- reading results back ----------------------------------------------------------------------
def shard_ids(shard_dir: Path, names: list[str] | None = None) -> list[str]:
    """Every sample's id in the listed shards (all ``shard-*.tar`` on disk if no manifest)."""
    import tarfile

    from hybridssl.storage.shards import decode_key, read_manifest
    if names is None:
        names = ([s["name"] for s in read_manifest(shard_dir)["shards"]] if (shard_dir / "manifest.json").exists()
                 else sorted(p.name for p in shard_dir.glob("shard-*.tar")))
    ids = []
    for name in names:
        with tarfile.open(shard_dir / name) as tf:
            keys = {m.name.split(".", 1)[0] for m in tf.getmembers() if m.isfile()}
        ids += [decode_key(k) for k in sorted(keys)]
    return ids


def complete_tar(path: Path) -> bool:
    """True when every member of the tar can be read to its end."""
    import tarfile
    try:
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    tf.extractfile(m).read()
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def rejected_text(shard_dir: Path) -> str:
    p = shard_dir / "rejected.csv"
    return p.read_text() if p.exists() else ""


def says_disk_full(p: Proc) -> bool:
    """The command told the user why it failed in words about the disk."""
    text = (p.err + p.out).lower()
    return any(w in text for w in ("no space", "disk", "could not write", "file too large"))


@contextlib.contextmanager
def tmpfs(path, options: str, needs: str):
    """A tmpfs mounted at ``path`` with mount ``options`` for a filesystem fault (root only; the
    error says what the case ``needs`` it for); unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                      capture_output=True, timeout=30).returncode != 0:
        raise RuntimeError(f"needs a tmpfs mount (root) {needs}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def refused_naming(p, *words) -> tuple[bool, str]:
    """Refused (non-zero, no traceback) with an error naming every word; and the row detail."""
    missing = [w for w in words if w not in p.err]
    ok = p.rc not in (0, None) and not p.traceback and not missing
    return ok, (f"rc={p.rc}: {p.message()}" + (f" [does not name {missing}]" if missing else "")
                + (" [Python traceback]" if p.traceback else ""))


@contextlib.contextmanager
def small_dir(path: Path, size: int, file_limit: int):
    """A directory holding ``size`` bytes at most: a tmpfs when mount is allowed.

    Yields ``popen`` kwargs for the command that should hit the limit: empty for a tmpfs, else
    a ``file_limit`` per-file size limit (RLIMIT_FSIZE, SIGXFSZ ignored so writes fail with EFBIG).
    """
    path.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={max(size, 4096)}", "tmpfs", str(path)],
                                 capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):  # no mount binary, or not allowed to use it
        mounted = False

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    try:
        yield ({} if mounted else {"preexec_fn": limit}), ("tmpfs" if mounted else "RLIMIT_FSIZE")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
