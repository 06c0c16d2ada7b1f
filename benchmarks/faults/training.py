"""Faults on the training path: SIGKILL mid-run, a dead DDP rank, a full disk under checkpoints."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import torch

from benchmarks.faults.data import labelled_shards
from benchmarks.faults.harness import (Ctx, Row, child_env, descendants, kill_group, kill_landed,
                                       says_disk_full, small_dir, torchrun_cmd)
from hybridssl.config import config_dir

CKPT_GLOB = "*.ckpt"  # hybridssl.train writes OUT_DIR/checkpoints/stepNNNNNNNN.ckpt


def run_steps(ctx: Ctx) -> int:
    """Optimizer steps of the suite's runs: few, as process start-up dominates on CPU."""
    return 8 if ctx.quick else 16


def pretrain_args(ctx: Ctx, run: Path, max_steps: int | None = None, labelled=None, *extra) -> list:
    """The tiny CPU pretraining used by every training fault: demo config, timm's 0.4M-parameter
    test_resnet (3 MB checkpoints), 32 px, batch 8."""
    labelled, max_steps = labelled or labelled_shards(ctx), max_steps or run_steps(ctx)
    return ["--config", config_dir() / "pretrain" / "demo.yaml", f"out_dir={run}", "resume=auto",
            f"data.labelled=[{labelled}]", "data.unlabelled=[]", "data.batch_size=8", "data.num_workers=1",
            "data.shuffle_buffer=50", f"trainer.max_steps={max_steps}", "trainer.checkpoint_every_n_steps=2",
            "trainer.log_every_n_steps=1", "trainer.keep_checkpoints=3", "trainer.progress_bar=false",
            "optim.warmup_steps=1", "model.backbone=test_resnet", "model.projection_hidden_dim=64",
            "model.prediction_hidden_dim=64", "model.projection_dim=32", "augment.crop_size=32",
            "augment.resize_size=32", "augment.blur_kernel=3", *extra]


def checkpoints(run: Path) -> list[Path]:
    return sorted(run.rglob(CKPT_GLOB)) if run.exists() else []


def newest_checkpoint(run: Path) -> Path:
    found = checkpoints(run)
    if not found:
        raise FileNotFoundError(f"no checkpoint under {run}")
    return max(found, key=lambda p: p.stat().st_mtime_ns)


def load_steps(run: Path) -> tuple[dict, list[str]]:
    """Every checkpoint loaded the safe way: {name: global_step}, and the ones that fail."""
    steps, bad = {}, []
    for p in checkpoints(run):
        try:
            steps[str(p.relative_to(run))] = int(torch.load(p, map_location="cpu", weights_only=True)["global_step"])
        except Exception as e:  # any failure to load is the finding
            bad.append(f"{p.name}: {type(e).__name__}: {str(e)[:120]}")
    return steps, bad


def final_step(run: Path) -> int | None:
    steps, _ = load_steps(run)
    return max(steps.values()) if steps else None


def weight_gap(run_a: Path, run_b: Path) -> float:
    """Largest absolute difference between the two runs' final weights (0.0: identical)."""
    def last(run):
        path = max(checkpoints(run), key=lambda p: (len(p.name), p.name))
        return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    a, b = last(run_a), last(run_b)
    return max((float((a[k].double() - b[k].double()).abs().max()) for k in a
                if k in b and a[k].is_floating_point() and a[k].numel()), default=float("nan"))


def baseline_seconds(ctx: Ctx) -> tuple[float, float]:
    """The uninterrupted run's seconds to its first checkpoint and to its end."""
    trained_run(ctx)
    return ctx.cached("baseline-run", None)[1]


