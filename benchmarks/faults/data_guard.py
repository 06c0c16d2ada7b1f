"""Issue 15, data side: two `prepare` runs on one --out, --out a file, no inodes left, hostile
catalogs (votes past float32, 16-bit images, long ids, odd --keep-columns) and tampered manifests
read by `embed`/`predict`."""
from __future__ import annotations

import json
import shutil
import time

import cv2
import numpy as np
import pandas as pd

from benchmarks.faults.data import IMAGE_SIZE, labelled_catalog, labelled_shards, prepare_args
from benchmarks.faults.harness import (Ctx, Row, kill_group, rejected_text, save_catalog, says_disk_full, shard_ids,
                                      tmpfs)
from benchmarks.faults.training import exported_run
from hybridssl.storage.locks import LOCK_FILE


def _one_line(p) -> bool:
    return p.rc not in (0, None) and not p.traceback and len(p.err.strip().splitlines()) == 1


def _wait_for(path, p, limit: float = 120) -> bool:
    t0 = time.monotonic()
    while not path.exists() and p.poll() is None and time.monotonic() - t0 < limit:
        time.sleep(0.01)
    return path.exists()


# -- one --out, two writers -------------------------------------------------------------------
def two_prepares(ctx: Ctx) -> list[Row]:
    """A second `prepare` into a busy --out refuses; the first finishes intact; a SIGKILLed
    run's lock is detected as stale by the next run."""
    catalog = labelled_catalog(ctx)
    expected = set(pd.read_parquet(catalog, columns=["id_str"])["id_str"])
    out = ctx.work / "guard" / "two-runs"
    first = ctx.spawn(*prepare_args(catalog, out, 5, 1), log=ctx.path("logs", "guard-first.log"))
    held = _wait_for(out / LOCK_FILE, first)
    second = ctx.cli(*prepare_args(catalog, out, 5, 1), timeout=300)
    first.wait(300)
    verify = ctx.cli("verify", out, timeout=120)
    ids = shard_ids(out) if (out / "manifest.json").exists() else []
    lost = len(expected - set(ids)) + len(ids) - len(set(ids))
    ok = held and _one_line(second) and "in use" in second.err and first.returncode == 0 and verify.rc == 0 and not lost
    rows = [Row("two `prepare` runs into one --out", 1, int(ok), lost,
                f"second rc={second.rc}: {second.message()}; first rc={first.returncode}, verify rc={verify.rc}, "
                f"{lost} ids lost or doubled")]

    stale = ctx.work / "guard" / "stale"
    killed = ctx.spawn(*prepare_args(catalog, stale, 5, 1), log=ctx.path("logs", "guard-killed.log"))
    held = _wait_for(stale / LOCK_FILE, killed)
    kill_group(killed)
    left = (stale / LOCK_FILE).exists()
    rerun = ctx.cli(*prepare_args(catalog, stale, 5, 1), timeout=300)
    ids = shard_ids(stale) if rerun.rc == 0 else []
    ok = held and left and rerun.rc == 0 and "stale lock" in rerun.err and set(ids) == expected
    rows.append(Row("stale --out lock after SIGKILL", 1, int(ok), len(expected - set(ids)),
                    f"lock file left by the kill: {left}; re-run rc={rerun.rc}, "
                    f"{'says' if 'stale lock' in rerun.err else 'does NOT say'} stale; {len(set(ids))} ids written"))
    return rows


def out_is_a_file(ctx: Ctx) -> list[Row]:
    target = ctx.path("guard", "out-file")
    target.write_text("not a directory\n")
    p = ctx.cli(*prepare_args(labelled_catalog(ctx), target), timeout=300)
    ok = _one_line(p) and "is a file" in p.err and target.read_text() == "not a directory\n"
    return [Row("`prepare --out` an existing file", 1, int(ok), 0, f"rc={p.rc}: {p.message()}")]


def _inode_starved(path, inodes: int):
    """A tmpfs with ``inodes`` inodes (root directory included); mount must be allowed."""
    return tmpfs(path, f"size=64m,nr_inodes={inodes}", "to run out of inodes")


