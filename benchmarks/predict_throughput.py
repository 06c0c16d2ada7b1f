"""Images/s of ``hybridssl predict`` on synthetic 64 px galaxies (issue 17 item 3).

    python -m benchmarks.predict_throughput [--n 400] [--arch convnext_atto] [--device cpu] [--threads 1]

Renders ``--n`` demo galaxies, prepares them into shards of 100, writes a random-init export of
``--arch`` with a Dirichlet head (throughput does not depend on the weights), then times
``predict`` into one file and into a per-shard folder (``--out DIR/``), each ``--repeats`` times
end to end (model load, shard reading, JPEG decode, forward, parquet), keeping the median.
Writes ``benchmarks/results/predict-throughput-<device>.json``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

from hybridssl.storage.atomic import atomic_write_text
from hybridssl.cli import main as cli
from hybridssl.export.timm_folder import CONFIG_FILE, HEAD_FILE, MODEL_FILE
from hybridssl.model.heads import DirichletHead
from hybridssl.schema import load_schema

RESULTS = Path(__file__).resolve().parent / "results"


def random_export(out: Path, arch: str, image_size: int) -> Path:
    schema = load_schema("gz_evo_v0.1")
    torch.manual_seed(0)  # the same random weights on every run (speed does not depend on them; outputs do)
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    head = DirichletHead(model.num_features, schema.n_answers, 0.2)
    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / MODEL_FILE))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out / HEAD_FILE))
    mean, std = [0.5] * 3, [0.25] * 3
    info = {"architecture": arch, "num_features": model.num_features, "in_chans": 3, "image_size": image_size,
            "mean": mean, "std": std, "schema": schema.name, "schema_hash": schema.hash, "mode": "scratch",
            "head": {"in_features": model.num_features, "n_answers": schema.n_answers, "dropout": 0.2,
                     "file": HEAD_FILE},
            "pretrained_cfg": {"architecture": arch, "num_classes": 0, "input_size": [3, image_size, image_size],
                               "crop_pct": 1.0, "interpolation": "bilinear", "mean": mean, "std": std}}
    (out / CONFIG_FILE).write_text(json.dumps(info))
    return out


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    assert cli(argv) == 0, argv
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--arch", default="convnext_atto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        assert cli(["demo-data", str(root / "data"), "--n-labelled", "0", "--n-unlabelled", str(args.n),
                    "--n-downstream", "0", "--size", "64", "--workers", "1"]) == 0
        assert cli(["prepare", "--catalog", str(root / "data" / "unlabelled.parquet"), "--out", str(root / "shards"),
                    "--unlabelled", "--image-size", "64", "--shard-size", "100", "--workers", "1"]) == 0
        model = random_export(root / "export", args.arch, 64)
        base = ["predict", "--model", str(model), "--shards", str(root / "shards"), "--batch-size",
                str(args.batch_size), "--device", args.device]
        secs = {"single_file": [], "per_shard": []}
        for r in range(args.repeats):
            secs["single_file"].append(timed([*base, "--out", str(root / f"p{r}.parquet")]))
            secs["per_shard"].append(timed([*base, "--out", f"{root / f'dir{r}'}/"]))
            shutil.rmtree(root / f"dir{r}")
    result = {"what": "hybridssl predict, end to end, images/s (median of repeats)", "arch": args.arch,
              "image_size": 64, "n_images": args.n, "batch_size": args.batch_size, "device": args.device,
              "threads": args.threads, "cpu": platform.processor() or platform.machine(),
              "torch": torch.__version__, "seconds": secs,
              "images_per_s": {k: round(args.n / statistics.median(v), 1) for k, v in secs.items()},
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    out = RESULTS / f"predict-throughput-{args.device.split(':')[0]}.json"
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["images_per_s"]), "->", out)


if __name__ == "__main__":
    main()
