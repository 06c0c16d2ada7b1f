"""Galaxies that sit both in a downstream task and in a pretraining pool, found by image content.

    python -m data_prep.galaxies.overlaps           # check: list overlaps, exit 1 if any remain
    python -m data_prep.galaxies.overlaps --remove  # drop them from the pool catalogs, append to overlaps.csv

The pools come from other catalogs than the tasks (SDSS objids, Galaxy Zoo 2 challenge
GalaxyIDs, IAU names), with other crops and, for the rings, another survey, so ids cannot be
compared. Each image becomes a *fingerprint*: its greyscale centre cropped to each fraction of
``CROPS``, box-resampled to ``THUMB`` x ``THUMB`` px, band-passed in each band of ``BANDS`` (a
narrow minus a wide Gaussian blur, so the shared smooth blob of every centred galaxy does not
count; what is left is shape, orientation, knots, neighbours and field stars), each band
normalised, the bands side by side (a correlation is then the mean of the bands'). A task image
and a pool image score the highest correlation over relative crop scales (either image
cropped). Smooth galaxies still
look alike to many pool galaxies, so a pair counts when its score is high *and* stands out
from the task image's other pool matches: ``score + gap >= MIN_SCORE_PLUS_GAP``, ``gap`` being
the score minus the task image's ``KTH``-best pool score (so up to ``KTH - 1`` copies of one
galaxy in a pool are all caught). Pool galaxies found are set aside and the rest scored again
until nothing more is found, so a check after removal finds none. The threshold was read off
the shipped images (data_prep/galaxies/README.md, "Clean splits").
"""
from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).parent
TASKS = {"mergers": "sdss_gz1/mergers_task.csv", "rings": "decals_rings_dev/rings_split.csv"}
POOLS = {"gz1_pretrain": "sdss_gz1/pretrain.csv", "gz2_kaggle": "sdss_gz2_kaggle/catalog.csv"}
RECORD = HERE / "overlaps.csv"
RECORD_COLUMNS = ["task", "task_id", "task_file", "pool", "pool_id", "pool_file", "score", "gap"]

THUMB = 24                           # fingerprint side, px
CROPS = np.geomspace(1.0, 0.5, 16)   # centre fractions: relative scales 0.5..2 in ~5 % steps
BANDS = ((0.5, 2.0), (1.0, 4.0))     # band-passes: (narrow, wide) Gaussian sigmas, thumbnail px
KTH = 5
MIN_SCORE_PLUS_GAP = 1.025           # between verified duplicates and look-alikes, see the README
CHUNK = 1024                         # pool images fingerprinted at a time (memory)


def _gaussian_rows(n: int, sigma: float) -> np.ndarray:
    x = np.arange(n)
    g = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return g / g.sum(1, keepdims=True)


def _box_resample(width: int, fraction: float) -> np.ndarray:
    """(THUMB, width): the area average of the centre ``fraction`` of ``width`` pixels into THUMB."""
    lo, step = width * (1 - fraction) / 2, width * fraction / THUMB
    edges = lo + step * np.arange(THUMB + 1)
    x = np.arange(width)
    overlap = np.minimum(x[None, :] + 1, edges[1:, None]) - np.maximum(x[None, :], edges[:-1, None])
    return np.clip(overlap, 0, None) / step


@lru_cache(maxsize=None)
def _operators(width: int) -> np.ndarray:
    """(len(CROPS) * len(BANDS), THUMB, width): crop + resample + band-pass along one axis of a
    square image, crop-major."""
    bands = [_gaussian_rows(THUMB, narrow) - _gaussian_rows(THUMB, wide) for narrow, wide in BANDS]
    return np.stack([b @ _box_resample(width, f) for f in CROPS for b in bands]).astype(np.float32)


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.draft("L", im.size)  # a JPEG decodes its luma only: 2x faster
        grey = np.asarray(im.convert("L"), dtype=np.float32)
    if grey.shape[0] != grey.shape[1]:
        raise ValueError(f"{path}: image is {grey.shape[1]}x{grey.shape[0]} px, expected a square centred cutout")
    return grey


def fingerprints(paths: list[Path]) -> np.ndarray:
    """(n, len(CROPS), len(BANDS) * THUMB**2) float32, each row unit-length."""
    greys = [_grey(p) for p in paths]
    out = np.empty((len(paths), len(CROPS) * len(BANDS), THUMB * THUMB), np.float32)
    for width in {g.shape[0] for g in greys}:
        rows = np.asarray([i for i, g in enumerate(greys) if g.shape[0] == width])
        stack = np.stack([greys[i] for i in rows])
        for c, op in enumerate(_operators(width)):  # op @ image @ op.T, as two 2-D products over every image
            half = (stack.reshape(-1, width) @ op.T).reshape(len(rows), width, THUMB).transpose(0, 2, 1)
            out[rows, c] = (half.reshape(-1, width) @ op.T).reshape(len(rows), -1)
    out -= out.mean(-1, keepdims=True)
    out /= np.linalg.norm(out, axis=-1, keepdims=True) * np.sqrt(len(BANDS)) + 1e-6
    return out.reshape(len(paths), len(CROPS), -1)


