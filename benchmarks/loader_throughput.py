"""Shard loader vs a per-file JPEG loader over the same images, same workers, in one run.

Writes N synthetic galaxy-like JPEGs once as files and once (the same bytes) as a shard set,
then times passes of the two loaders alternately (persistent workers, after a warm-up pass each, so
both read from the page cache) and reports the medians and the median of the per-round ratios, so a
busy machine slows both sides alike. Also times the two uint8 decoders (torchvision.io vs PIL) on the
same bytes in one process.

    python benchmarks/loader_throughput.py --quick      # 2 CPU cores, well under a minute
    python benchmarks/loader_throughput.py --n 5000 --image-size 224 --workers 8

``measure(...)`` returns the numbers as a dict for ``benchmarks/throughput.py``.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from hybridssl.cli import progress
from hybridssl.config import load_config
from hybridssl.data import DataConfig, build_train_loader, decode_image
from hybridssl.schema import load_schema
from hybridssl.storage.shards import MANIFEST, SHARD_PATTERN, encode_key, sha256_file


def _jpeg(rng: np.random.Generator, size: int) -> bytes:
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 6) ** 2))
    img = np.clip(rng.normal(30, 10, (size, size, 3)) + blob[..., None] * rng.uniform(100, 220, 3), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_both(root: Path, n: int, size: int, per_shard: int = 256) -> tuple[list[Path], Path]:
    """The same JPEG bytes as loose files and as an unlabelled shard set."""
    rng, schema = np.random.default_rng(0), load_schema("gz_evo_v0.1")
    files, shard_dir = [], root / "shards"
    (root / "files").mkdir(parents=True)
    shard_dir.mkdir()
    entries = []
    for s, start in enumerate(progress(range(0, n, per_shard), desc="writing images", leave=False)):
        name = SHARD_PATTERN.format(s)
        with wds.TarWriter(str(shard_dir / name), mtime=0) as tw:  # as prepare: no PAX headers
            for i in range(start, min(n, start + per_shard)):
                data, id_str = _jpeg(rng, size), f"bench-{i:06d}"
                files.append(root / "files" / f"{id_str}.jpg")
                files[-1].write_bytes(data)
                meta = {"id_str": id_str, "campaign": None, "source": "benchmark"}
                tw.write({"__key__": encode_key(id_str), "image.jpg": data, "meta.json": json.dumps(meta).encode()})
        entries.append({"name": name, "n_samples": min(n, start + per_shard) - start,
                        "sha256": sha256_file(shard_dir / name), "bytes": (shard_dir / name).stat().st_size})
    manifest = {"format_version": 1, "schema": schema.name, "schema_hash": schema.hash,
                "n_answers": schema.n_answers, "labelled": False, "image_size": size, "image_format": "jpg",
                "n_samples": n, "shards": entries, "command": "benchmarks/loader_throughput.py",
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    (shard_dir / MANIFEST).write_text(json.dumps(manifest))
    return files, shard_dir


class JpegFiles(torch.utils.data.Dataset):
    """The per-file baseline (what an ImageFolder does): open, read and decode one file per item."""

    def __init__(self, files: list[Path], decode: str):
        self.files, self.decode = files, decode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return decode_image(self.files[i].read_bytes(), self.decode)


def _samples_per_s(loader, n_expected: int) -> float:
    t0, n = time.perf_counter(), 0
    for b in loader:
        assert b["image"].dtype == torch.uint8 if isinstance(b, dict) else b.dtype == torch.uint8
        n += len(b["image"] if isinstance(b, dict) else b)
    dt = time.perf_counter() - t0
    assert n == n_expected, f"loader yielded {n} samples, expected {n_expected}"
    return n / dt


def interleaved(loaders: dict, n_expected: int, repeats: int) -> dict:
    """Median samples/s of each loader over ``repeats`` alternating passes, and the median ratio
    of the first to the second within a round."""
    for loader in loaders.values():  # warm-up: page cache, worker start-up paths
        _samples_per_s(loader, n_expected)
    rates = {name: [] for name in loaders}
    for _ in progress(range(repeats), desc="timing passes", leave=False):
        for name, loader in loaders.items():
            rates[name].append(_samples_per_s(loader, n_expected))
    first, second = rates.values()
    return {**{name: statistics.median(r) for name, r in rates.items()},
            "ratio": statistics.median(a / b for a, b in zip(first, second))}


def time_decoders(files: list[Path], repeats: int = 1) -> dict:
    """Steady-state images/s of each decoder, plus the one-off cost of its first call."""
    blobs = [f.read_bytes() for f in files]
    out = {}
    for backend in ("torchvision", "pil"):
        t0 = time.perf_counter()
        decode_image(blobs[0], backend)
        out[f"{backend}_first_call_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(repeats):
            for b in blobs:
                decode_image(b, backend)
        out[backend] = len(blobs) * repeats / (time.perf_counter() - t0)
    return out


def measure(n: int = 5000, image_size: int = 224, batch_size: int = 64, workers: int = 2,
            decode: str = "torchvision", repeats: int = 5) -> dict:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        files, shard_dir = write_both(Path(tmp), n, image_size)
        n_batches = n // batch_size
        decoders = time_decoders(files[: min(n, 1000)])  # also loads the decoder before workers fork
        # a shuffle buffer far larger than a worker's share would mostly measure tar parsing
        buffer = min(1000, n // (4 * max(1, workers)))
        cfg = load_config(DataConfig, Path(__file__).resolve().parents[1] / "configs/data/default.yaml", [
            "labelled=[]", f"unlabelled=[{shard_dir}]", f"batch_size={batch_size}", "labelled_fraction=0.0",
            f"num_workers={workers}", f"epoch_length={n_batches}", f"persistent_workers={workers > 0}",
            f"shuffle_buffer={buffer}",
            f"decode={decode}", "pin_memory=false"])
        files_loader = torch.utils.data.DataLoader(JpegFiles(files, decode), batch_size=batch_size,
                                                   shuffle=True, num_workers=workers, drop_last=True,
                                                   persistent_workers=workers > 0,
                                                   prefetch_factor=cfg.prefetch_factor if workers else None)
        r = interleaved({"shard": build_train_loader(cfg, "gz_evo_v0.1"), "file": files_loader},
                        n_batches * batch_size, repeats)
    return {"n": n, "image_size": image_size, "batch_size": batch_size, "workers": workers, "decode": decode,
            "shuffle_buffer": buffer, "repeats": repeats, "shard_samples_per_s": r["shard"],
            "file_samples_per_s": r["file"], "loader_ratio": r["ratio"],
            **{f"decode_{k}" if k.endswith("_s") else f"decode_{k}_per_s": v for k, v in decoders.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small run for 2 CPU cores (1024 images, 64 px)")
    p.add_argument("--n", type=int, default=5000, help="images (default 5000)")
    p.add_argument("--image-size", type=int, default=224, help="square image side (default 224)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for both loaders (default 2)")
    p.add_argument("--decode", choices=("torchvision", "pil"), default="torchvision", help="decoder for both")
    p.add_argument("--repeats", type=int, default=5, help="alternating timed passes of each loader (default 5)")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.image_size = 1024, 64
    r = measure(a.n, a.image_size, a.batch_size, a.workers, a.decode, a.repeats)
    print(f"{r['n']} images {r['image_size']} px, batch {r['batch_size']}, {r['workers']} workers, {a.decode} decode")
    print(f"  shard loader      {r['shard_samples_per_s']:10.0f} samples/s")
    print(f"  per-file JPEG     {r['file_samples_per_s']:10.0f} samples/s")
    print(f"  loader_ratio      {r['loader_ratio']:10.2f}   (median of {r['repeats']} interleaved rounds)")
    for d in ("torchvision", "pil"):
        print(f"  decode {d:<11}{r[f'decode_{d}_per_s']:10.0f} images/s (first call {r[f'decode_{d}_first_call_s']:.2f} s)")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    from hybridssl.cli import run_command
    raise SystemExit(run_command("python -m benchmarks.loader_throughput", main))
