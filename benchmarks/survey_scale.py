"""Survey scale on the CPU (issue 23 item 6): time and peak RAM of ``embed --out DIR/``, ``similar``
and ``anomalies`` over N synthetic galaxies, and ``predict`` throughput before/after the survey
loader (issue 23 item 5) on a subset.

    OMP_NUM_THREADS=1 python -m benchmarks.survey_scale [--n 100000] [--predict-n 10000] [--work DIR]

Renders ``--n`` demo galaxies (64 px), prepares them into shards of 500, writes a random-init
``convnext_atto`` export with a Dirichlet head (time and memory do not depend on the weights), then
runs each step as its own ``hybridssl`` process under ``/usr/bin/time -v`` (wall time, peak RSS).
``predict --out DIR/`` runs on the first ``--predict-n`` galaxies with this checkout and with the
package as it was at each ``--before-ref`` (taken with ``git archive``; skipped outside a git
checkout), ``--repeats`` times each, alternating (on a shared machine one run of each is not a
comparison), and each version's folder is compared with this checkout's. Writes ``--result`` (default
``benchmarks/results/survey-scale-cpu.json``); ``--work`` (default a temp folder) is deleted unless
``--keep``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "survey-scale-cpu.json"
BEFORE_REF = "4adc2e1f^"  # the package before the survey loader and the posterior pool (issue 23 item 5)


def timed(name: str, argv: list[str], log: Path, pythonpath: Path = ROOT) -> dict:
    """Run ``hybridssl argv`` under ``/usr/bin/time -v``: its wall seconds and peak RSS (MB)."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "hybridssl.cli", *argv]
    with open(log / f"{name}.log", "w") as f:  # run inside the package's folder: `-m` puts it first on sys.path
        rc = subprocess.run(cmd, env=env, cwd=pythonpath, stdout=f, stderr=subprocess.STDOUT).returncode
    text = (log / f"{name}.log").read_text()
    if rc != 0:
        raise SystemExit(f"{name}: exit {rc}; see {log / name}.log:\n{text[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    secs = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", text).group(1)) for k in ("User", "System"))
    print(f"{name}: {secs:.1f} s, {cpu:.1f} CPU s, peak {kb / 1024:.0f} MB", flush=True)
    # CPU seconds (user + system): the work done, which other jobs on a shared machine barely change
    out = {"seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(kb / 1024, 1)}
    shards = re.search(r"written by rank \d+ in ([\d.]+) s\)", text)  # embed/predict: the shard loop alone
    return {**out, "shard_loop_seconds": float(shards.group(1))} if shards else out


def subset_catalog(catalog: Path, n: int, out: Path) -> Path:
    import pandas as pd

    pd.read_parquet(catalog).head(n).to_parquet(out)
    return out


def package_at(ref: str, out: Path) -> Path | None:
    """The package (and the configs it links to) as at git ``ref``, extracted under ``out``."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "hybridssl", "configs"],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"predict at {ref}: skipped (not readable with git: {e})", file=sys.stderr)
        return None
    out.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def max_abs_difference(a: Path, b: Path) -> float:
    """Largest difference between two predict folders' numeric columns (rows in id order)."""
    import numpy as np
    import pandas as pd

    x, y = (pd.read_parquet(p).sort_values("id_str").reset_index(drop=True) for p in (a, b))
    if list(x["id_str"]) != list(y["id_str"]):
        raise SystemExit(f"{a} and {b}: different galaxies")
    cols = [c for c in x.columns if c in y.columns and pd.api.types.is_numeric_dtype(x[c])]
    return float(max(np.nanmax(np.abs(x[c].to_numpy(float) - y[c].to_numpy(float))) for c in cols))


def folder_bytes(folder: Path) -> int:
    """Bytes of the files in ``folder`` (for embeddings: the parts plus ``_features.npy``)."""
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def survey_rows(folder: Path) -> int:
    return int(json.loads((folder / "_manifest.json").read_text())["n_rows"])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="galaxies to embed")
    p.add_argument("--predict-n", type=int, default=10_000, help="galaxies to predict, before and after")
    p.add_argument("--shard-size", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=0, help="loader workers of embed/predict (0: the CPU default)")
    p.add_argument("--repeats", type=int, default=3, help="predict runs of each version (the median is kept)")
    p.add_argument("--arch", default="convnext_atto")
    p.add_argument("--before-ref", nargs="*", default=[BEFORE_REF], help="git revisions to time `predict` at")
    p.add_argument("--work", type=Path, help="working folder (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep --work")
    p.add_argument("--result", type=Path, default=RESULT)
    args = p.parse_args(argv)
    from benchmarks.predict_throughput import random_export

    work = Path(args.work or tempfile.mkdtemp(prefix="survey-scale-")).resolve()
    log = work / "logs"
    log.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    steps, rows = {}, {}
    try:
        steps["demo_data"] = timed("demo_data", [
            "demo-data", str(work / "data"), "--n-labelled", "0", "--n-unlabelled", str(args.n),
            "--n-downstream", "0", "--size", "64", "--workers", "1"], log)
        catalog = work / "data" / "unlabelled.parquet"
        steps["prepare"] = timed("prepare", [
            "prepare", "--catalog", str(catalog), "--out", str(work / "shards"), "--unlabelled",
            "--image-size", "64", "--shard-size", str(args.shard_size), "--workers", "1"], log)
        model = random_export(work / "export", args.arch, 64)
        common = ["--model", str(model), "--batch-size", str(args.batch_size), "--workers", str(args.workers),
                  "--device", "cpu"]
        steps["embed"] = timed("embed", ["embed", *common, "--shards", str(work / "shards"),
                                         "--out", f"{work / 'emb'}/"], log)
        rows["embed"] = survey_rows(work / "emb")
        import pandas as pd

        ids = pd.read_parquet(catalog, columns=["id_str"])["id_str"]
        emb = ["--embeddings", f"{work / 'emb'}/"]
        query = ["similar", *emb, "--query", ids.iloc[len(ids) // 2], "--k", "10"]
        steps["similar_first"] = timed("similar_first", [*query, "--out", str(work / "similar.csv")], log)
        steps["similar"] = timed("similar", query, log)
        steps["similar_ann_build"] = timed("similar_ann_build", [*query, "--ann"], log)  # builds the HNSW index
        steps["similar_ann"] = timed("similar_ann", [*query, "--ann"], log)  # reads it
        rows["similar"] = len(pd.read_csv(work / "similar.csv"))
        interesting = ",".join(ids.iloc[:: max(1, len(ids) // 5)][:5])
        anomalies = ["anomalies", *emb, "--labelled-interesting", interesting]
        steps["anomalies"] = timed("anomalies", anomalies, log)  # the top 20 only
        steps["anomalies_out"] = timed("anomalies_out", [*anomalies, "--out", str(work / "anomalies.csv")], log)
        rows["anomalies_ranked"] = len(pd.read_csv(work / "anomalies.csv"))  # every galaxy but the 5 examples

        sub = subset_catalog(catalog, args.predict_n, work / "data" / "subset.parquet")
        timed("prepare_subset", ["prepare", "--catalog", str(sub), "--out", str(work / "subset"), "--unlabelled",
                                 "--image-size", "64", "--shard-size", str(args.shard_size), "--workers", "1"], log)
        pred = ["predict", *common, "--shards", str(work / "subset")]
        refs = {f"predict_at_{re.sub(r'[^0-9A-Za-z]', '_', ref)}": ref for ref in args.before_ref}
        olds = {name: package_at(ref, work / name) for name, ref in refs.items()}
        versions = {"predict_after": ROOT, **{name: old for name, old in olds.items() if old}}
        runs = {name: [] for name in versions}
        for r in range(args.repeats):  # interleaved, so a shared machine's load falls on both alike
            for name, package in versions.items():
                runs[name].append(timed(f"{name}_{r}", [*pred, "--out", f"{work / f'{name}_{r}'}/"], log, package))
        for name, done in runs.items():
            steps[name] = {**sorted(done, key=lambda t: t["shard_loop_seconds"])[len(done) // 2],
                           **{f"{k}_each": [t[k] for t in done] for k in ("shard_loop_seconds", "cpu_seconds")}}
            rows[name] = survey_rows(work / f"{name}_0")
        diff = {name: max_abs_difference(work / f"{name}_0", work / "predict_after_0") for name in versions
                if name != "predict_after"}
        for name, n in {"embed": args.n, **{name: args.predict_n for name in versions}}.items():
            steps[name]["galaxies_per_s"] = round(n / steps[name]["seconds"], 1)
            steps[name]["shard_loop_galaxies_per_s"] = round(n / steps[name]["shard_loop_seconds"], 1)
        sizes = {name: round(folder_bytes(work / name) / 2 ** 20, 1)
                 for name in ("emb", *(f"{v}_0" for v in versions))}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    import torch

    result = {"what": "survey scale on the CPU: each step one `hybridssl` process, wall time and peak RSS "
                      "from /usr/bin/time -v; shard_loop: embed/predict less start-up, as they print it; "
                      "predict: the run with the median shard loop of --repeats, alternating versions; "
                      "similar_first also checks every part and writes _features.npy; similar_ann_build "
                      "builds the FAISS HNSW index, similar_ann reads it; anomalies_out writes the whole ranking",
              "n": args.n, "predict_n": args.predict_n, "image_size": 64, "arch": args.arch,
              "shard_size": args.shard_size, "batch_size": args.batch_size, "workers": args.workers,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count(),
              "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
              "before_refs": {name: ref for name, ref in refs.items() if name in versions},
              "predict_max_abs_difference_from_after": diff,
              "folder_mb": sizes, "rows": rows, "steps": steps,
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.result}")
    return result


if __name__ == "__main__":
    main()