def no_inodes(ctx: Ctx) -> list[Row]:
    """Room for the output directory, its lock and a few files, then no inode is left."""
    rows = []
    for inodes in (2, 6):  # 2: no inode for the lock file; 6: none for a later temp shard or manifest
        with _inode_starved(ctx.work / "guard" / f"inodes{inodes}", inodes) as mnt:
            out = mnt / "out"
            p = ctx.cli(*prepare_args(labelled_catalog(ctx), out, 10, 1), timeout=300)
            tmp = sorted(q.name for q in out.glob(".*.tmp")) if out.exists() else []
        ok = p.rc not in (0, None) and not p.traceback and says_disk_full(p) and not tmp
        rows.append(Row(f"no inodes left ({inodes}-inode tmpfs): prepare", 1, int(ok), len(tmp),
                        f"rc={p.rc}; temp files left: {tmp or 'none'}; {p.message()}"
                        + (" [Python traceback]" if p.traceback else "")))
    return rows


# -- hostile catalogs ------------------------------------------------------------------------
def _counts_16bit(rng, bands) -> np.ndarray:
    """A 12-bit galaxy (sky 300 + exponential disc, Poisson noise) in uint16."""
    yy, xx = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE] - (IMAGE_SIZE - 1) / 2
    disc = np.exp(-np.hypot(xx, yy / 0.6) / 5)
    return np.minimum(rng.poisson(np.stack([300 + 3500 * b * disc for b in bands], -1)), 4095).astype(np.uint16)


def hostile_catalog(ctx: Ctx) -> list[Row]:
    root = ctx.work / "guard" / "hostile"
    src = labelled_catalog(ctx)
    df = pd.read_parquet(src).head(12).copy()
    df["file_loc"] = [str((src.parent / f).resolve()) for f in df["file_loc"]]
    rng = np.random.default_rng(5)
    (root / "img").mkdir(parents=True, exist_ok=True)
    cases = {}  # name -> (row, must be rejected)
    for row, (name, suffix, bands) in enumerate([("16-bit grey PNG", ".png", (1.0,)),
                                                 ("16-bit RGB PNG", ".png", (1.0, 0.8, 0.5)),
                                                 ("16-bit RGB TIFF", ".tif", (1.0, 0.8, 0.5))]):
        counts = _counts_16bit(rng, bands)
        path = root / "img" / f"{row}{suffix}"
        cv2.imwrite(str(path), counts[..., ::-1] if len(bands) == 3 else counts[..., 0])
        df.loc[row, "file_loc"] = str(path)
        cases[name] = (row, False)
    df.loc[3, "id_str"] = "J" + "0123456789." * 15  # 165 characters, ~200 once escaped
    df.loc[4, "id_str"] = "銀河系外星雲" * 4  # 24 CJK characters: 216 escaped
    cases.update({"id longer than a ustar name (ASCII)": (3, False), "id longer than a ustar name (CJK)": (4, False)})
    df.loc[5, "smooth-or-featured-dr5_smooth"] = 1e40
    cases["vote 1e40 (float32 overflow)"] = (5, True)
    catalog = save_catalog(df, root / "catalog.parquet")
    out = ctx.work / "shards" / "hostile"
    p = ctx.cli(*prepare_args(catalog, out, 4, 2), timeout=300)
    verify = ctx.cli("verify", out, timeout=120)
    from hybridssl.data import IndexedShards
    got = {s["id_str"]: s["image"].numpy() for s in IndexedShards(out)} if p.rc == 0 else {}
    rejected = rejected_text(out)
    lost = len({i for r, i in enumerate(df["id_str"]) if r != 5} - set(got))
    rows = []
    for name, (row, must_reject) in cases.items():
        id_ = df.loc[row, "id_str"]
        if must_reject:
            ok, how = id_ in rejected and id_ not in got and "too large" in rejected, "rejected by row"
        elif name.startswith("16-bit"):
            img = got.get(id_)
            white = float((img == 255).mean()) if img is not None else 1.0
            ok, how = img is not None and white < 0.01 and img.max() > 200, f"stored, {white:.1%} of pixels white"
        else:
            ok, how = id_ in got, "stored (PAX name) and read back"
        ok = ok and p.rc == 0 and verify.rc == 0 and not p.traceback and not lost
        rows.append(Row(f"hostile catalog: {name}", 1, int(ok), lost if must_reject else int(id_ not in got),
                        f"prepare rc={p.rc}, verify rc={verify.rc}; {how}; {lost} valid rows missing"
                        + ("" if ok else f" [{p.tail()}]")))
    return rows


