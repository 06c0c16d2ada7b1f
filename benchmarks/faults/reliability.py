"""Issue 24 (reliability, round three): outputs that would destroy inputs, float bands without
signal, loose export configs, loud errors due one line, quiet mistakes due a warning."""
from __future__ import annotations

import hashlib

import pandas as pd

from benchmarks.faults.data import labelled_catalog, labelled_shards
from benchmarks.faults.harness import Ctx, Row
from benchmarks.faults.training import exported_run
from benchmarks.faults.training_guard import _one_line


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs_keep_inputs(ctx: Ctx) -> list[Row]:
    """Each command line names an input (or a file no command wrote) as its output: one line,
    and the file is byte for byte what it was."""
    model, shards, catalog = exported_run(ctx), labelled_shards(ctx), labelled_catalog(ctx)
    picks = ctx.path("outputs", "interesting.csv")
    picks.write_text("id_str\n" + "\n".join(pd.read_parquet(catalog)["id_str"][:3]) + "\n")
    foreign = ctx.path("outputs", "someone_elses.parquet")
    foreign.write_bytes(catalog.read_bytes())
    cases = [
        ("predict --catalog X --out X", ["predict", "--model", model, "--catalog", catalog, "--out", catalog],
         catalog, "is the input --catalog"),
        ("embed --catalog X --out X", ["embed", "--model", model, "--catalog", catalog, "--out", catalog],
         catalog, "is the input --catalog"),
        ("predict --out SHARDS/manifest.json", ["predict", "--model", model, "--shards", shards,
                                                "--out", shards / "manifest.json"],
         shards / "manifest.json", "inside the input --shards"),
        ("predict --out EXPORT/config.json", ["predict", "--model", model, "--shards", shards,
                                              "--out", model / "config.json"], model / "config.json",
         "inside the input --model"),
        ("anomalies --labelled-interesting P --out P",
         ["anomalies", "--embeddings", ctx.work / "outputs" / "none.parquet", "--labelled-interesting", picks,
          "--out", picks], picks, "is the input --labelled-interesting"),
        ("predict --out a parquet hybridssl did not write",
         ["predict", "--model", model, "--shards", shards, "--out", foreign], foreign, "did not write"),
        ("finetune --out inside the shard set", ["finetune", "--model", model, "--shards", shards,
                                                 "--out", shards / "ft"], shards / "manifest.json",
         "inside the input --shards"),
    ]
    rows = []
    for name, args, guarded, words in cases:
        before = _digest(guarded)
        p = ctx.cli(*args, timeout=300)
        kept = _digest(guarded) == before
        ok, detail = _one_line(p, words)
        rows.append(Row(f"output is an input: {name}", 1, int(ok and kept), int(not kept),
                        f"{detail}; {'input intact' if kept else 'INPUT CHANGED'}", seconds=p.seconds))
    return rows
