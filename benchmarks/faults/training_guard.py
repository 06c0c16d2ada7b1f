"""Faults that guard a run directory (issue 15): two runs on one out_dir, a config changed between
kill and resume, a diverging run, temp files a kill leaves, a frozen (SIGSTOP) DDP rank; finetune's
divergence guard, regression-label check and writer lock (issue 24)."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.faults.data import labelled_catalog, labelled_shards, prepare_args
from benchmarks.faults.harness import Ctx, Row, kill_group, refused_naming, save_catalog, torchrun_cmd
from benchmarks.faults.training import (_rank_pid, _wait_for_checkpoint, baseline_seconds, checkpoints, exported_run,
                                        load_steps, pretrain_args, run_steps, trained_run)
from hybridssl.storage.locks import LOCK_FILE

TORCHRUN_FAILED_WORKER_GRACE_S = 30  # torch.distributed.elastic: SIGTERM, then SIGKILL after 30 s


def concurrent_pretrain(ctx: Ctx) -> list[Row]:
    """A second `pretrain` on a running run's out_dir refuses; after the first is SIGKILLed its
    stale lock is taken over by the relaunch, which finishes."""
    run = ctx.work / "runs" / "locked"
    shutil.rmtree(run, ignore_errors=True)
    first = ctx.spawn("pretrain", *pretrain_args(ctx, run, 10_000), log=ctx.path("logs", "locked-first.log"))
    t0 = time.monotonic()
    while first.poll() is None and not (run / LOCK_FILE).exists() and time.monotonic() - t0 < 300:
        time.sleep(0.05)
    second = ctx.cli("pretrain", *pretrain_args(ctx, run), timeout=300)
    still_running = first.poll() is None
    before, _ = load_steps(run)
    kill_group(first)
    ok, detail = refused_naming(second, "is in use by pretrain", str(first.pid))
    after, _ = load_steps(run)
    relaunch = ctx.cli("pretrain", *pretrain_args(ctx, run, max(after.values(), default=0) + 2), timeout=600)
    took_over = "stale lock" in relaunch.err and relaunch.rc == 0
    return [Row("two pretrain runs on one out_dir (then SIGKILL and relaunch)", 1,
                int(ok and still_running and took_over), 0,
                f"second run {detail}; first run {'still training' if still_running else 'HAD ENDED'} "
                f"({len(before)} checkpoint(s)); after SIGKILL of the first, relaunch rc={relaunch.rc}, "
                f"{'took over the stale lock' if took_over else 'DID NOT take over: ' + relaunch.tail()}")]


def resume_config_change(ctx: Ctx) -> list[Row]:
    """Resume a finished run with another batch size: refused naming it; allowed when named in
    resume_allow_changes (and recorded under launches/); a change of weight shapes is one line."""
    run = trained_run(ctx, copy_to=ctx.work / "runs" / "changed")
    more = run_steps(ctx) + 2
    before, _ = load_steps(run)
    refused = ctx.cli("pretrain", *pretrain_args(ctx, run, more, None, "data.batch_size=4"), timeout=300)
    ok1, d1 = refused_naming(refused, "data.batch_size: 8 -> 4", "resume_allow_changes")
    ok1 = ok1 and load_steps(run)[0] == before
    allowed = ctx.cli("pretrain", *pretrain_args(ctx, run, more, None, "data.batch_size=4",
                                                 "resume_allow_changes=[data.batch_size]"), timeout=600)
    records = sorted(p.name for p in (run / "launches").glob("*.yaml"))
    ok2 = allowed.rc == 0 and max(load_steps(run)[0].values()) == more and len(records) == 2
    shapes = ctx.cli("pretrain", *pretrain_args(ctx, run, more + 2, None, "data.batch_size=4",
                                                "model.projection_dim=16",
                                                "resume_allow_changes=[data.batch_size,model.projection_dim]"),
                     timeout=300)
    ok3, d3 = refused_naming(shapes, "does not fit this model")
    return [Row("config changed between kill and resume", 1, int(ok1), 0, d1, seconds=refused.seconds),
            Row("config change named in resume_allow_changes", 1, int(ok2), 0,
                f"rc={allowed.rc}, final step {max(load_steps(run)[0].values())} (asked {more}); launch records "
                f"{records}" + ("" if allowed.rc == 0 else f" [{allowed.tail()}]"), seconds=allowed.seconds),
            Row("allowed change that alters weight shapes", 1, int(ok3), 0, d3, seconds=shapes.seconds)]


def _finite(path: Path) -> bool:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def diverging_run(ctx: Ctx) -> list[Row]:
    """An absurd learning rate: the run stops with a clear error, every checkpoint it leaves is
    finite, and a checkpoint holding NaN weights is not exported."""
    run = ctx.work / "runs" / "diverged"
    shutil.rmtree(run, ignore_errors=True)
    p = ctx.cli("pretrain", *pretrain_args(ctx, run, 40, None, "optim.base_lr=1e30", "trainer.gradient_clip_val=0",
                                           "trainer.checkpoint_every_n_steps=1", "trainer.keep_checkpoints=-1"),
                timeout=600)
    ok1, d1 = refused_naming(p, "not finite at step")
    nan_saved = [c.name for c in checkpoints(run) if not _finite(c)]
    src = trained_run(ctx, copy_to=ctx.work / "runs" / "nan-weights")
    ckpt = max(checkpoints(src))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    key = next(k for k, v in state["state_dict"].items() if k.startswith("model.backbone.") and v.is_floating_point())
    state["state_dict"][key] = torch.full_like(state["state_dict"][key], float("nan"))
    torch.save(state, ckpt)
    export = ctx.cli("export", ckpt, "--out", ctx.work / "export" / "nan", timeout=300)
    ok2, d2 = refused_naming(export, "NaN or infinity")
    return [Row("diverging run (base_lr=1e30)", 1, int(ok1 and not nan_saved), len(nan_saved),
                f"{d1}; {len(checkpoints(run))} checkpoint(s) left, non-finite: {nan_saved or 'none'}",
                seconds=p.seconds),
            Row("export of a checkpoint with NaN weights", 1, int(ok2), 0, d2, seconds=export.seconds)]


def _finetune_args(ctx: Ctx, out: Path, *extra) -> list:
    """A tiny finetune (the votes task) of the suite's export on its labelled shards."""
    return ["finetune", "--model", exported_run(ctx), "--shards", labelled_shards(ctx), "--task", "votes",
            "--batch-size", "8", "--out", out, *extra]


