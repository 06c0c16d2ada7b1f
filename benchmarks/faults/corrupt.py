"""Training over shards whose images cannot be decoded: it completes and counts what it skipped."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pandas as pd

from benchmarks.faults.data import labelled_shards
from benchmarks.faults.harness import Ctx, Row
from benchmarks.faults.training import final_step, pretrain_args
from hybridssl.storage.shards import sha256_file


def _spoil_samples(src: Path, out: Path, every: int = 4) -> int:
    """Copy a shard set with every ``every``-th image replaced by junk bytes (manifest kept
    consistent, so only the samples are bad); returns how many were spoiled."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out)
    manifest = json.loads((out / "manifest.json").read_text())
    spoiled = 0
    for entry in manifest["shards"]:
        path = out / entry["name"]
        with tarfile.open(path) as tf:
            members = [(m, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]
        with tarfile.open(path, "w") as tf:
            images = 0
            for m, payload in members:
                if ".image." in m.name:
                    images += 1
                    if images % every == 0:
                        payload, spoiled = b"\xff\xd8 not a jpeg " + payload[:20], spoiled + 1
                m.size = len(payload)
                tf.addfile(m, io.BytesIO(payload))
        entry.update(sha256=sha256_file(path), bytes=path.stat().st_size)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return spoiled


def skipped_count(run: Path) -> int | None:
    """The skipped-sample count the run logged (CSV metrics column naming 'skip'), if any."""
    counts = []
    for csv in run.rglob("metrics.csv"):
        df = pd.read_csv(csv)
        counts += [df[c].dropna().max() for c in df.columns if "skip" in c.lower() and df[c].notna().any()]
    return int(max(counts)) if counts else None


def corrupt_training(ctx: Ctx) -> list[Row]:
    """Training over shards with undecodable images completes and counts what it skipped."""
    shards = ctx.work / "shards" / "spoiled"
    spoiled = _spoil_samples(labelled_shards(ctx), shards)
    run = ctx.work / "runs" / "spoiled"
    p = ctx.cli("pretrain", *pretrain_args(ctx, run, 6, shards), timeout=600)
    n = skipped_count(run)
    ok = p.rc == 0 and bool(n) and final_step(run) == 6 and not p.traceback
    return [Row("corrupt input: undecodable images during training", 1, int(ok), 0,
                f"{spoiled} of the images spoiled; pretrain rc={p.rc}, logged skipped count {n}, final step"
                f" {final_step(run)}/6" + ("" if ok else f" [{p.tail()}]"))]
