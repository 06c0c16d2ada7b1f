"""The shipped real galaxies (data_prep/galaxies/) -> the shard sets every real-data run uses.

    python -m benchmarks.real_data OUT [--image-size 64] [--workers 2] [--limit N]

Writes ``OUT/data/*.csv`` (the shipped catalogs with absolute image paths, cut to ``--limit``
rows for tiny runs) and prepares, with the normal ``hybridssl prepare``:

- ``OUT/shards/gz1``: GZ1 pretraining galaxies, labelled by pseudo-votes (class map
  ``gz1_to_gz2``); pretraining reads them as the labelled stream and again as unlabelled images;
- ``OUT/shards/gz2_pool``: the GZ2-challenge galaxies, unlabelled;
- ``OUT/shards/rings``, ``OUT/shards/mergers``: the downstream tasks (label + ``split`` in meta);
  no task galaxy is in either pretraining set (checked by image: data_prep/galaxies/overlaps.py).

Used by benchmarks/demo.sh, benchmarks/benchmark_real.py and benchmarks/real_sweep.py.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from hybridssl.cli import main as hybridssl

GALAXIES = Path(__file__).resolve().parents[1] / "data_prep" / "galaxies"
# name -> (catalog under GALAXIES, downstream label column or None, extra prepare flags)
SETS = {
    "gz1": ("sdss_gz1/pretrain.csv", None, ["--class-column", "gz1_class_name", "--class-votes", "gz1_to_gz2"]),
    "gz2_pool": ("sdss_gz2_kaggle/catalog.csv", None, ["--unlabelled"]),
    "rings": ("decals_rings_dev/rings_split.csv", "ring", ["--unlabelled", "--keep-columns", "ring,split"]),
    "mergers": ("sdss_gz1/mergers_task.csv", "merger",
                ["--unlabelled", "--keep-columns", "merger,split,gz1_class_name"]),
}


def write_catalog(name: str, out: Path, limit: int | None) -> Path:
    """The shipped catalog with absolute image paths; ``limit`` rows (a task keeps every
    (split, label) group, evenly) for tiny runs."""
    rel, label, _ = SETS[name]
    df = pd.read_csv(GALAXIES / rel, dtype=str)
    if limit is not None:
        df = (df.groupby(["split", label], sort=False).head(math.ceil(limit / 4)) if label else df.head(limit))
    df["file_loc"] = [str((GALAXIES / rel).parent / f) for f in df.file_loc]
    path = out / "data" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def prepare_all(out: Path, image_size: int, workers: int, limit: int | None = None) -> dict[str, Path]:
    """Prepare every set (an up-to-date one is kept as it is); name -> shard directory."""
    shards = {}
    for name, (_, _, flags) in SETS.items():
        catalog = write_catalog(name, out, limit)
        shards[name] = out / "shards" / name
        rc = hybridssl(["prepare", "--catalog", str(catalog), "--out", str(shards[name]), "--image-size",
                        str(image_size), "--workers", str(workers), "--strict", *flags])
        if rc:
            raise SystemExit(f"real_data: preparing {name} failed (exit {rc})")
    return shards


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="rows per catalog (tiny test runs)")
    a = p.parse_args(argv)
    prepare_all(a.out, a.image_size, a.workers, a.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