def finetune_diverging(ctx: Ctx) -> list[Row]:
    """`finetune lr=1e30`: stops with one line, every checkpoint it leaves is finite, nothing exported."""
    out = ctx.work / "finetune" / "diverged"
    shutil.rmtree(out, ignore_errors=True)
    p = ctx.cli(*_finetune_args(ctx, out, "epochs=2", "lr=1e30"), timeout=600)
    ok, detail = refused_naming(p, "not finite at step")
    nan_saved = [c.name for c in out.rglob("*.ckpt") if not _finite(c)]
    exported = _exported(out)
    return [Row("finetune diverging (lr=1e30)", 1, int(ok and not nan_saved and not exported),
                len(nan_saved) + len(exported), f"{detail}; non-finite checkpoints: {nan_saved or 'none'}; "
                f"exported: {exported or 'nothing'}", seconds=p.seconds)]


def _regression_shards(ctx: Ctx) -> Path:
    """The suite's catalog with a finite float32 column ``huge`` of +-3e38, prepared with it kept."""
    def make():
        df = pd.read_parquet(labelled_catalog(ctx))
        df["huge"] = np.where(np.arange(len(df)) % 2, 3e38, -3e38).astype(np.float32)
        catalog = save_catalog(df, labelled_catalog(ctx).parent / "huge.parquet")
        out = ctx.work / "shards" / "huge"
        p = ctx.cli(*prepare_args(catalog, out, 40, 1, "--keep-columns", "huge"), timeout=300)
        if p.rc != 0:
            raise RuntimeError(f"prepare with --keep-columns huge failed: {p.tail()}")
        return out
    return ctx.cached("huge-shards", make)


