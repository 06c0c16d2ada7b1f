"""Security faults: pickled checkpoints, command-running shard URLs, ids that climb out of --out."""
from __future__ import annotations

import os

import torch

from benchmarks.faults.data import labelled_catalog, prepare_args
from benchmarks.faults.harness import Ctx, Row, save_catalog
from benchmarks.faults.training import newest_checkpoint, pretrain_args, trained_run


class _Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def crafted_checkpoint(path, marker) -> None:
    """Looks like a Lightning checkpoint; loading it with ``weights_only=False`` runs code."""
    torch.save({"state_dict": {"w": torch.zeros(1)}, "global_step": 1, "epoch": 0,
                "hyper_parameters": _Payload(marker)}, path)


def _refused(p, marker) -> tuple[bool, str]:
    ran = marker.exists()
    ok = not ran and not p.traceback and p.rc not in (0, None)
    return ok, (f"{'CODE RAN' if ran else 'no code ran'}; rc={p.rc}: {p.message()}"
                + (" [Python traceback]" if p.traceback else ""))


def pickle_checkpoint(ctx: Ctx) -> list[Row]:
    root = ctx.work / "security"
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    marker = root / "exported-code-ran"
    evil = root / "evil.ckpt"
    crafted_checkpoint(evil, marker)
    p = ctx.cli("export", evil, "--out", root / "export", timeout=180)
    ok, detail = _refused(p, marker)
    ok = ok and not (root / "export" / "model.safetensors").exists()
    rows.append(Row("security: pickle checkpoint -> `hybridssl export`", 1, int(ok), 0, detail))

    run = trained_run(ctx, copy_to=root / "run")
    marker = root / "resumed-code-ran"
    target = newest_checkpoint(run)
    crafted_checkpoint(target, marker)
    os.utime(target)  # the newest file, as if the latest save had been replaced
    p = ctx.cli("pretrain", *pretrain_args(ctx, run), timeout=300)
    ran = marker.exists()
    ok = not ran and not p.traceback and (p.rc not in (0, None) or target.name in p.out + p.err)
    rows.append(Row("security: pickle checkpoint -> `pretrain resume=auto`", 1, int(ok), 0,
                    f"{'CODE RAN' if ran else 'no code ran'}; rc={p.rc}: {p.message()}"))
    return rows


def shell_urls(ctx: Ctx) -> list[Row]:
    """`pipe:` shard sets must be refused unless explicitly allowed."""
    root = ctx.work / "security"
    root.mkdir(parents=True, exist_ok=True)
    marker = root / "pipe-ran"
    url = f"pipe:touch {marker} && cat /dev/null"
    p = ctx.cli("pretrain", *pretrain_args(ctx, root / "pipe-run", max_steps=2, labelled=url), timeout=300)
    ok, detail = _refused(p, marker)
    ok = ok and "pipe" in p.err
    return [Row("security: `pipe:` shard URL refused", 1, int(ok), 0, detail)]


def path_traversal(ctx: Ctx) -> list[Row]:
    """ids such as ``../../x`` and absolute paths: nothing is written outside ``--out``."""
    import pandas as pd
    root = ctx.work / "security" / "traversal"
    df = pd.read_parquet(labelled_catalog(ctx)).head(6).copy()
    escape = ctx.work / "security" / f"escaped-{os.getpid()}"
    evil_ids = ["../../x", "../../../escaped", f"{escape}", "..\\..\\win", "a/../../b"]
    df.loc[: len(evil_ids) - 1, "id_str"] = evil_ids
    df["file_loc"] = [str((labelled_catalog(ctx).parent / f).resolve()) for f in df["file_loc"]]
    catalog = save_catalog(df, root / "catalog.parquet")
    out = root / "a" / "b" / "out"
    before = {p for p in ctx.work.rglob("*")}
    p = ctx.cli(*prepare_args(catalog, out, 10, 1), timeout=300)
    after = {q for q in ctx.work.rglob("*") if q not in before}
    leaked = sorted(str(q.relative_to(ctx.work)) for q in after
                    if out not in q.parents and q != out and q.parent != ctx.work / "logs" and q not in out.parents)
    leaked += [str(escape)] if escape.exists() else []
    ok = not leaked and not p.traceback and p.rc is not None
    return [Row("security: id_str `../../x` stays inside --out", 1, int(ok), len(leaked),
                f"prepare rc={p.rc}; files outside --out: {leaked or 'none'}; {p.tail(120)}")]
