"""`prepare` and the shard readers against hostile input (issue 15): a held --out, --out a file,
votes float32 cannot hold, reserved or non-JSON keep columns, ids past the ustar name limit,
no space for a temp file, and manifests that point outside the set or list a shard twice."""
import datetime
import errno
import json
import tempfile

import numpy as np
import pandas as pd
import pytest
from factories import fake_votes, write_shards
from PIL import Image

from hybridssl.storage.atomic import DiskWriteError, atomic_write_text
from hybridssl.cli import main
from hybridssl.data import IndexedShards
from hybridssl.storage.locks import dir_lock
from hybridssl.schema import load_schema
from hybridssl.storage.shards import ShardError, read_manifest, shard_paths

SCHEMA = load_schema("gz_evo_v0.1")


def catalog(root, ids, labelled=True, **columns):
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(len(ids)):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(root / "img" / f"{i}.png")
    df = pd.DataFrame({"id_str": ids, "file_loc": [f"img/{i}.png" for i in range(len(ids))], **columns})
    if labelled:
        votes = pd.DataFrame(np.stack([fake_votes(rng, SCHEMA, "dr5") for _ in ids]).astype(np.float64),
                             columns=SCHEMA.label_cols)
        df = pd.concat([df, votes], axis=1).assign(campaign="dr5")
    df.to_parquet(root / "c.parquet")
    return root / "c.parquet"


def prepare(cat, out, *extra):
    return main(["prepare", "--catalog", str(cat), "--out", str(out), "--image-size", "16", "--workers", "1",
                 *map(str, extra)])


def samples(out):
    return {k: v for k, v in ((s["id_str"], s) for s in IndexedShards(out))}


def test_a_held_out_dir_and_an_out_that_is_a_file_are_one_line_each(tmp_path, capsys):
    cat = catalog(tmp_path, ["a", "b"], labelled=False)
    with dir_lock(tmp_path / "out", "hybridssl prepare (first)"):
        assert prepare(cat, tmp_path / "out", "--unlabelled") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in use by hybridssl prepare (first)" in err
    assert not (tmp_path / "out" / "manifest.json").exists()
    (tmp_path / "file").write_text("x")
    assert prepare(cat, tmp_path / "file", "--unlabelled") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a directory" in err
    assert prepare(cat, tmp_path / "out", "--unlabelled") == 0  # released: the next run works


def test_votes_float32_cannot_hold_are_rejected_by_row(tmp_path):
    cat = catalog(tmp_path, ["ok", "huge", "inf32"])
    df = pd.read_parquet(cat)
    df.loc[1, "smooth-or-featured-dr5_smooth"] = 1e40  # finite in float64, inf in float32
    df.loc[2, "smooth-or-featured-dr5_smooth"] = 2.0 ** 24 + 2
    df.to_parquet(cat)
    assert prepare(cat, tmp_path / "out") == 0
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv").set_index("id_str")["reason"]
    assert set(rejected.index) == {"huge", "inf32"} and "1e+40" in rejected["huge"] and "too large" in rejected["huge"]
    assert set(samples(tmp_path / "out")) == {"ok"}
    assert main(["verify", str(tmp_path / "out"), "--quiet"]) == 0


def test_keep_columns_may_not_overwrite_meta_fields(tmp_path, capsys):
    cat = catalog(tmp_path, ["a"], labelled=False, objid=["A1"])
    assert prepare(cat, tmp_path / "out", "--unlabelled", "--id-column", "objid", "--keep-columns", "id_str") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "keep_columns" in err and "id_str" in err


