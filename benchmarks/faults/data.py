"""Faults on the data path: `hybridssl prepare` killed, corrupt images and shards, bad catalogs."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd

from benchmarks.faults.harness import (Ctx, Row, complete_tar, galaxy_image, image_bytes, kill_group,
                                       rejected_text, save_catalog, says_disk_full, shard_ids, write_catalog)

IMAGE_SIZE = 32


def prepare_args(catalog, out, shard_size: int = 10, workers: int = 2, *extra) -> list:
    return ["prepare", "--catalog", catalog, "--out", out, "--image-size", IMAGE_SIZE,
            "--shard-size", shard_size, "--workers", workers, *extra]


def labelled_catalog(ctx: Ctx):
    """The suite's one clean labelled catalog (and its ids), written once."""
    n = 120 if ctx.quick else 600
    return ctx.cached("catalog", lambda: write_catalog(ctx.work / "catalog", n, seed=1))


def labelled_shards(ctx: Ctx):
    """That catalog prepared once, for faults that start from a good shard set."""
    def make():
        out = ctx.work / "shards" / "labelled"
        p = ctx.cli(*prepare_args(labelled_catalog(ctx), out), timeout=300)
        if p.rc != 0:
            raise RuntimeError(f"hybridssl prepare failed on a clean catalog: {p.tail(2000)}")
        return out
    return ctx.cached("shards", make)


# -- SIGKILL during prepare ---------------------------------------------------------------------
def _first_file_seconds(ctx: Ctx, out, catalog, shard_size) -> tuple[float, float]:
    """An uninterrupted run: seconds until its first output file, and in total."""
    p = ctx.spawn(*prepare_args(catalog, out, shard_size), log=ctx.path("logs", "prepare-baseline.log"))
    t0, first = time.monotonic(), None
    while p.poll() is None:
        if first is None and out.exists() and any(out.iterdir()):
            first = time.monotonic() - t0
        time.sleep(0.05)
    total = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"baseline prepare failed; see {ctx.path('logs', 'prepare-baseline.log')}")
    return first if first is not None else total * 0.5, total


def prepare_sigkill(ctx: Ctx) -> list[Row]:
    """Kill `prepare` (and its workers) at random points; re-run; verify; count ids."""
    tries, shard_size = (2, 10) if ctx.quick else (5, 10)
    catalog = labelled_catalog(ctx)
    expected = set(pd.read_parquet(catalog, columns=["id_str"])["id_str"])
    first, total = _first_file_seconds(ctx, ctx.work / "prepare-kill" / "baseline", catalog, shard_size)
    survived, lost, notes = 0, 0, []
    for t in range(tries):
        out = ctx.work / "prepare-kill" / f"try{t}"
        p = ctx.spawn(*prepare_args(catalog, out, shard_size), log=ctx.path("logs", f"prepare-kill{t}.log"))
        t0 = time.monotonic()
        while p.poll() is None and not (out.exists() and any(out.iterdir())) and time.monotonic() - t0 < total:
            time.sleep(0.02)
        time.sleep(float(ctx.rng.uniform(0.05, 0.9)) * max(total - first, 0.5))
        finished = p.poll() is not None
        kill_group(p)
        left = sorted(x.name for x in out.glob("shard-*.tar")) if out.exists() else []
        before = {x.name: x.stat().st_mtime_ns for x in out.glob("shard-*.tar")} if out.exists() else {}
        rerun = ctx.cli(*prepare_args(catalog, out, shard_size), timeout=300)
        verify = ctx.cli("verify", out, timeout=120)
        try:
            ids = shard_ids(out)
        except Exception as e:  # an unreadable result is exactly what this fault looks for
            ids, notes = [], notes + [f"try {t}: shards unreadable ({e})"]
        dup, missing = len(ids) - len(set(ids)), len(expected - set(ids))
        rewritten = sum(1 for x in out.glob("shard-*.tar") if x.name in before
                        and x.stat().st_mtime_ns != before[x.name])
        ok = rerun.rc == 0 and verify.rc == 0 and dup == 0 and missing == 0 and not rerun.traceback
        survived += ok
        lost += dup + missing
        notes.append(f"try {t}: killed {'after it finished' if finished else f'with {len(left)} shard files on disk'}"
                     f"; re-run rc={rerun.rc}, verify rc={verify.rc}, {dup} duplicate / {missing} missing ids,"
                     f" {rewritten} complete shard(s) rewritten" + ("" if ok else f" [{rerun.tail()} {verify.tail()}]"))
    return [Row("SIGKILL during `hybridssl prepare`", tries, survived, lost, "; ".join(notes))]