def trained_run(ctx: Ctx, copy_to: Path | None = None) -> Path:
    """A completed run (made once, timed); a copy at ``copy_to`` when given."""
    def make():
        run = ctx.work / "runs" / "baseline"
        log = ctx.path("logs", "pretrain-baseline.log")
        p = ctx.spawn("pretrain", *pretrain_args(ctx, run), log=log)
        t0, first = time.monotonic(), None
        while p.poll() is None:
            if first is None and checkpoints(run):
                first = time.monotonic() - t0
            time.sleep(0.05)
        if p.returncode != 0:
            raise RuntimeError(f"baseline pretraining failed: {log.read_text()[-3000:]}")
        total = time.monotonic() - t0
        return run, (first or total / 2, total)
    run, _ = ctx.cached("baseline-run", make)
    if copy_to is None:
        return run
    shutil.rmtree(copy_to, ignore_errors=True)
    shutil.copytree(run, copy_to)
    return copy_to


def exported_run(ctx: Ctx) -> Path:
    """``hybridssl export`` of :func:`trained_run` (made once)."""
    def make():
        out = ctx.work / "export" / "guard"
        p = ctx.cli("export", trained_run(ctx), "--out", out, timeout=300)
        if p.rc != 0:
            raise RuntimeError(f"export failed: {p.tail()}")
        return out
    return ctx.cached("guard-export", make)


def _wait_for_checkpoint(p, run: Path, limit: float) -> None:
    t0 = time.monotonic()
    while p.poll() is None and not checkpoints(run) and time.monotonic() - t0 < limit:
        time.sleep(0.05)


# -- SIGKILL mid-training -----------------------------------------------------------------------
def _named_step(p: Path) -> int:
    digits = "".join(c for c in p.stem if c.isdigit())
    return int(digits) if digits else -1


def _kill_at_step(ctx: Ctx, p, run: Path, target: int, step_s: float, limit: float) -> bool:
    """SIGKILL the run's process group a random fraction of a step after checkpoint ``target``
    appears (so kills land mid-step and mid-save alike); False if it had already finished."""
    t0 = time.monotonic()
    while p.poll() is None and max(map(_named_step, checkpoints(run)), default=-1) < target \
            and time.monotonic() - t0 < limit:
        time.sleep(0.01)
    time.sleep(float(ctx.rng.uniform(0, step_s)))
    return kill_landed(p)


def pretrain_sigkill(ctx: Ctx) -> list[Row]:
    tries = 1 if ctx.quick else 5
    base = trained_run(ctx)
    first, total = baseline_seconds(ctx)
    expected = final_step(base)
    step_s = (total - first) / max(expected - 2, 1)
    survived, lost, notes = 0, 0, []
    for t in range(tries):
        for attempt in range(3):  # a kill that lands after the run ended (a busy machine's timing) tests nothing
            run = ctx.work / "runs" / f"kill{t}-{attempt}"
            p = ctx.spawn("pretrain", *pretrain_args(ctx, run),
                          log=ctx.path("logs", f"pretrain-kill{t}-{attempt}.log"))
            killed = _kill_at_step(ctx, p, run, int(ctx.rng.integers(1, expected - 1)), step_s, 4 * total)
            if killed:
                break
        steps, bad = load_steps(run)
        at = max(steps.values(), default=0)
        resume = ctx.cli("pretrain", *pretrain_args(ctx, run), timeout=600)
        end = final_step(run)
        _, bad_after = load_steps(run)
        gap = weight_gap(run, base) if end == expected else float("nan")
        # a kill that came after the run ended tested nothing: the try does not count as survived
        ok = killed and resume.rc == 0 and not bad and not bad_after and end == expected and not resume.traceback
        survived += ok
        lost += len(bad) + len(bad_after) + abs((end or 0) - expected)
        notes.append(f"try {t}: killed {f'after step {at} was saved' if killed else 'after the run ended (not counted)'},"
                     f" {len(steps)} checkpoint(s) all load with weights_only=True"
                     f"{'' if not bad else ' EXCEPT ' + str(bad)}; resume rc={resume.rc}, final step {end}"
                     f" (uninterrupted: {expected}), largest weight difference to the uninterrupted run {gap:.1e}"
                     + ("" if ok else f" [{resume.tail()}]"))
    return [Row("SIGKILL during pretraining, then resume=auto", tries, survived, lost, "; ".join(notes))]