def keep_columns(ctx: Ctx) -> list[Row]:
    src = labelled_catalog(ctx)
    df = pd.read_parquet(src).head(6).copy()
    df["file_loc"] = [str((src.parent / f).resolve()) for f in df["file_loc"]]
    df["objid"] = [f"O{i}" for i in range(len(df))]
    df["seen"] = pd.Timestamp("2020-05-06T07:08:09", tz="UTC")
    df["tags"] = [["bar"], [], ["ring", "lens"], ["bar"], [], []]
    df["thumb"] = [b"\x89PNG"] * len(df)
    catalog = save_catalog(df, ctx.work / "guard" / "keep" / "catalog.parquet")
    rows = []
    for name, extra, want in (("--keep-columns id_str with --id-column objid", ("--id-column", "objid", "--keep-columns",
                                                                                 "id_str"), "id_str"),
                              ("--keep-columns on a bytes column", ("--keep-columns", "thumb"), "thumb")):
        p = ctx.cli(*prepare_args(catalog, ctx.work / "guard" / "keep" / want, 10, 1, *extra), timeout=300)
        ok = _one_line(p) and want in p.err
        rows.append(Row(f"bad catalog: {name}", 1, int(ok), 0, f"rc={p.rc}: {p.message()}"))
    out = ctx.work / "guard" / "keep" / "converted"
    p = ctx.cli(*prepare_args(catalog, out, 10, 1, "--keep-columns", "seen,tags"), timeout=300)
    from hybridssl.data import IndexedShards
    metas = [s["meta"] for s in IndexedShards(out)] if p.rc == 0 else []
    ok = (p.rc == 0 and len(metas) == len(df) and all(m["seen"] == "2020-05-06T07:08:09+00:00" for m in metas)
          and sorted(map(tuple, (m["tags"] for m in metas))) == sorted(map(tuple, df["tags"])))
    rows.append(Row("bad catalog: --keep-columns on datetime and list columns", 1, int(ok), len(df) - len(metas),
                    f"prepare rc={p.rc}; stored as ISO text and JSON lists: {metas[:1] or p.message()}"))
    return rows


# -- manifests that readers must not trust ----------------------------------------------------

def tampered_manifests(ctx: Ctx) -> list[Row]:
    """A manifest naming a shard outside the set, one shard listed twice, a shard copied under
    another name: `embed` and `predict` refuse each with one line."""
    src, model = labelled_shards(ctx), exported_run(ctx)
    rows = []
    for name in ("shard outside the folder", "same shard listed twice", "shard copied under another name"):
        bad = ctx.work / "guard" / "manifests" / name.replace(" ", "-")
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(src, bad)
        m = json.loads((bad / "manifest.json").read_text())
        first = m["shards"][0]
        if name.startswith("shard outside"):
            shutil.copy(bad / first["name"], bad.parent / "elsewhere.tar")
            m["shards"].append(dict(first, name="../elsewhere.tar"))
        elif name.startswith("same shard"):
            m["shards"].append(dict(first))
        else:
            copy = f"shard-{len(m['shards']):06d}.tar"
            shutil.copy(bad / first["name"], bad / copy)
            m["shards"].append(dict(first, name=copy))
        m["n_samples"] += first["n_samples"]
        (bad / "manifest.json").write_text(json.dumps(m))
        for cmd in ("embed", "predict"):
            out = bad / f"{cmd}.parquet"
            p = ctx.cli(cmd, "--model", model, "--shards", bad, "--out", out, timeout=300)
            ok = p.rc not in (0, None) and not p.traceback and not out.exists()
            rows.append(Row(f"tampered manifest: {name} -> `{cmd}`", 1, int(ok), int(out.exists()),
                            f"rc={p.rc}: {p.message()}" + (" [Python traceback]" if p.traceback else "")))
    return rows