def finetune_huge_labels(ctx: Ctx) -> list[Row]:
    """Regression labels near +-3e38 (finite in float32, but their spread is not): one line naming
    the column, nothing exported (they used to train NaN weights that predict read as class 0)."""
    out = ctx.work / "finetune" / "huge"
    shutil.rmtree(out, ignore_errors=True)
    p = ctx.cli("finetune", "--model", exported_run(ctx), "--shards", _regression_shards(ctx), "--task",
                "regression", "--label-column", "huge", "--batch-size", 8, "--out", out, "epochs=1", timeout=600)
    ok, detail = refused_naming(p, "'huge'", "too large for float32")
    exported = _exported(out)
    return [Row("finetune regression labels near +-3e38", 1, int(ok and not exported), len(exported),
                f"{detail}; exported: {exported or 'nothing'}", seconds=p.seconds)]


def _exported(out: Path) -> list[str]:
    return [f for f in ("config.json", "model.safetensors", "head.safetensors", "task_head.safetensors")
            if (out / f).exists()]


def _wait_for_file(p, path: Path, limit: float = 300) -> bool:
    """True once ``path`` holds bytes while ``p`` runs; False if ``p`` ended first."""
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < limit:
        if path.exists() and path.stat().st_size:
            return True
        time.sleep(0.05)
    return False


def finetune_into_running_pretraining(ctx: Ctx) -> list[Row]:
    """A finetune into the out_dir of a pretraining that is running: refused naming the holder,
    no finetune file written there, the pretraining still going."""
    run = ctx.work / "runs" / "busy"
    shutil.rmtree(run, ignore_errors=True)
    pretrain = ctx.spawn("pretrain", *pretrain_args(ctx, run, 10_000), log=ctx.path("logs", "busy-pretrain.log"))
    try:
        held = _wait_for_file(pretrain, run / LOCK_FILE)  # the holder record is written
        p = ctx.cli(*_finetune_args(ctx, run, "epochs=1"), timeout=300)
        running = pretrain.poll() is None
    finally:
        kill_group(pretrain)
    ok, detail = refused_naming(p, "is in use by pretrain", str(pretrain.pid))
    written = [f for f in ("finetune.yaml", *_exported(run)) if (run / f).exists()]
    return [Row("finetune into a running pretraining's out_dir", 1, int(ok and held and running and not written),
                len(written), f"{detail}; pretraining {'still running' if running else 'HAD ENDED'}; finetune files "
                f"written there: {written or 'none'}", seconds=p.seconds)]


def two_finetunes(ctx: Ctx) -> list[Row]:
    """A second finetune on the --out of one that is running: refused naming the first; the
    folder keeps the first's settings (it used to end with the other's classifier)."""
    out = ctx.work / "finetune" / "twice"
    shutil.rmtree(out, ignore_errors=True)
    settings = out / "finetune.yaml"  # written by the first once it holds the folder
    first = ctx.spawn(*_finetune_args(ctx, out, "epochs=500"), log=ctx.path("logs", "finetune-first.log"))
    try:
        held = _wait_for_file(first, settings)
        before = settings.read_bytes() if held else b""
        second = ctx.cli(*_finetune_args(ctx, out, "epochs=1", "lr=0.5"), timeout=300)
        running = first.poll() is None
    finally:
        kill_group(first)
    ok, detail = refused_naming(second, "is in use by finetune", str(first.pid))
    kept = held and settings.read_bytes() == before and b"epochs: 500" in before and not _exported(out)
    return [Row("two finetunes on one --out", 1, int(ok and held and running and kept), int(not kept),
                f"second {detail}; first {'still running' if running else 'HAD ENDED'}; finetune.yaml and "
                f"exports {'still the first run' if kept else 'CHANGED'}", seconds=second.seconds)]


