"""`hybridssl prepare` end to end: real GZ tables, FITS, bad input, resume, full disk."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from testpaths import FIXTURES
from factories import fake_votes
from PIL import Image

from hybridssl.storage.images import decode_image
from hybridssl.cli import main
from hybridssl.schema import load_schema
from hybridssl.storage.shards import decode_key, decode_votes, read_manifest, sha256_file

TABLES = FIXTURES / "gz_vote_tables"
DR5 = TABLES / "gz_decals" / "gz_decals_volunteers_5.csv"
SCHEMA = load_schema("gz_evo_v0.1")
REAL_IMAGES = sorted((TABLES / "gz_decals" / "dr5").rglob("*.png")) + sorted((TABLES / "gz2" / "images").glob("*.jpg"))


def read_samples(out: Path) -> dict[str, dict]:
    """id -> {ext: bytes} over the manifest's shards, read with plain tarfile."""
    samples = {}
    for s in read_manifest(out)["shards"]:
        with tarfile.open(out / s["name"]) as tf:
            for m in tf.getmembers():
                key, _, ext = m.name.partition(".")
                samples.setdefault(decode_key(key), {})[ext] = tf.extractfile(m).read()
    return samples


def prepare(*args) -> int:
    return main(["prepare", *map(str, args)])


def test_real_gz_decals_dr5_table_end_to_end(tmp_path, capsys):
    out = tmp_path / "dr5"
    rc = prepare("--catalog", DR5, "--out", out, "--campaign", "dr5", "--id-column", "iauname",
                 "--path-column", "png_loc", "--image-size", 48, "--shard-size", 4, "--workers", 2,
                 "--keep-columns", "redshift,upload_group")
    assert rc == 0
    assert "6 written in 2 shards, 0 rejected" in capsys.readouterr().out
    m = read_manifest(out)
    assert m["n_samples"] == 6 and [s["n_samples"] for s in m["shards"]] == [4, 2] and m["complete"]
    assert m["labelled"] and m["n_answers"] == 206 and m["schema_hash"] == SCHEMA.hash
    assert all(sha256_file(out / s["name"]) == s["sha256"] for s in m["shards"])
    assert "--campaign dr5" in m["command"]
    raw = pd.read_csv(DR5).set_index("iauname")
    samples = read_samples(out)
    assert set(samples) == set(raw.index)
    for id_str, s in samples.items():
        votes = decode_votes(s["votes.npy"])
        assert votes.dtype == np.float32 and votes.shape == (206,)
        assert votes[SCHEMA.column_index["bar-dr5_strong"]] == raw.loc[id_str, "bar_strong"]
        assert votes.sum() == sum(raw.loc[id_str, c.split("-dr5")[0] + c.split("-dr5")[1]]
                                  for c in SCHEMA.campaign_columns("dr5"))
        meta = json.loads(s["meta.json"])
        assert meta["id_str"] == id_str and meta["campaign"] == "dr5" and meta["source"] == DR5.name
        assert meta["redshift"] == pytest.approx(raw.loc[id_str, "redshift"])
        assert decode_image(s["image.jpg"]).shape == (48, 48, 3)
    assert (out / "rejected.csv").read_text().strip() == "row,id_str,reason"
    assert main(["verify", str(out), "--quiet"]) == 0


def test_real_gz2_hart16_parquet_end_to_end(tmp_path):
    gz2 = pd.read_csv(TABLES / "gz2" / "gz2_hart16.csv")
    names = pd.read_csv(TABLES / "gz2" / "gz2_filename_mapping.csv")
    cat = gz2.merge(names.rename(columns={"objid": "dr7objid"})[["dr7objid", "asset_id"]], on="dr7objid")
    cat = cat.copy()  # one block: adding a column to a fragmented frame warns
    cat["file_loc"] = [str((TABLES / "gz2" / "images" / f"{a}.jpg").resolve()) for a in cat["asset_id"]]
    cat.to_parquet(tmp_path / "gz2.parquet")
    out = tmp_path / "gz2"
    assert prepare("--catalog", tmp_path / "gz2.parquet", "--out", out, "--campaign", "gz2",
                   "--id-column", "dr7objid", "--image-size", 32, "--workers", 1) == 0
    samples = read_samples(out)
    assert set(samples) == set(map(str, gz2["dr7objid"]))
    for _, row in gz2.iterrows():
        votes = decode_votes(samples[str(row["dr7objid"])]["votes.npy"])
        assert votes[SCHEMA.column_index["bar-gz2_yes"]] == row["t03_bar_a06_bar_count"]
        assert votes[SCHEMA.column_index["how-rounded-gz2_cigar"]] == row["t07_rounded_a18_cigar_shaped_count"]
        gz2_cols = [SCHEMA.column_index[c] for c in SCHEMA.campaign_columns("gz2")]
        assert votes.sum() == votes[gz2_cols].sum() > 0