# -- one DDP rank dies --------------------------------------------------------------------------
def _rank_pid(launcher: int, rank: int, limit: float = 60) -> int | None:
    """The pid of global rank ``rank`` among the launcher's descendants (read from its environ)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        for pid in descendants(launcher):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in env and _cmdline(pid).count("hybridssl.cli") \
                    and not _is_worker(pid, launcher):
                return pid
        time.sleep(0.2)
    return None


def _is_worker(pid: int, launcher: int) -> bool:
    """A DataLoader worker is a child of a rank, not of the launcher."""
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return True
    return ppid != launcher


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def distributed_rank_kill(ctx: Ctx) -> list[Row]:
    """2 loopback ranks (gloo, CPU) under torchrun; SIGKILL rank 1 after a checkpoint; the job
    must exit non-zero within 2 minutes; the same launch with resume=auto then finishes."""
    tries, limit = (1, 120.0) if ctx.quick else (2, 120.0)
    expected = final_step(trained_run(ctx))
    total = baseline_seconds(ctx)[1]
    survived, notes = 0, []
    for t in range(tries):
        run = ctx.work / "runs" / f"ddp{t}"
        port = random.Random(ctx.seed * 100 + t).randint(20000, 40000)
        cmd = torchrun_cmd(2, port, "pretrain", *pretrain_args(ctx, run))
        p = ctx.spawn(log=ctx.path("logs", f"ddp{t}.log"), cmd=cmd)
        _wait_for_checkpoint(p, run, 6 * total)
        victim = _rank_pid(p.pid, 1) if p.poll() is None else None
        if victim:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
        kill_group(p)
        exit_s = time.monotonic() - t0
        port = random.Random(ctx.seed * 100 + t + 50).randint(40001, 60000)
        resume = ctx.cli(cmd=torchrun_cmd(2, port, "pretrain", *pretrain_args(ctx, run)), timeout=600)
        end = final_step(run)
        ok = victim is not None and rc not in (0, None) and resume.rc == 0 and end == expected
        survived += ok
        notes.append(f"try {t}: SIGKILLed rank 1 {'(pid ' + str(victim) + ')' if victim else 'NOT FOUND'} after the first"
                     f" checkpoint; torchrun exit {rc} after {exit_s:.0f} s (limit {limit:.0f}); relaunch with"
                     f" resume=auto rc={resume.rc}, final step {end} (uninterrupted: {expected})"
                     + ("" if ok else f" [{resume.tail()}]"))
    return [Row("distributed: one of 2 torchrun ranks SIGKILLed", tries, survived, 0, "; ".join(notes))]


# -- full disk ----------------------------------------------------------------------------------
def disk_full_checkpoint(ctx: Ctx) -> list[Row]:
    """Resume a finished run to more steps on a disk with room for less than one more checkpoint."""
    src = trained_run(ctx)
    used = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    ckpt = max(f.stat().st_size for f in checkpoints(src))
    mnt = ctx.work / "full-disk" / "ckpt"
    with small_dir(mnt, used + ckpt // 2, ckpt // 2) as (popen, how):
        run = trained_run(ctx, copy_to=mnt / "run")
        before, _ = load_steps(run)
        p = ctx.cli("pretrain", *pretrain_args(ctx, run, run_steps(ctx) + 4), timeout=600, env=child_env(), **popen)
        after, bad = load_steps(run)
    kept = all(after.get(k) == v for k, v in before.items())
    ok = p.rc not in (0, None) and says_disk_full(p) and not p.traceback and kept and not bad
    return [Row(f"disk full ({how}): checkpoint write", 1, int(ok), len(bad) + (not kept),
                f"rc={p.rc}; {len(before)} earlier checkpoint(s) {'intact' if kept else 'CHANGED'}, "
                f"unreadable: {bad or 'none'}; {p.message()}" + (" [Python traceback]" if p.traceback else ""))]