def scores(task: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """(n_task, n_pool): best correlation over relative scales (task cropped, or pool cropped)."""
    best = task[:, 0] @ pool[:, 0].T
    for c in range(1, len(CROPS)):
        np.maximum(best, task[:, c] @ pool[:, 0].T, out=best)
        np.maximum(best, task[:, 0] @ pool[:, c].T, out=best)
    return best


def pool_scores(task_prints: np.ndarray, pool_paths: list[Path]) -> np.ndarray:
    """:func:`scores` against a pool fingerprinted ``CHUNK`` images at a time (memory)."""
    return np.concatenate([scores(task_prints, fingerprints(pool_paths[i:i + CHUNK]))
                           for i in range(0, len(pool_paths), CHUNK)], axis=1)


def overlapping_pairs(score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(task index, pool index, gap) of every pair passing the threshold, repeating without the
    pool galaxies found until nothing more passes; ``score`` is (n_task, n_pool), left unchanged."""
    if score.shape[1] < KTH:
        raise ValueError(f"a pool of {score.shape[1]} images is too small: the gap needs {KTH}")
    score, found = score.copy(), []
    while True:
        kth = -np.partition(-score, KTH - 1, axis=1)[:, KTH - 1]
        t, p = np.nonzero(2 * score - kth[:, None] >= MIN_SCORE_PLUS_GAP)
        if not len(t):
            break
        found.append((t, p, score[t, p] - kth[t]))
        score[:, p] = -np.inf
    return tuple(np.concatenate(a) for a in zip(*found)) if found else (np.zeros(0, int), np.zeros(0, int), np.zeros(0))


def read_catalog(rel: str) -> pd.DataFrame:
    df = pd.read_csv(HERE / rel, dtype=str)
    return df.assign(path=[HERE / rel.split("/")[0] / f for f in df.file_loc])


def find_overlaps(tasks: dict[str, pd.DataFrame], pools: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every (task galaxy, pool galaxy) pair showing the same galaxy; catalogs need id_str,
    file_loc and path columns."""
    task = pd.concat([df.assign(task=name) for name, df in tasks.items()], ignore_index=True)
    task_prints = fingerprints(list(task.path))
    rows = []
    for pname, pdf in pools.items():  # every task at once: a pool galaxy found for one task leaves the gap of all
        score = pool_scores(task_prints, list(pdf.path))
        for t, p, gap in zip(*overlapping_pairs(score)):
            rows.append((task.task[t], task.id_str[t], task.file_loc[t], pname, pdf.id_str.iloc[p],
                         pdf.file_loc.iloc[p], round(float(score[t, p]), 4), round(float(gap), 4)))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS).sort_values(["task", "pool", "score"], ascending=False)


def shipped_overlaps() -> pd.DataFrame:
    return find_overlaps({n: read_catalog(r) for n, r in TASKS.items()}, {n: read_catalog(r) for n, r in POOLS.items()})


def remove_from_pools(found: pd.DataFrame) -> None:
    """Drop the pool rows of ``found`` from the pool catalogs (task sets stay whole; image files
    stay, overlaps.csv names them) and append ``found`` to overlaps.csv."""
    for pool, rel in POOLS.items():  # line by line, so the rest of each file stays byte for byte
        gone = set(found.pool_id[found.pool == pool])
        with open(HERE / rel, newline="") as f:
            header, *lines = f.readlines()
        with open(HERE / rel, "w", newline="") as f:
            f.writelines([header] + [line for line in lines if line.split(",", 1)[0] not in gone])
    old = pd.read_csv(RECORD, dtype=str) if RECORD.exists() else pd.DataFrame(columns=RECORD_COLUMNS)
    pd.concat([old, found.astype(str)]).to_csv(RECORD, index=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--remove", action="store_true", help="drop overlapping galaxies from the pool catalogs")
    a = p.parse_args(argv)
    found = shipped_overlaps()
    print(found.to_string(index=False) if len(found) else "no task galaxy is in a pretraining pool")
    if a.remove and len(found):
        remove_from_pools(found)
        print(f"removed {found.groupby('pool').pool_id.nunique().to_dict()} pool rows; recorded in {RECORD}")
        return 0
    return 1 if len(found) else 0


if __name__ == "__main__":
    sys.exit(main())
