"""``hybridssl demo-data OUT_DIR``: write the synthetic demo dataset (catalogs, images, montage)."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from hybridssl.cli import int_at_least

_non_negative = int_at_least(0)


def _image_size(text: str) -> int:
    value = int(text)
    if not 16 <= value <= 512:
        raise argparse.ArgumentTypeError(f"image size must be 16..512 px, got {value}")
    return value


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", type=Path, help="output folder (catalogs, images/, downstream/)")
    parser.add_argument("--n-labelled", type=_non_negative, default=6000,
                        help="galaxies with simulated volunteer votes, spread over the schema's campaigns")
    parser.add_argument("--n-unlabelled", type=_non_negative, default=6000,
                        help="galaxies without votes, mixing every survey style")
    parser.add_argument("--n-downstream", type=_non_negative, default=3000,
                        help="DECaLS-like galaxies of the ring-finding task (half with a ring a volunteer "
                             "could see, half matched to them without)")
    parser.add_argument("--n-heldout", type=_non_negative, default=0,
                        help="extra labelled galaxies never used for training (heldout.parquet), "
                             "for `hybridssl calibrate`")
    parser.add_argument("--size", type=_image_size, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same files")
    parser.add_argument("--workers", type=_non_negative, default=min(4, os.cpu_count() or 1),
                        help="rendering processes (0 or 1: in this process)")
    parser.add_argument("--schema", default="gz_evo_v0.1", help="label schema name or YAML path")
    parser.add_argument("--montage", type=Path, default=None,
                        help="montage PNG of examples per campaign (default: OUT_DIR/montage.png)")


def run(args) -> int:
    from data_prep.synthetic.writer import generate

    start = time.perf_counter()
    montage = args.montage or args.out_dir / "montage.png"
    frames = generate(args.out_dir, args.n_labelled, args.n_unlabelled, args.n_downstream, args.size,
                      args.seed, args.workers, montage, args.schema, args.n_heldout)
    counts = ", ".join(f"{len(df)} {name}" for name, df in frames.items())
    print(f"demo-data: wrote {counts} galaxies at {args.size}px to {args.out_dir} "
          f"in {time.perf_counter() - start:.1f}s; montage {montage}")
    return 0