# -- corrupt inputs ----------------------------------------------------------------------------
def _fits_with_nans(path, rng, size: int = IMAGE_SIZE) -> None:
    from astropy.io import fits
    cube = rng.normal(0.01, 0.005, (3, size, size)).astype(np.float32)
    cube[:, size // 3: size // 2, size // 3: size // 2] = np.nan  # a block of bad pixels, as in real cutouts
    fits.PrimaryHDU(cube).writeto(path, overwrite=True)


def corrupt_images(ctx: Ctx) -> list[Row]:
    """Bad image files in a catalog: reported by row in rejected.csv, valid rows all written."""
    root = ctx.work / "corrupt-catalog"
    good = write_catalog(root, 30, seed=2)
    df = pd.read_parquet(good)
    rng = np.random.default_rng(3)
    jpeg = image_bytes(galaxy_image(rng, IMAGE_SIZE), "JPEG")
    bad = {  # name -> (file suffix, bytes or writer, must it be rejected?)
        "truncated JPEG": (".jpg", jpeg[: len(jpeg) // 2], True),
        "zero-byte file": (".jpg", b"", True),
        "missing file": (".jpg", None, True),
        "PNG with .jpg extension": (".jpg", image_bytes(galaxy_image(rng, IMAGE_SIZE), "PNG"), False),
        "FITS with NaN pixels": (".fits", _fits_with_nans, False),
    }
    extra = []
    for k, (name, (suffix, content, _)) in enumerate(bad.items()):
        loc = f"images/bad{k}{suffix}"
        if callable(content):
            content(root / loc, rng)
        elif content is not None:
            (root / loc).write_bytes(content)
        extra.append({**df.iloc[k].to_dict(), "id_str": f"BAD{k}.{name.split()[0]}", "file_loc": loc})
    catalog = save_catalog(pd.concat([df, pd.DataFrame(extra)], ignore_index=True), root / "with-bad.parquet")
    out = ctx.work / "shards" / "corrupt"
    p = ctx.cli(*prepare_args(catalog, out), timeout=300)
    rejected = rejected_text(out)
    ids = set(shard_ids(out)) if (out / "manifest.json").exists() else set()
    missing_good = len(set(df["id_str"]) - ids)
    rows = []
    for k, (name, (_, _, must_reject)) in enumerate(bad.items()):
        id_ = extra[k]["id_str"]
        reported, written = id_ in rejected, id_ in ids
        ok = p.rc == 0 and not p.traceback and missing_good == 0 and (reported if must_reject else reported != written)
        how = "rejected by row" if reported else "written (decoded)" if written else "silently dropped"
        rows.append(Row(f"corrupt input: {name}", 1, int(ok), missing_good,
                        f"prepare rc={p.rc}, {how}; {missing_good} valid rows missing" + ("" if ok else f" [{p.tail()}]")))
    return rows


def corrupt_shards(ctx: Ctx) -> list[Row]:
    """A truncated tar and a shard whose bytes no longer match the manifest: verify names both."""
    src = labelled_shards(ctx)
    out = ctx.work / "shards" / "damaged"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out)
    names = sorted(x.name for x in out.glob("shard-*.tar"))
    truncated, flipped = out / names[1], out / names[2]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    flipped.write_bytes(bytes(data))
    clean = ctx.cli("verify", src, timeout=120)
    p = ctx.cli("verify", out, timeout=120)
    text = p.out + p.err
    rows = []
    for label, bad in (("truncated tar shard", truncated), ("shard checksum mismatch", flipped)):
        ok = p.rc not in (0, None) and bad.name in text and not p.traceback and clean.rc == 0
        rows.append(Row(f"corrupt input: {label}", 1, int(ok), 0,
                        f"verify rc={p.rc} ({'names' if bad.name in text else 'does NOT name'} {bad.name}); "
                        f"on the intact set rc={clean.rc}" + ("" if ok else f" [{p.tail()}]")))
    return rows


# -- bad catalogs -------------------------------------------------------------------------------
def _bad_catalogs(ctx: Ctx, root):
    """name -> (catalog path, ids that must be reported or tokens the error must name)."""
    df = pd.read_parquet(labelled_catalog(ctx)).head(20)
    col = df.columns[3]
    cases = {}

    def case(name, frame, expect, suffix=".parquet"):
        cases[name] = (save_catalog(frame, root / f"{name.replace(' ', '_')}{suffix}"), expect)

    for name, value in (("NaN votes", np.nan), ("negative votes", -3.0), ("float votes", 2.5)):
        f = df.copy()
        f.loc[[2, 5], col] = value
        case(name, f, [f.loc[2, "id_str"], f.loc[5, "id_str"]])
    case("vote column not in schema", df.assign(**{"bar-dr5_maybe": 1.0}), ["bar-dr5_maybe"])
    case("duplicate ids", pd.concat([df, df.iloc[[4]]], ignore_index=True), [df.loc[4, "id_str"]])
    case("missing id column", df.drop(columns=["id_str"]), ["id_str"])
    case("empty catalog (header only)", df.iloc[:0], [])
    n = 20_000 if ctx.quick else 1_000_000
    case(f"{n:,}-row catalog, no usable row", pd.DataFrame(
        {"id_str": [f"X{i}" for i in range(n)], "file_loc": [f"images/none{i}.jpg" for i in range(n)]}), [])
    junk = root / "not_a_catalog.parquet"
    junk.write_bytes(b"PAR1 this is not parquet \x00\xff" * 10)
    cases["unreadable catalog file"] = (junk, ["not_a_catalog.parquet"])
    return cases


def bad_catalogs(ctx: Ctx) -> list[Row]:
    """Each bad catalog: a clear error naming the problem, or rejected.csv naming the rows."""
    root = ctx.work / "bad-catalogs"
    rows = []
    for name, (catalog, expect) in _bad_catalogs(ctx, root).items():
        out = ctx.work / "shards" / "bad" / catalog.stem
        p = ctx.cli(*prepare_args(catalog, out, 10, 1, "--unlabelled") if "usable" in name else
                    prepare_args(catalog, out, 10, 1), timeout=600)
        said = p.out + p.err + rejected_text(out)
        named = all(str(e) in said for e in expect)
        if p.rc == 0:  # accepted: the bad rows must be reported, the rest written once
            ids = shard_ids(out) if (out / "manifest.json").exists() else []
            ok, how = named and len(ids) == len(set(ids)) and bool(expect), "exit 0, rows reported"
        else:
            ok, how = p.rc is not None and named and bool(p.err.strip()), f"exit {p.rc}"
        ok = ok and not p.traceback
        rows.append(Row(f"bad catalog: {name}", 1, int(ok), 0,
                        f"{how} in {p.seconds:.0f} s: {p.tail(160)}" + ("" if named else f" [does not name {expect}]")
                        + (" [Python traceback]" if p.traceback else "")))
    return rows


# -- full disk under shards ---------------------------------------------------------------------
def disk_full_shards(ctx: Ctx) -> list[Row]:
    """prepare into a directory with room for ~40% of its shards: clear error, no partial shard."""
    from benchmarks.faults.training import small_dir
    src = labelled_shards(ctx)
    size = sum(f.stat().st_size for f in src.glob("shard-*.tar"))
    shard = max(f.stat().st_size for f in src.glob("shard-*.tar"))
    mnt = ctx.work / "full-disk" / "shards"
    with small_dir(mnt, int(size * 0.4), shard // 2) as (popen, how):
        out = mnt / "out"
        p = ctx.cli(*prepare_args(labelled_catalog(ctx), out), timeout=300, **popen)
        tars = sorted(out.glob("shard-*.tar")) if out.exists() else []
        broken = [t.name for t in tars if not complete_tar(t)]
    ok = p.rc not in (0, None) and not p.traceback and not broken and says_disk_full(p)
    return [Row(f"disk full ({how}): shard write", 1, int(ok), len(broken),
                f"rc={p.rc}; {len(tars)} shard file(s) left, partial: {broken or 'none'}; {p.tail(200)}"
                + (" [Python traceback]" if p.traceback else ""))]
