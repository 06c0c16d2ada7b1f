"""``hybridssl prepare``: a catalog's images and votes -> WebDataset shards (``hybridssl/storage/shards.py``).

Rows that pass the catalog checks are assigned to shards by catalog order (``shard_size``
each), so a re-run plans the same shards: it keeps every shard whose sha256 matches the
manifest and writes only the others. Each shard is written to a temp file and renamed, and
the manifest (rewritten atomically after every shard) lists only complete shards, so a
SIGKILL or a full disk never leaves a partial shard behind a reader's back. Members are named
``<key>.<ext>`` exactly as webdataset's ``TarWriter`` would write them. Rejected rows
(bad catalog values, unreadable images) go to ``rejected.csv`` with row, id and reason.
``--image-format npy`` keeps every band as float16 (``data_prep/bands.py``): a first pass over
a sample of the images sets the per-band normalisation, written to the manifest.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import multiprocessing
import shlex
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from omegaconf import MISSING, OmegaConf

from data_prep.bands import NPY_FORMAT, band_stats, prepare_bands
from hybridssl.cli import progress
from hybridssl.storage.catalog import CatalogError, CatalogRows, load_rows
from data_prep.class_votes import load_class_map
from hybridssl.storage.images import FITS_STRETCHES, IMAGE_FORMATS, MAX_IMAGE_SIZE, ImageError, prepare_image
from hybridssl.storage.atomic import DiskWriteError, atomic_path, atomic_write_text
from hybridssl.cli import user_error
from hybridssl.config import ConfigError, load_config, resolve_config_path, to_dict
from hybridssl.storage.locks import dir_lock
from hybridssl.schema import load_schema
from hybridssl.storage.shards import (FORMAT_VERSION, MANIFEST, META_FIELDS, SHARD_PATTERN, ShardError, encode_key,
                              encode_votes, sha256_file)

REJECTED = "rejected.csv"
FORMATS = (*IMAGE_FORMATS, NPY_FORMAT)
# Settings that change shard contents: a re-run into the same directory must match them.
_CONTENT_KEYS = ("schema", "campaign", "unlabelled", "image_size", "image_format", "jpeg_quality",
                 "shard_size", "id_column", "path_column", "keep_columns", "fits_stretch",
                 "class_column", "class_votes")


@dataclass
class PrepareConfig:
    schema: str = MISSING
    campaign: Optional[str] = MISSING
    unlabelled: bool = MISSING
    image_size: int = MISSING
    image_format: str = MISSING
    jpeg_quality: int = MISSING
    shard_size: int = MISSING
    workers: int = MISSING
    strict: bool = MISSING
    id_column: str = MISSING
    path_column: str = MISSING
    keep_columns: List[str] = MISSING
    fits_stretch: str = MISSING
    class_column: Optional[str] = MISSING
    class_votes: Optional[str] = MISSING
    band_stats_images: int = MISSING

    def validate(self) -> None:
        checks = [("image_format", self.image_format in FORMATS, FORMATS),
                  ("band_stats_images", self.band_stats_images >= 1, ">= 1"),
                  ("fits_stretch", self.fits_stretch in FITS_STRETCHES, FITS_STRETCHES),
                  ("jpeg_quality", 1 <= self.jpeg_quality <= 100, "1..100"),
                  ("image_size", 8 <= self.image_size <= MAX_IMAGE_SIZE, f"8..{MAX_IMAGE_SIZE}"),
                  ("shard_size", self.shard_size >= 1, ">= 1"),
                  ("workers", self.workers >= 1, ">= 1"),
                  ("keep_columns", not set(self.keep_columns) & set(META_FIELDS),
                   f"catalog columns other than the meta.json fields prepare writes itself {META_FIELDS}")]
        if (self.class_column is None) != (self.class_votes is None):
            raise ConfigError("config keys 'class_column' and 'class_votes' go together: a class column "
                              "and the map that turns its values into pseudo-votes")
        if self.class_votes is not None and self.unlabelled:
            raise ConfigError("config key 'class_votes' makes votes; it cannot go with unlabelled: true")
        for key, ok, valid in checks:
            if not ok:
                raise ConfigError(f"config key {key!r}: {getattr(self, key)!r} is not valid; valid: {valid}")


@dataclass
class PrepareResult:
    out: Path
    n_written: int
    n_rejected: int
    n_shards: int


def _shard_tasks(rows: CatalogRows, cfg: PrepareConfig, out: Path, source: str, bands) -> list[dict]:
    tasks = []
    for s, start in enumerate(range(0, len(rows.ids), cfg.shard_size)):
        sl = slice(start, start + cfg.shard_size)
        tasks.append({"out": out, "name": SHARD_PATTERN.format(s), "source": source,
                      "rows": rows.rows[sl].tolist(), "ids": rows.ids[sl], "paths": rows.paths[sl],
                      "campaigns": rows.campaigns[sl], "keep": {k: v[sl] for k, v in rows.keep.items()},
                      "votes": None if rows.votes is None else rows.votes[sl],
                      "image": (cfg.image_size, cfg.image_format, cfg.jpeg_quality, cfg.fits_stretch),
                      "bands": bands})
    return tasks


def _add_sample(tw: tarfile.TarFile, sample: dict) -> None:
    """Members ``<key>.<ext>`` as webdataset's TarWriter writes them, with a fixed mtime so a
    re-run writes identical bytes. (tarfile directly: importing webdataset imports torch, which
    costs seconds per process and nothing here needs.)"""
    for ext in sorted(k for k in sample if k != "__key__"):
        info = tarfile.TarInfo(f"{sample['__key__']}.{ext}")
        info.size, info.mode, info.mtime = len(sample[ext]), 0o444, 0
        tw.addfile(info, io.BytesIO(sample[ext]))


def _write_shard(task: dict) -> dict:
    """Write one shard (temp file, then rename); image failures become rejections."""
    path = task["out"] / task["name"]
    size, fmt, quality, stretch = task["image"]
    rejected, n = [], 0
    # PAX: ustar names stop at 100 bytes (an id of ~90 ASCII or ~11 CJK characters once escaped);
    # tarfile writes a PAX header only for such a name, so other shards keep their ustar bytes.
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tw:
        for i, id_str in enumerate(task["ids"]):
            try:
                image = (prepare_bands(task["paths"][i], size, task["bands"]) if fmt == NPY_FORMAT
                         else prepare_image(task["paths"][i], size, fmt, quality, stretch))
            except ImageError as e:
                rejected.append([task["rows"][i], id_str, str(e)])
                continue
            meta = {"id_str": id_str, "campaign": task["campaigns"][i], "source": task["source"],
                    **{k: v[i] for k, v in task["keep"].items()}}
            sample = {"__key__": encode_key(id_str), f"image.{fmt}": image,
                      "meta.json": json.dumps(meta).encode()}
            if task["votes"] is not None:
                sample["votes.npy"] = encode_votes(task["votes"][i])
            _add_sample(tw, sample)
            n += 1
    return {"name": task["name"], "n_samples": n, "sha256": sha256_file(path),
            "bytes": path.stat().st_size, "rejected": rejected}


def _run_tasks(tasks: list[dict], workers: int):
    """Yield finished shard entries; a pool over shards when there is more than one worker."""
    if workers == 1 or len(tasks) <= 1:
        yield from map(_write_shard, tasks)
        return
    with multiprocessing.get_context().Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap_unordered(_write_shard, tasks)


def _complete_shards(out: Path, fingerprint: dict, planned: set) -> tuple[dict, str | None]:
    """Entries of an earlier run's planned shards still intact on disk (checked by sha256), and
    its creation time; refuses a directory written from another catalog or other settings."""
    if not (out / MANIFEST).exists():
        return {}, None
    try:
        old = json.loads((out / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardError(f"{out / MANIFEST}: not valid JSON ({e}); remove it to start over") from None
    before = old.get("prepare", {})
    for key, value in fingerprint.items():
        if before.get(key) != value:
            raise ShardError(f"{out} holds shards prepared with {key}={before.get(key)!r}, not {value!r}; "
                             "use another --out or remove that directory")
    done = {}
    listed = [e for e in old.get("shards", []) if e.get("name") in planned]  # never a path from elsewhere
    for e in progress(listed, desc="checking complete shards", unit="shard"):
        p = out / e["name"]
        if p.is_file() and p.stat().st_size == e.get("bytes") and sha256_file(p) == e.get("sha256"):
            done[e["name"]] = e
    return done, old.get("created")


def _write_manifest(out: Path, schema, cfg: PrepareConfig, shards: dict, n_planned: int,
                    fingerprint: dict, command: str, created: str, votes_note: dict, bands) -> None:
    entries = [shards[k] for k in sorted(shards)]
    manifest = {"format_version": FORMAT_VERSION, "schema": schema.name, "schema_hash": schema.hash,
                "n_answers": schema.n_answers, "labelled": not cfg.unlabelled, "image_size": cfg.image_size,
                "image_format": cfg.image_format, "n_samples": sum(e["n_samples"] for e in entries),
                "shards": entries, "complete": len(entries) == n_planned, "n_shards_planned": n_planned,
                "command": command, "created": created,
                "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(), "prepare": fingerprint,
                **votes_note}
    if bands is not None:
        manifest.update(in_chans=bands["n_bands"], bands=bands)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))


def _write_rejected(out: Path, rejected: list[list]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["row", "id_str", "reason"])
    w.writerows(sorted(rejected, key=lambda r: r[0]))
    atomic_write_text(out / REJECTED, buf.getvalue())


def prepare(catalog: str | Path, out: str | Path, cfg: PrepareConfig, command: str = "") -> PrepareResult:
    """Shard ``catalog`` into ``out``; resumes an interrupted run into the same ``out``. One run
    per ``out`` at a time: a second one raises :class:`LockError` instead of deleting the first
    one's temp shards."""
    with dir_lock(out, command or "hybridssl prepare"):
        return _prepare(catalog, out, cfg, command)


