"""Write the demo dataset: catalogs like a real release, and the images they point to.

Galaxies are rendered in fixed-size chunks, each with its own seed, so the output depends only
on ``seed`` (not on ``workers``). Catalogs are written last and atomically: a catalog never
names an image that is not on disk.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data_prep.synthetic.morphology import TRUTH_COLUMNS, concat, sample_galaxies, take
from data_prep.synthetic.render import render
from data_prep.synthetic.surveys import SURVEYS, survey_of
from data_prep.synthetic.volunteers import sample_volunteer_counts, simulate_votes
from hybridssl.cli import progress
from hybridssl.storage.atomic import atomic_path
from hybridssl.schema import Schema, load_schema

LABELLED, UNLABELLED, RINGS, HELDOUT = "labelled", "unlabelled", "rings", "heldout"
_SET_CODE = {LABELLED: 0, UNLABELLED: 1, RINGS: 2, HELDOUT: 3}
_ID_PREFIX = {LABELLED: "L", HELDOUT: "H"}
RING_STYLE = "decals"
TEST_FRACTION = 0.3
MATCH_INCLINATION_EDGES = np.arange(5, 90, 5)     # degrees
MATCH_SIZE_EDGES = np.geomspace(0.02, 0.18, 11)   # fraction of the image width


@dataclass
class _Group:
    """Galaxies of one set imaged in one survey style."""
    style: str
    rows: np.ndarray               # row numbers in the set's catalog
    params: dict[str, np.ndarray]


def _chunk_size(size: int) -> int:
    return max(8, int(128 * (64 / size) ** 2))


def _render_chunk(task) -> np.ndarray:
    """Worker: render one chunk, write its PNGs, return the galaxies' asymmetry."""
    style, params, size, seed, paths = task
    images, asym = render(params, SURVEYS[style], size, np.random.default_rng(seed))
    for img, path in zip(images, paths):
        Image.fromarray(img).save(path, compress_level=1)
    return asym


