"""The fault-injection suite (issue 8): scripted faults against the real `hybridssl` CLI.

Each fault is a function ``f(ctx) -> list[Row]`` (fault, tries, survived, data_lost, detail),
grouped below by class; ``tests/faults/`` runs every class in its quick size and
``python -m benchmarks.faults [--quick] [--out docs/faults.md]`` runs the suite and writes the
table. A fault whose harness itself breaks is a failed row, so nothing is silently skipped.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path


from benchmarks.faults import (config_guard, configs, corrupt, data, data_guard, reliability, security, survey_guard,
                               training, training_guard)
from benchmarks.faults.harness import Ctx, Row

from hybridssl.cli import progress

FAULTS = {
    "pretrain_kill": [training.pretrain_sigkill],
    "prepare_kill": [data.prepare_sigkill],
    "corrupt_inputs": [data.corrupt_images, data.corrupt_shards, corrupt.corrupt_training],
    "bad_catalogs": [data.bad_catalogs],
    "bad_configs": [configs.bad_configs],
    "distributed": [training.distributed_rank_kill],
    "disk_full": [training.disk_full_checkpoint, data.disk_full_shards],
    "security": [security.pickle_checkpoint, security.shell_urls, security.path_traversal],
    "out_dir_guard": [data_guard.two_prepares, data_guard.out_is_a_file, data_guard.no_inodes],
    "hostile_data": [data_guard.hostile_catalog, data_guard.keep_columns],
    "tampered_manifests": [data_guard.tampered_manifests],
    "run_lock": [training_guard.concurrent_pretrain, training_guard.finetune_into_running_pretraining,
                 training_guard.two_finetunes],
    "resume_changes": [training_guard.resume_config_change],
    "non_finite": [training_guard.diverging_run, training_guard.finetune_diverging, training_guard.finetune_huge_labels],
    "checkpoint_housekeeping": [training_guard.temp_checkpoints],
    "ddp_frozen": [training_guard.ddp_frozen_rank],
    "config_ranges": [config_guard.out_of_range, config_guard.alias_bomb],
    "out_paths": [config_guard.out_is_a_file],
    "tampered_export": [config_guard.tampered_export],
    "outputs_keep_inputs": [reliability.outputs_keep_inputs],
    "float_bands": [reliability.float_bands],
    "export_config": [reliability.export_config],
    "loud_errors": [reliability.loud_errors],
    "quiet_mistakes": [reliability.quiet_mistakes],
    "survey_resume": [survey_guard.resume_changed_inputs],
}


def run_fault(fault, ctx: Ctx) -> list[Row]:
    """One fault function; a crash of the harness becomes a failed row naming the error."""
    t0 = time.monotonic()
    try:
        rows = fault(ctx)
    except Exception as e:  # the suite reports every fault, whatever breaks
        where = traceback.extract_tb(e.__traceback__)[-1]
        rows = [Row(fault.__name__, 1, 0, 0, f"harness could not run it: {type(e).__name__}: {str(e)[:400]}"
                    f" (at {Path(where.filename).name}:{where.lineno})")]
    timed = [r for r in rows if not r.seconds]  # rows that did not time their own command
    rest = time.monotonic() - t0 - sum(r.seconds for r in rows)
    for r in timed:
        r.seconds = max(rest, 0.0) / len(timed)
    return rows


def run_suite(work, quick: bool = True, classes=None, seed: int = 0) -> tuple[list[Row], float]:
    """Every fault of ``classes`` (default all) in one scratch directory; rows and seconds."""
    ctx = Ctx(Path(work), quick=quick, seed=seed)
    todo = [f for c in (classes or FAULTS) for f in FAULTS[c]]
    t0, rows = time.monotonic(), []
    for fault in progress(todo, desc="faults", unit="fault"):
        rows += run_fault(fault, ctx)
    for r in rows:  # the scratch directory is this run's, not the reader's
        r.detail = r.detail.replace(str(ctx.work), "$WORK")
    return rows, time.monotonic() - t0
