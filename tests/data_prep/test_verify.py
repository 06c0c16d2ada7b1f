"""`hybridssl verify`: a clean set passes; each kind of damage is found and the shard named."""
import io
import json
import tarfile

import numpy as np
import pytest
from factories import write_shards

from data_prep.verify import verify
from hybridssl.cli import main
from hybridssl.storage.shards import encode_votes, sha256_file


@pytest.fixture
def shards(tmp_path):
    return write_shards(tmp_path / "set", n=12, n_shards=4, image_size=16)


def _manifest(d):
    return json.loads((d / "manifest.json").read_text())


def _rewrite_manifest(d, **entry_changes):
    """Point the manifest at the files as they now are (so only content checks can fail)."""
    m = _manifest(d)
    for s in m["shards"]:
        p = d / s["name"]
        s.update(sha256=sha256_file(p), bytes=p.stat().st_size, **entry_changes.get(s["name"], {}))
    (d / "manifest.json").write_text(json.dumps(m))


def test_clean_set_passes(shards, capsys):
    assert main(["verify", str(shards), "--quiet"]) == 0
    assert "4 shards, 12 samples checked, 0 bad" in capsys.readouterr().out


def test_truncated_and_checksum_mismatch_are_named(shards, capsys):
    truncated, flipped = shards / "shard-000001.tar", shards / "shard-000002.tar"
    truncated.write_bytes(truncated.read_bytes()[:1500])
    data = bytearray(flipped.read_bytes())
    data[700] ^= 0xFF  # same size, other bytes
    flipped.write_bytes(bytes(data))
    assert main(["verify", str(shards), "--quiet"]) == 1
    out = capsys.readouterr().out
    lines = {line.split(":")[0]: line for line in out.splitlines() if line.startswith("BAD")}
    assert set(lines) == {"BAD shard-000001.tar", "BAD shard-000002.tar"}
    assert "truncated" in lines["BAD shard-000001.tar"]
    assert "sha256 does not match" in lines["BAD shard-000002.tar"]


def test_truncated_shard_with_rehashed_manifest_still_fails_on_content(shards):
    p = shards / "shard-000000.tar"
    p.write_bytes(p.read_bytes()[:1500])
    _rewrite_manifest(shards)
    report = verify(shards, progress=False)
    assert list(report.bad) == ["shard-000000.tar"]
    assert any("unreadable tar" in x or "samples, manifest says" in x for x in report.bad["shard-000000.tar"])


def test_missing_shard_duplicate_ids_and_unsafe_names(shards):
    (shards / "shard-000002.tar").write_bytes((shards / "shard-000000.tar").read_bytes())
    _rewrite_manifest(shards, **{"shard-000002.tar": {"n_samples": 3}})
    (shards / "shard-000003.tar").unlink()
    m = _manifest(shards)
    m["shards"].append({"name": "../outside.tar", "n_samples": 0, "sha256": "", "bytes": 0})
    (shards / "manifest.json").write_text(json.dumps(m))
    report = verify(shards, progress=False)
    assert report.bad["shard-000003.tar"] == ["missing file"]
    assert any("also in shard-000000.tar" in x for x in report.bad["shard-000002.tar"])
    assert "not a shard file name" in report.bad["../outside.tar"][0]


def _replace_member(path, member_suffix, data):
    """Rewrite a shard with the first member ending in ``member_suffix`` replaced by ``data``."""
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    done = False
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tw:
        for m, content in members:
            if not done and m.name.endswith(member_suffix):
                content, done = data, True
                m.size = len(data)
            tw.addfile(m, io.BytesIO(content))


@pytest.mark.parametrize("suffix,data,problem", [
    (".votes.npy", encode_votes(np.ones(5)), "votes.npy is float32(5,)"),
    (".votes.npy", encode_votes(-np.ones(206)), "finite non-negative"),
    (".image.jpg", b"\xff\xd8\xff not a jpeg", "does not decode"),
    (".meta.json", b"{not json", "not JSON"),
])
def test_bad_samples_inside_a_consistent_shard(shards, suffix, data, problem):
    _replace_member(shards / "shard-000001.tar", suffix, data)
    _rewrite_manifest(shards)
    report = verify(shards, progress=False)
    assert list(report.bad) == ["shard-000001.tar"]
    assert problem in " ".join(report.bad["shard-000001.tar"])


def test_unlisted_shards_are_a_note_and_manifest_counts_checked(shards, capsys):
    (shards / "shard-000009.tar").write_bytes((shards / "shard-000000.tar").read_bytes())
    m = _manifest(shards)
    m["n_samples"] = 99
    (shards / "manifest.json").write_text(json.dumps(m))
    assert main(["verify", str(shards), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "shard-000009.tar" in out and "note:" in out and "BAD manifest.json: n_samples is 99" in out


def test_no_manifest_is_a_clear_error(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