def _limit_threads() -> None:
    """One BLAS thread per worker process: the pool already uses every core."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _render(groups: list[_Group], paths: list[Path], size: int, seed: int, set_name: str, workers: int) -> None:
    """Render every group into ``paths`` (indexed by row); sets ``params['asymmetry']``."""
    tasks, where = [], []
    chunk = _chunk_size(size)
    for gi, grp in enumerate(groups):
        grp.params["asymmetry"] = np.zeros(len(grp.rows), np.float32)
        for start in range(0, len(grp.rows), chunk):
            part = slice(start, start + chunk)
            chunk_seed = np.random.SeedSequence([seed, _SET_CODE[set_name], gi, start])
            tasks.append((grp.style, take(grp.params, part), size, chunk_seed,
                          [paths[r] for r in grp.rows[part]]))
            where.append((gi, part))
    for p in {p.parent for p in paths}:
        p.mkdir(parents=True, exist_ok=True)
    bar = progress(total=sum(len(g.rows) for g in groups), desc=f"render {set_name}", unit="gal")
    pool = ProcessPoolExecutor(workers, initializer=_limit_threads) if workers > 1 else None
    try:
        results = pool.map(_render_chunk, tasks) if pool else map(_render_chunk, tasks)
        for (gi, part), asym in zip(where, results):
            groups[gi].params["asymmetry"][part] = asym
            bar.update(len(asym))
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)


def _image_paths(out: Path, set_name: str, ids: list[str]) -> list[Path]:
    return [out / "images" / set_name / f"{i // 1000:03d}" / f"{id_}.png" for i, id_ in enumerate(ids)]


def _ids(prefix: str, n: int) -> list[str]:
    return [f"synth-{prefix}-{i:06d}" for i in range(n)]


def _write_catalog(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _file_locs(paths: list[Path], catalog: Path) -> list[str]:
    return [os.path.relpath(p, catalog.parent) for p in paths]


def _truth_frame(params: dict[str, np.ndarray], rows: np.ndarray, n: int) -> pd.DataFrame:
    cols = {}
    for name in TRUTH_COLUMNS + ["asymmetry"]:
        values = np.asarray(params[name])
        full = np.zeros(n, values.dtype)
        full[rows] = values
        cols[f"true_{name}"] = full
    return pd.DataFrame(cols)


def write_labelled(out: Path, n: int, size: int, seed: int, workers: int, schema: Schema,
                   set_name: str = LABELLED) -> pd.DataFrame:
    """Each galaxy belongs to one campaign, is imaged in its survey's style and voted on in its tree.
    ``set_name=HELDOUT``: more galaxies like these from their own random stream, never trained on
    (for calibration and other checks of the vote predictions)."""
    rng = np.random.default_rng([seed, _SET_CODE[set_name]])
    campaign = rng.choice(schema.campaigns, n)
    groups = [_Group(survey_of(c).name, np.flatnonzero(campaign == c), None) for c in schema.campaigns]
    for g in groups:
        g.params = sample_galaxies(rng, len(g.rows), SURVEYS[g.style])
    ids = _ids(_ID_PREFIX[set_name], n)
    paths = _image_paths(out, set_name, ids)
    _render(groups, paths, size, seed, set_name, workers)

    votes = np.zeros((n, schema.n_answers), np.int64)
    for c, g in zip(schema.campaigns, groups):
        if len(g.rows):
            votes[g.rows] = simulate_votes(g.params, c, schema, rng, sample_volunteer_counts(rng, len(g.rows), c))
    rows = np.concatenate([g.rows for g in groups])
    truth = _truth_frame(concat([g.params for g in groups]), rows, n)
    catalog = out / f"{set_name}.parquet"
    df = pd.concat([pd.DataFrame({"id_str": ids, "file_loc": _file_locs(paths, catalog), "campaign": campaign}),
                    pd.DataFrame(votes, columns=schema.label_cols), truth], axis=1)
    _write_catalog(df, catalog)
    return df


def write_unlabelled(out: Path, n: int, size: int, seed: int, workers: int) -> pd.DataFrame:
    """A pool mixing every survey style, without votes."""
    rng = np.random.default_rng([seed, _SET_CODE[UNLABELLED]])
    survey = rng.choice(list(SURVEYS), n)
    groups = [_Group(s, np.flatnonzero(survey == s), None) for s in SURVEYS]
    for g in groups:
        g.params = sample_galaxies(rng, len(g.rows), SURVEYS[g.style])
    ids = _ids("U", n)
    paths = _image_paths(out, UNLABELLED, ids)
    _render(groups, paths, size, seed, UNLABELLED, workers)
    catalog = out / "unlabelled.parquet"
    df = pd.DataFrame({"id_str": ids, "file_loc": _file_locs(paths, catalog), "survey": survey})
    _write_catalog(df, catalog)
    return df


def _match_cell(g: dict[str, np.ndarray]) -> np.ndarray:
    """Cell of a galaxy on the attributes ring galaxies and their negatives are matched on."""
    inclination = np.digitize(g["inclination"], MATCH_INCLINATION_EDGES)
    size = np.digitize(g["size"], MATCH_SIZE_EDGES)
    bar = (g["bar"] > 0).astype(int)
    n_inclination, n_size = len(MATCH_INCLINATION_EDGES) + 1, len(MATCH_SIZE_EDGES) + 1
    return ((g["disk"] * 2 + bar) * n_inclination + inclination) * n_size + size


def ring_task_galaxies(n: int, seed: int) -> dict[str, np.ndarray]:
    """DECaLS-like galaxies drawn as everywhere else: half with a ring a volunteer would see, half
    without, each of those from the same cell of disk, bar, inclination and size as a ring galaxy,
    so that none of these attributes tells a ring."""
    rng = np.random.default_rng([seed, _SET_CODE[RINGS]])
    n_ring, pools = n // 2, []
    for _ in range(100):                       # seen rings are a minority: draw until enough
        pools.append(sample_galaxies(rng, max(8 * n, 256), SURVEYS[RING_STYLE]))
        pool = concat(pools)
        cell = _match_cell(pool)
        ring_rows = np.flatnonzero(pool["ring_seen"] == 1)[: n - n_ring]   # n odd: one more cell than rings
        plain_rows = np.flatnonzero(pool["ring_seen"] == 0)
        need = np.bincount(cell[ring_rows], minlength=cell.max() + 1)
        rank = pd.Series(cell[plain_rows]).groupby(cell[plain_rows]).cumcount().to_numpy()
        matched = plain_rows[rank < need[cell[plain_rows]]]
        if len(ring_rows) == n - n_ring and len(matched) == n - n_ring:
            return take(pool, np.sort(np.concatenate([ring_rows[:n_ring], matched])))
    raise RuntimeError(f"ring task: could not match {n - n_ring} galaxies without a ring after 100 draws")


def ring_task_split(ring: np.ndarray, seed: int) -> np.ndarray:
    """'train' or 'test' per galaxy, stratified so both splits are balanced."""
    rng = np.random.default_rng([seed, _SET_CODE[RINGS], 1])
    split = np.full(len(ring), "train", dtype=object)
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(ring == label))
        split[rows[: int(round(TEST_FRACTION * len(rows)))]] = "test"
    return split


def write_rings(out: Path, n: int, size: int, seed: int, workers: int) -> pd.DataFrame:
    """The downstream task: ``ring`` is 1 when a volunteer could see an inner or outer ring."""
    params = ring_task_galaxies(n, seed)
    ids = _ids("R", n)
    paths = _image_paths(out, RINGS, ids)
    _render([_Group(RING_STYLE, np.arange(n), params)], paths, size, seed, RINGS, workers)
    ring = params["ring_seen"].astype(np.int64)
    split = ring_task_split(ring, seed)
    catalog = out / "downstream" / "rings.parquet"
    df = pd.DataFrame({"id_str": ids, "file_loc": _file_locs(paths, catalog), "ring": ring, "split": split})
    _write_catalog(df, catalog)
    return df


def generate(out: str | os.PathLike, n_labelled: int, n_unlabelled: int, n_downstream: int, size: int,
             seed: int, workers: int, montage: str | os.PathLike | None = None,
             schema: str | Schema = "gz_evo_v0.1", n_heldout: int = 0) -> dict[str, pd.DataFrame]:
    """Write the catalogs (and the montage, if a path is given) under ``out``; the held-out
    labelled set only when ``n_heldout`` > 0."""
    out, schema = Path(out), load_schema(schema)
    frames = {LABELLED: write_labelled(out, n_labelled, size, seed, workers, schema),
              UNLABELLED: write_unlabelled(out, n_unlabelled, size, seed, workers),
              RINGS: write_rings(out, n_downstream, size, seed, workers)}
    if n_heldout:
        frames[HELDOUT] = write_labelled(out, n_heldout, size, seed, workers, schema, HELDOUT)
    if montage is not None and n_labelled:
        from data_prep.synthetic.montage import save_montage
        save_montage(frames[LABELLED], out, schema, montage)
    return frames