def test_fits_downstream_catalog_unlabelled_png_with_kept_columns(tmp_path):
    fits_dir = FIXTURES / "decals_fits"
    pd.DataFrame({"id_str": ["a", "bad_pix"], "file_loc": [str(fits_dir / "example_a.fits"),
                                                         str(fits_dir / "example_bad_pix.fits")],
                  "ring": [1, 0], "split": ["train", "test"]}).to_csv(tmp_path / "rings.csv", index=False)
    out = tmp_path / "rings"
    assert prepare("--catalog", tmp_path / "rings.csv", "--out", out, "--unlabelled", "--image-format", "png",
                   "--image-size", 64, "--keep-columns", "ring,split") == 0
    m = read_manifest(out)
    assert m["labelled"] is False and m["image_format"] == "png" and m["n_samples"] == 2
    samples = read_samples(out)
    assert "votes.npy" not in samples["a"]
    assert json.loads(samples["bad_pix"]["meta.json"]) == {"id_str": "bad_pix", "campaign": None,
                                                           "source": "rings.csv", "ring": 0, "split": "test"}
    img = decode_image(samples["a"]["image.png"])
    assert img.shape == (64, 64, 3) and img.std() > 5


def _bad_catalog(root: Path) -> tuple[Path, set, dict]:
    """A galaxy-datasets catalog with one row per kind of bad input; returns (catalog, good ids,
    row -> (id, reason word))."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows, good, bad = [], set(), {}
    for i, src in enumerate(REAL_IMAGES[:6]):
        shutil.copy(src, root / "images" / src.name)
        rows.append({"id_str": f"J{i}.5+0{i}", "file_loc": f"images/{src.name}"})
        good.add(rows[-1]["id_str"])
    jpg = REAL_IMAGES[-1].read_bytes()
    (root / "images" / "half.jpg").write_bytes(jpg[: len(jpg) // 2])
    (root / "images" / "zero.jpg").write_bytes(b"")
    shutil.copy(REAL_IMAGES[0], root / "images" / "png_named.jpg")
    extra = [("truncated", "images/half.jpg", "truncated"), ("zero", "images/zero.jpg", "empty"),
             ("png-as-jpg", "images/png_named.jpg", None), ("missing", "images/gone.jpg", "not found"),
             ("nan", "images/png_named.jpg", "missing vote"), ("negative", "images/png_named.jpg", "negative"),
             ("float", "images/png_named.jpg", "non-integer"), ("unknown", "images/png_named.jpg", "not an answer"),
             (rows[0]["id_str"], "images/png_named.jpg", "duplicate"), ("../../x", "images/png_named.jpg", None)]
    for id_str, loc, reason in extra:
        rows.append({"id_str": id_str, "file_loc": loc})
        if reason:
            bad[len(rows) - 1] = (id_str, reason)
        else:
            good.add(id_str)
    votes = np.stack([fake_votes(rng, SCHEMA, "dr5") for _ in rows])
    df = pd.concat([pd.DataFrame(rows), pd.DataFrame(votes, columns=SCHEMA.label_cols)], axis=1)
    df["campaign"] = "dr5"
    df["bar-dr5_maybe"] = 0.0
    at = {k: r for r, (k, _) in bad.items()}
    df.loc[at["nan"], "bar-dr5_no"] = np.nan
    df.loc[at["negative"], "bar-dr5_no"] = -1
    df.loc[at["float"], "bar-dr5_no"] = 1.5
    df.loc[at["unknown"], "bar-dr5_maybe"] = 3
    df.to_parquet(root / "catalog.parquet")
    return root / "catalog.parquet", good, bad


def test_every_bad_input_reported_by_row_and_valid_rows_written(tmp_path, capsys):
    catalog, good, bad = _bad_catalog(tmp_path / "cat")
    out = tmp_path / "deep" / "out"
    before = {p for p in tmp_path.rglob("*")}
    rc = prepare("--catalog", catalog, "--out", out, "--image-size", 32, "--shard-size", 3, "--workers", 2)
    assert rc == 0
    assert f"{len(good)} written in 4 shards, {len(bad)} rejected" in capsys.readouterr().out
    rejected = pd.read_csv(out / "rejected.csv", keep_default_na=False)
    assert list(rejected["row"]) == sorted(bad)
    for _, r in rejected.iterrows():
        id_str, word = bad[r["row"]]
        assert r["id_str"] == id_str and word in r["reason"], r["reason"]
    samples = read_samples(out)
    assert set(samples) == good and read_manifest(out)["n_samples"] == len(good)
    new = {p for p in tmp_path.rglob("*")} - before
    assert all(out in p.parents or p in out.parents or p == out for p in new), new - {out}
    assert not any(p.name == "x" for p in tmp_path.parent.rglob("x") if p.is_file())
    key_of_traversal = [m for m in tarfile.open(out / "shard-000003.tar").getnames() if "~2e~2e~2f" in m]
    assert key_of_traversal and all("/" not in m for m in key_of_traversal)

    strict = prepare("--catalog", catalog, "--out", tmp_path / "strict", "--image-size", 32, "--strict")
    assert strict == 1


def test_no_valid_rows_and_bad_catalogs_exit_nonzero_without_traceback(tmp_path, capsys):
    pd.DataFrame({"id_str": ["a", "b"], "file_loc": ["gone1.jpg", "gone2.jpg"]}).to_csv(tmp_path / "c.csv", index=False)
    assert prepare("--catalog", tmp_path / "c.csv", "--out", tmp_path / "o1", "--unlabelled") == 2  # user error (hybridssl.cli.USER_ERROR)
    assert "no valid rows" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "o1" / "rejected.csv")) == 2

    pd.DataFrame({"name": ["a"], "file_loc": ["x.jpg"]}).to_csv(tmp_path / "noid.csv", index=False)
    assert prepare("--catalog", tmp_path / "noid.csv", "--out", tmp_path / "o2") == 2
    err = capsys.readouterr().err
    assert "no id column 'id_str'" in err and "Traceback" not in err

    (tmp_path / "header.csv").write_text("id_str,file_loc\n")
    assert prepare("--catalog", tmp_path / "header.csv", "--out", tmp_path / "o3") == 2
    assert "no rows" in capsys.readouterr().err

    assert prepare("--catalog", DR5, "--out", tmp_path / "o4", "--image-format", "tiff") == 2
    assert "image_format" in capsys.readouterr().err


def _dr5_args(out, *extra):
    return ["--catalog", DR5, "--out", out, "--campaign", "dr5", "--id-column", "iauname",
            "--path-column", "png_loc", "--image-size", 32, "--shard-size", 2, "--workers", 1, *extra]


def test_resume_rewrites_only_missing_or_damaged_shards(tmp_path):
    out = tmp_path / "out"
    assert prepare(*_dr5_args(out)) == 0
    first = read_manifest(out)
    names = [s["name"] for s in first["shards"]]
    assert len(names) == 3
    mtimes = {n: (out / n).stat().st_mtime_ns for n in names}
    # An interrupted run: shard 1 never listed (dropped from the manifest and truncated on disk),
    # shard 2 listed but its file damaged, plus a temp file the killed writer left behind.
    m = dict(first, shards=[s for s in first["shards"] if s["name"] != names[1]], complete=False)
    (out / "manifest.json").write_text(json.dumps(m))
    (out / names[1]).write_bytes((out / names[1]).read_bytes()[:700])
    (out / names[2]).write_bytes(b"\0" * 10)
    (out / f".{names[1]}.abc123.tmp").write_bytes(b"partial")
    assert prepare(*_dr5_args(out)) == 0
    again = read_manifest(out)
    assert (out / names[0]).stat().st_mtime_ns == mtimes[names[0]]  # complete: not rewritten
    assert all((out / n).stat().st_mtime_ns != mtimes[n] for n in names[1:])
    assert again["shards"] == first["shards"]  # same rows, same bytes (tar mtimes are fixed)
    assert again["complete"] and again["created"] == first["created"]
    assert not list(out.glob(".*.tmp"))
    assert main(["verify", str(out), "--quiet"]) == 0


def test_resume_refuses_other_settings_in_the_same_directory(tmp_path, capsys):
    out = tmp_path / "out"
    assert prepare(*_dr5_args(out)) == 0
    assert prepare(*_dr5_args(out, "--image-size", 40)) == 2
    assert "image_size=32" in capsys.readouterr().err


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_gives_a_clear_error_and_keeps_complete_shards(tmp_path):
    """Shard 0 holds two flat (tiny) images, shard 1 two noise images that do not fit."""
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    for i in range(4):
        pixels = np.full((64, 64, 3), 90, np.uint8) if i < 2 else rng.integers(0, 255, (64, 64, 3), np.uint8)
        Image.fromarray(pixels).save(tmp_path / "img" / f"{i}.png")
    pd.DataFrame({"id_str": list("abcd"), "file_loc": [f"img/{i}.png" for i in range(4)]}).to_csv(
        tmp_path / "c.csv", index=False)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hybridssl.cli", "prepare", "--catalog", str(tmp_path / "c.csv"), "--out",
           str(out), "--unlabelled", "--image-size", "64", "--image-format", "png", "--shard-size", "2",
           "--workers", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_limit_file_size(12_000), env=env)
    assert p.returncode == 2, p.stderr  # the one exit code of errors the command names
    assert "could not write" in p.stderr and "shard-000001.tar" in p.stderr and "Traceback" not in p.stderr
    m = read_manifest(out)
    assert [s["name"] for s in m["shards"]] == ["shard-000000.tar"] and not m["complete"]
    assert sha256_file(out / "shard-000000.tar") == m["shards"][0]["sha256"]
    assert not (out / "shard-000001.tar").exists() and not list(out.glob(".*.tmp"))
    kept = (out / "shard-000000.tar").stat().st_mtime_ns
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)  # room again: finishes the rest
    assert p.returncode == 0, p.stderr
    assert read_manifest(out)["n_samples"] == 4 and (out / "shard-000000.tar").stat().st_mtime_ns == kept
