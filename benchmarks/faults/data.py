"""Faults on the data path: `hybridssl prepare` killed, corrupt images and shards, bad catalogs."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd

from benchmarks.faults.harness import (Ctx, Row, complete_tar, galaxy_image, image_bytes, kill_landed,
                                       rejected_text, save_catalog, says_disk_full, shard_ids, small_dir,
                                       write_catalog)
from hybridssl.storage.shards import sha256_file

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
def _kill_after(ctx: Ctx, p, out, target: int) -> tuple[int, bool]:
    """SIGKILL ``p`` once ``target`` shard files exist (plus a random few ms): shards seen, and
    whether ``p`` had finished before the kill (then the kill injected nothing)."""
    def done():
        return len(list(out.glob("shard-*.tar"))) if out.exists() else 0
    while p.poll() is None and done() < target:
        time.sleep(0.005)
    time.sleep(float(ctx.rng.uniform(0, 0.05)))
    finished = not kill_landed(p)
    return done(), finished


def prepare_sigkill(ctx: Ctx) -> list[Row]:
    """Kill `prepare` (and its workers) at random points; re-run; verify; count ids."""
    tries, shard_size = (1, 10) if ctx.quick else (5, 10)
    catalog = labelled_catalog(ctx)
    expected = set(pd.read_parquet(catalog, columns=["id_str"])["id_str"])
    n_shards = -(-len(expected) // shard_size)
    survived, lost, notes = 0, 0, []
    for t in range(tries):
        out = ctx.work / "prepare-kill" / f"try{t}"
        target = int(ctx.rng.integers(0, n_shards))
        p = ctx.spawn(*prepare_args(catalog, out, shard_size), log=ctx.path("logs", f"prepare-kill{t}.log"))
        seen, finished = _kill_after(ctx, p, out, target)
        before = {x.name: (x.stat().st_mtime_ns, sha256_file(x)) for x in out.glob("shard-*.tar")} if out.exists() else {}
        rerun = ctx.cli(*prepare_args(catalog, out, shard_size), timeout=300)
        verify = ctx.cli("verify", out, timeout=120)
        try:
            ids = shard_ids(out)
        except Exception as e:  # an unreadable result is exactly what this fault looks for
            ids, notes = [], notes + [f"try {t}: shards unreadable ({e})"]
        dup, missing = len(ids) - len(set(ids)), len(expected - set(ids))
        rewritten = [x for x in out.glob("shard-*.tar") if x.name in before and x.stat().st_mtime_ns != before[x.name][0]]
        changed = sum(sha256_file(x) != before[x.name][1] for x in rewritten)
        ok = (not finished and rerun.rc == 0 and verify.rc == 0 and dup == 0 and missing == 0
              and not rerun.traceback and not changed)  # a kill after the end tested nothing
        survived += ok
        lost += dup + missing
        notes.append(f"try {t}: killed {'after it finished (not counted)' if finished else f'with {seen}/{n_shards} shard files on disk'}"
                     f"; re-run rc={rerun.rc}, verify rc={verify.rc}, {dup} duplicate / {missing} missing ids,"
                     f" {len(rewritten)} shard(s) finished but not yet in the manifest rewritten, {changed} of them"
                     " with different bytes" + ("" if ok else f" [{rerun.tail()} {verify.tail()}]"))
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
    """name -> (catalog, bad ids or named tokens, rows that must still be written or None for an error)."""
    src = labelled_catalog(ctx)
    df = pd.read_parquet(src).head(20)
    df["file_loc"] = [str((src.parent / f).resolve()) for f in df["file_loc"]]
    col = "smooth-or-featured-dr5_smooth"
    cases = {}

    def case(name, frame, expect, written=None):
        cases[name] = (save_catalog(frame, root / f"{name.split(' (')[0].replace(' ', '_')}.parquet"), expect, written)

    for name, value in (("NaN votes", np.nan), ("negative votes", -3.0), ("float votes", 2.5)):
        f = df.copy()
        f.loc[[2, 5], col] = value
        case(name, f, [f.loc[2, "id_str"], f.loc[5, "id_str"], col], written=len(df) - 2)
    f = df.copy()
    f.loc[[3], "bar-dr5_maybe"] = 4.0
    case("vote column not in schema", f, ["bar-dr5_maybe", df.loc[3, "id_str"]], written=len(df) - 1)
    case("duplicate ids", pd.concat([df, df.iloc[[4]]], ignore_index=True), [df.loc[4, "id_str"]], written=len(df))
    case("missing id column", df.drop(columns=["id_str"]), ["id_str"])
    case("empty catalog (header only)", df.iloc[:0], [])
    n = 20_000 if ctx.quick else 1_000_000
    case(f"{n:,}-row catalog, no usable row (missing images, NaN votes)", df.iloc[np.arange(n) % len(df)].assign(
        id_str=[f"X{i}" for i in range(n)], file_loc=[f"images/none{i}.jpg" for i in range(n)], **{col: np.nan}), [])
    junk = root / "not_a_catalog.parquet"
    junk.write_bytes(b"PAR1 this is not parquet \x00\xff" * 10)
    cases["unreadable catalog file"] = (junk, ["not_a_catalog.parquet"], None)
    return cases


def bad_catalogs(ctx: Ctx) -> list[Row]:
    """Rows with bad values are rejected by row (the rest written once); a catalog that is
    wrong as a whole, or leaves nothing valid, is one clear error. Never a traceback."""
    root = ctx.work / "bad-catalogs"
    rows = []
    for name, (catalog, expect, written) in _bad_catalogs(ctx, root).items():
        out = ctx.work / "shards" / "bad" / catalog.stem
        p = ctx.cli(*prepare_args(catalog, out, 10, 1), timeout=600)
        said = p.out + p.err + rejected_text(out)
        named = [e for e in expect if str(e) not in said]
        ids = shard_ids(out) if p.rc == 0 and (out / "manifest.json").exists() else []
        if written is None:
            ok, how = p.rc not in (0, None) and bool(p.err.strip()), f"exit {p.rc}"
        else:
            ok, how = p.rc == 0 and len(ids) == len(set(ids)) == written, f"exit {p.rc}, {len(ids)}/{written} rows written"
        ok = ok and not named and not p.traceback
        rows.append(Row(f"bad catalog: {name}", 1, int(ok), 0 if written is None else abs(written - len(set(ids))),
                        f"{how}: {_first_reason(out) or p.message()}"
                        + (f" [does not name {named}]" if named else "") + (" [Python traceback]" if p.traceback else ""),
                        seconds=p.seconds))
    return rows


def _first_reason(out) -> str:
    lines = rejected_text(out).splitlines()
    return f"rejected.csv ({len(lines) - 1} rows): {lines[1][:160]}" if len(lines) > 1 else ""


# -- full disk under shards ---------------------------------------------------------------------
def disk_full_shards(ctx: Ctx) -> list[Row]:
    """prepare into a directory with room for ~40% of its shards: clear error, no partial shard."""
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
                f"rc={p.rc}; {len(tars)} complete shard file(s) kept, partial: {broken or 'none'}; {p.message()}"
                + (" [Python traceback]" if p.traceback else ""))]