def _prepare(catalog: str | Path, out: str | Path, cfg: PrepareConfig, command: str) -> PrepareResult:
    catalog, out = Path(catalog), Path(out)
    schema = load_schema(cfg.schema)
    class_map = None if cfg.class_votes is None else load_class_map(cfg.class_votes, schema)
    rows, rejected, vote_cols = load_rows(
        catalog, schema, id_column=cfg.id_column, path_column=cfg.path_column, labelled=not cfg.unlabelled,
        campaign=cfg.campaign, keep_columns=tuple(cfg.keep_columns), class_column=cfg.class_column,
        class_map=class_map)
    votes_note = {} if class_map is None else class_map.describe(cfg.class_column)
    if rows.votes is not None:  # recorded, so pretraining can warn about a set without votes too
        votes_note["n_voted"] = int((rows.votes > 0).any(axis=1).sum())
        if len(rows.ids) and not votes_note["n_voted"]:
            print(f"warning: {catalog}: every vote is zero in all {len(rows.ids)} rows; the shards are "
                  "'labelled' but carry no vote signal (prepare with --unlabelled if that is meant)",
                  file=sys.stderr)
    if vote_cols.unknown and not cfg.unlabelled and class_map is None:
        print(f"warning: {len(vote_cols.unknown)} vote-like columns match no answer of schema {schema.name}"
              f" (rows with votes in them are rejected): {', '.join(vote_cols.unknown)}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in (".shard-*.tmp", f".{MANIFEST}.*.tmp", f".{REJECTED}.*.tmp"):
        for stale in out.glob(pattern):  # temp files of a killed run (hybridssl.storage.atomic names)
            stale.unlink()
    fingerprint = {"catalog_sha256": sha256_file(catalog), "schema_hash": schema.hash,
                   **{k: v for k, v in to_dict(cfg).items() if k in _CONTENT_KEYS},
                   **({} if class_map is None else {"class_map_hash": class_map.hash})}
    bands = None
    if cfg.image_format == NPY_FORMAT and len(rows.ids):
        try:
            bands = fingerprint["bands"] = band_stats(rows.paths, cfg.band_stats_images, cfg.fits_stretch)
        except ImageError as e:
            raise CatalogError(f"{catalog}: {e}") from None
    tasks = _shard_tasks(rows, cfg, out, catalog.name, bands)
    shards, created = _complete_shards(out, fingerprint, {t["name"] for t in tasks})
    created = created or datetime.datetime.now(datetime.timezone.utc).isoformat()
    todo = [t for t in tasks if t["name"] not in shards]

    def save_manifest():
        _write_manifest(out, schema, cfg, shards, len(tasks), fingerprint, command, created, votes_note, bands)
    save_manifest()  # drops entries of shards found damaged
    with progress(total=sum(len(t["ids"]) for t in todo), desc="prepare", unit="img") as bar:
        for entry in _run_tasks(todo, cfg.workers):
            shards[entry["name"]] = entry
            save_manifest()
            bar.update(entry["n_samples"] + len(entry["rejected"]))
    image_rejects = [r for e in shards.values() for r in e["rejected"]]
    _write_rejected(out, [[r.row, r.id_str, r.reason] for r in rejected] + image_rejects)
    return PrepareResult(out, sum(e["n_samples"] for e in shards.values()),
                         len(rejected) + len(image_rejects), len(shards))


# -- CLI --------------------------------------------------------------------------------------
_OPTIONS = {  # flag -> (config key, type, help)
    "--schema": ("schema", str, "label schema: shipped name or YAML path"),
    "--campaign": ("campaign", str, "campaign of a plain release table (dr5, dr12, dr8, gz2, ...): maps "
                   "`bar_strong` / GZ2 `t03_bar_a06_bar_count` columns onto `bar-dr5_strong`-style ones"),
    "--image-size": ("image_size", int, "square image size in pixels (resized once here)"),
    "--image-format": ("image_format", str, f"stored image format: {' | '.join(FORMATS)} (npy: float16, "
                     "every band, normalised per band; see README 'Single- and multi-band images')"),
    "--jpeg-quality": ("jpeg_quality", int, "JPEG quality 1..100"),
    "--shard-size": ("shard_size", int, "samples per shard"),
    "--workers": ("workers", int, "processes writing shards in parallel"),
    "--id-column": ("id_column", str, "catalog column with the galaxy id"),
    "--path-column": ("path_column", str, "catalog column with the image path (relative to the catalog)"),
    "--keep-columns": ("keep_columns", lambda s: [c.strip() for c in s.split(",") if c.strip()],
                       "comma-separated catalog columns copied into meta.json, e.g. ring,split"),
    "--fits-stretch": ("fits_stretch", str, f"FITS to RGB stretch, and the npy per-band stretch: "
                     f"{' | '.join(FITS_STRETCHES)}"),
    "--band-stats-images": ("band_stats_images", int, "npy: images sampled for the per-band normalisation"),
    "--class-column": ("class_column", str, "catalog column with one class per galaxy (with --class-votes)"),
    "--class-votes": ("class_votes", str, "class map turning --class-column values into pseudo-votes: "
                      "shipped name (configs/class_votes/, e.g. gz1_to_gz2) or YAML path"),
}


def add_arguments(parser) -> None:
    parser.add_argument("--catalog", required=True, help="catalog table (.parquet or .csv)")
    parser.add_argument("--out", required=True, help="output shard directory (re-run to resume)")
    parser.add_argument("--config", default="default",
                        help="prepare config: shipped name (configs/prepare/) or YAML path; flags override it")
    shipped = OmegaConf.load(resolve_config_path("default", "prepare"))
    for flag, (key, typ, help_) in _OPTIONS.items():
        parser.add_argument(flag, type=typ, default=None, help=f"{help_} (default: {shipped.get(key)})")
    parser.add_argument("--unlabelled", action="store_true", default=None,
                        help="images only: no votes.npy, no vote columns needed")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="exit non-zero when any row is rejected")