def temp_checkpoints(ctx: Ctx) -> list[Row]:
    """What kills leave in checkpoints/ (a temp file, more step files than keep_checkpoints) is
    gone after the next resume; keep_checkpoints holds across launches."""
    run = trained_run(ctx, copy_to=ctx.work / "runs" / "leftovers")
    ckpt_dir = run / "checkpoints"
    temp = ckpt_dir / ".step00000099.ckpt.k1ll3d.tmp"
    temp.write_bytes(os.urandom(4096))
    oldest = min(checkpoints(run))
    for step in (1, 3):  # older step files a previous launch's ModelCheckpoint no longer tracks
        shutil.copy(oldest, ckpt_dir / f"step{step:08d}.ckpt")
    p = ctx.cli("pretrain", *pretrain_args(ctx, run, run_steps(ctx) + 4), timeout=600)
    left = sorted(c.name for c in ckpt_dir.iterdir())
    ok = p.rc == 0 and not temp.exists() and len(left) <= 3  # pretrain_args keeps 3
    return [Row("temp checkpoint and extra checkpoints left by kills, then resume", 1, int(ok),
                int(temp.exists()), f"rc={p.rc}; checkpoints/ now holds {left} (keep_checkpoints=3)",
                seconds=p.seconds)]


def ddp_frozen_rank(ctx: Ctx) -> list[Row]:
    """SIGSTOP rank 1 of 2 torchrun ranks after a checkpoint. Rank 0 fails after
    trainer.ddp_timeout_s; torchrun then SIGTERMs the frozen rank (which cannot act on it) and
    SIGKILLs it 30 s later (fixed for a failed worker; ``--shutdown-timeout`` only applies when
    torchrun itself is signalled): the bound is the sum, plus start-up and teardown."""
    timeout_s, grace_s, slack_s = 10, TORCHRUN_FAILED_WORKER_GRACE_S, 20
    run = ctx.work / "runs" / "ddp-frozen"
    shutil.rmtree(run, ignore_errors=True)
    port = random.Random(ctx.seed * 100 + 77).randint(20000, 40000)
    cmd = torchrun_cmd(2, port, "pretrain", *pretrain_args(ctx, run, 10_000, None,
                                                           f"trainer.ddp_timeout_s={timeout_s}"))
    p = ctx.spawn(log=ctx.path("logs", "ddp-frozen.log"), cmd=cmd)
    _wait_for_checkpoint(p, run, 6 * baseline_seconds(ctx)[1])
    victim = _rank_pid(p.pid, 1) if p.poll() is None else None
    if victim:
        os.kill(victim, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        rc = p.wait(timeout=timeout_s + grace_s + 120)
    except subprocess.TimeoutExpired:
        rc = None
    exit_s = time.monotonic() - t0
    kill_group(p)
    gone = victim is not None and not Path(f"/proc/{victim}").exists()
    if victim and not gone:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    bound = timeout_s + grace_s + slack_s
    ok = victim is not None and rc not in (0, None) and exit_s <= bound and gone
    return [Row("distributed: one of 2 torchrun ranks frozen (SIGSTOP)", 1, int(ok), 0,
                f"SIGSTOPped rank 1 {'(pid ' + str(victim) + ')' if victim else 'NOT FOUND'} after the first "
                f"checkpoint; torchrun exit {rc} after {exit_s:.0f} s with ddp_timeout_s={timeout_s} (bound {timeout_s} + "
                f"{grace_s} s torchrun grace + {slack_s} s); frozen rank {'reaped' if gone else 'STILL THERE'}")]