def test_keep_columns_dates_and_lists_become_json_and_bytes_is_an_error_naming_it(tmp_path, capsys):
    when = [pd.Timestamp("2021-03-04 05:06:07", tz="UTC"), pd.NaT]
    cat = catalog(tmp_path, ["a", "b"], labelled=False, seen=when, day=[datetime.date(2020, 1, 2)] * 2,
                  tags=[["bar", "ring"], []], blob=[b"\x00\x01", b"\x02"])
    assert prepare(cat, tmp_path / "out", "--unlabelled", "--keep-columns", "seen,day,tags") == 0
    got = {k: s["meta"] for k, s in samples(tmp_path / "out").items()}
    assert got["a"]["seen"] == "2021-03-04T05:06:07+00:00" and got["b"]["seen"] is None
    assert got["a"]["day"] == "2020-01-02" and got["a"]["tags"] == ["bar", "ring"] and got["b"]["tags"] == []
    capsys.readouterr()  # the first run's progress line
    assert prepare(cat, tmp_path / "out2", "--unlabelled", "--keep-columns", "blob") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'blob'" in err and "bytes" in err and "row 0" in err


def test_ids_past_the_ustar_name_limit_are_stored_and_read_back(tmp_path):
    ids = ["J" + "1" * 150, "银河" * 20, "short.1"]
    cat = catalog(tmp_path, ids)
    assert prepare(cat, tmp_path / "out", "--shard-size", 2) == 0
    assert read_manifest(tmp_path / "out")["n_samples"] == 3
    assert set(samples(tmp_path / "out")) == set(ids)
    assert main(["verify", str(tmp_path / "out"), "--quiet"]) == 0


def test_no_space_for_the_temp_file_is_the_disk_full_error(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(DiskWriteError, match=r"could not write .*x\.json \(No space left on device\)"):
        atomic_write_text(tmp_path / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("names,match", [(["../elsewhere.tar"], "not a shard file name"),
                                         (["shard-000000.tar", "shard-000000.tar"], "listed twice")])
def test_readers_refuse_a_manifest_leaving_the_set_or_listing_a_shard_twice(tmp_path, names, match):
    out = write_shards(tmp_path / "s", 6, n_shards=2)
    m = json.loads((out / "manifest.json").read_text())
    entry = m["shards"][0]
    m["shards"] = [dict(entry, name=n) for n in names]
    m["n_samples"] = sum(e["n_samples"] for e in m["shards"])
    (out / "manifest.json").write_text(json.dumps(m))
    for read in (shard_paths, IndexedShards):
        with pytest.raises(ShardError, match=match):
            read(out)


def test_readers_refuse_the_same_galaxies_in_two_shards(tmp_path):
    out = write_shards(tmp_path / "s", 6, n_shards=2)
    (out / "shard-000001.tar").write_bytes((out / "shard-000000.tar").read_bytes())
    m = json.loads((out / "manifest.json").read_text())
    m["shards"][1] = dict(m["shards"][0], name="shard-000001.tar")
    m["n_samples"] = 2 * m["shards"][0]["n_samples"]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ShardError, match="is in shard-000000.tar and again in shard-000001.tar"):
        IndexedShards(out)


def test_an_image_size_past_the_bound_is_one_line(tmp_path, capsys):
    """Issue 24: --image-size 100000 would allocate 30 GB per image; refused before any image is read."""
    cat = catalog(tmp_path, ["a", "b"])
    assert main(["prepare", "--catalog", str(cat), "--out", str(tmp_path / "out"), "--image-size", "100000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'image_size': 100000 is not valid; valid: 8..4096" in err
    assert not (tmp_path / "out").exists()


def test_a_labelled_catalog_whose_votes_are_all_zero_warns(tmp_path, capsys):
    """Issue 24: such a set trains 'hybrid' with no vote signal; said at prepare, recorded for pretraining."""
    cat = catalog(tmp_path, ["a", "b", "c"])
    df = pd.read_parquet(cat)
    df[SCHEMA.label_cols] = 0.0
    df.to_parquet(cat)
    assert prepare(cat, tmp_path / "out") == 0
    assert "every vote is zero in all 3 rows" in capsys.readouterr().err
    assert read_manifest(tmp_path / "out")["n_voted"] == 0
    assert prepare(catalog(tmp_path / "voted", ["a", "b"]), tmp_path / "voted-out") == 0
    assert "every vote is zero" not in capsys.readouterr().err
    assert read_manifest(tmp_path / "voted-out")["n_voted"] == 2