def _command(args) -> str:
    """The command line that made the shard set, rebuilt from the parsed options."""
    words = ["hybridssl", "prepare", "--catalog", str(args.catalog), "--out", str(args.out)]
    if args.config != "default":
        words += ["--config", str(args.config)]
    for flag, (key, _, _) in _OPTIONS.items():
        value = getattr(args, key)
        if value is not None:
            words += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    words += [f"--{k}" for k in ("unlabelled", "strict") if getattr(args, k)]
    return shlex.join(words)


def run(args) -> int:
    keys = [k for k, _, _ in _OPTIONS.values()] + ["unlabelled", "strict"]
    overrides = [f"{k}={json.dumps(getattr(args, k))}" for k in keys if getattr(args, k) is not None]
    cfg = load_config(PrepareConfig, resolve_config_path(args.config, "prepare"), overrides)
    command = _command(args)
    try:
        result = prepare(args.catalog, args.out, cfg, command)
    except DiskWriteError as e:
        return user_error("hybridssl prepare", f"{e}; complete shards are intact, re-run to finish")
    print(f"prepare: {result.n_written} written in {result.n_shards} shards, {result.n_rejected} rejected"
          f"{f' (reasons in {result.out / REJECTED})' if result.n_rejected else ''} -> {result.out}")
    if result.n_written == 0:
        return user_error("hybridssl prepare", "no valid rows remain")
    return 1 if cfg.strict and result.n_rejected else 0
