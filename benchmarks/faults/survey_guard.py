"""Per-shard outputs (issue 24): `predict`/`embed --out DIR/` half written, then its model or
its shard set changes under it; the next run into DIR is refused, naming what changed, and the
rows already written stay as they were (no file rewritten, no `_manifest.json` over two inputs)."""
from __future__ import annotations

import shutil

from benchmarks.faults.data import prepare_args
from benchmarks.faults.harness import Ctx, Row, child_env, refused_naming, write_catalog
from benchmarks.faults.training import checkpoints, trained_run
from hybridssl.apply.survey import OUT_MANIFEST
from hybridssl.storage.shards import sha256_file


def _task(ctx: Ctx, task: int, cmd: str, model, shards, out):
    """Task ``task`` of a 2-task SLURM array: its half of the shards; only the last to finish
    writes the manifest, so after task 0 alone the folder is a run left half done."""
    env = child_env(SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_COUNT=2)
    return ctx.cli(cmd, "--model", model, "--shards", shards, "--out", f"{out}/", timeout=300, env=env)


def _parts(out) -> dict:
    return {p.name: sha256_file(p) for p in sorted(out.glob("*.parquet"))}


def _resume_after(ctx: Ctx, name: str, cmd: str, model, shards, out, change, says: list[str]) -> Row:
    """Half of ``cmd`` into ``out``, ``change()`` its inputs, then the other half."""
    shutil.rmtree(out, ignore_errors=True)
    first = _task(ctx, 0, cmd, model, shards, out)
    before = _parts(out)
    if first.rc != 0 or not before:
        raise RuntimeError(f"the first half of {cmd} failed: {first.tail()}")
    change()
    p = _task(ctx, 1, cmd, model, shards, out)
    ok, detail = refused_naming(p, *says)
    after = _parts(out)
    rewritten = sorted(n for n in before if after.get(n) != before[n])
    added = sorted(set(after) - set(before))
    mixed = (out / OUT_MANIFEST).exists()
    ok = ok and not rewritten and not added and not mixed
    return Row(f"per-shard {cmd} resumed after {name}", 1, int(ok), len(rewritten) + len(added),
               f"{detail}; {len(before)} part(s) from the first half: {len(rewritten)} changed, {len(added)} "
               f"added, {OUT_MANIFEST} {'WRITTEN' if mixed else 'not written'}", seconds=first.seconds + p.seconds)


def resume_changed_inputs(ctx: Ctx) -> list[Row]:
    run = trained_run(ctx)
    model = ctx.work / "survey" / "model"
    shutil.rmtree(model, ignore_errors=True)
    exported = ctx.cli("export", run, "--out", model, timeout=300)
    if exported.rc != 0:
        raise RuntimeError(f"export failed: {exported.tail()}")
    oldest = min(checkpoints(run))

    def export_older():
        p = ctx.cli("export", oldest, "--out", model, timeout=300)
        if p.rc != 0:
            raise RuntimeError(f"export of {oldest.name} into the same folder failed: {p.tail()}")

    shards = ctx.work / "survey" / "shards"
    shutil.rmtree(shards, ignore_errors=True)
    catalogs = [write_catalog(ctx.work / "survey" / f"catalog{i}", 40, seed=5 + i) for i in (0, 1)]
    made = ctx.cli(*prepare_args(catalogs[0], shards, 10, 1), timeout=300)
    if made.rc != 0:
        raise RuntimeError(f"prepare failed: {made.tail()}")

    def reprepare():
        shutil.rmtree(shards)
        p = ctx.cli(*prepare_args(catalogs[1], shards, 10, 1), timeout=300)
        if p.rc != 0:
            raise RuntimeError(f"prepare of the second catalog failed: {p.tail()}")

    return [_resume_after(ctx, f"another checkpoint ({oldest.name}) was exported into its --model folder",
                          "predict", model, shards, ctx.work / "survey" / "predictions", export_older,
                          ["the model's files changed", "model.safetensors"]),
            _resume_after(ctx, "its shard set was re-prepared from another catalog", "embed", model, shards,
                          ctx.work / "survey" / "embeddings", reprepare, ["the shard set's manifest changed"])]
