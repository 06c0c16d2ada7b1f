"""Reading tar shards by member offsets: same samples as tarfile/webdataset, unusual headers, corruption."""
import io
import tarfile

import numpy as np
import pytest
import webdataset as wds
from factories import write_shards

from hybridssl.data.samples import decode_votes_fast
from hybridssl.data.tars import tar_index, tar_samples
from hybridssl.storage.shards import ShardError, encode_votes


def write_tar(path, members, fmt=tarfile.USTAR_FORMAT):
    with tarfile.open(path, "w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return str(path)


def read_all(paths):
    return list(wds.DataPipeline(wds.SimpleShardList(paths), tar_samples()))


def webdataset_reads(paths):
    return list(wds.DataPipeline(wds.SimpleShardList(paths), wds.tarfile_to_samples()))


def test_same_samples_as_webdatasets_reader(tmp_path):
    d = write_shards(tmp_path / "lab", 10, n_shards=2, image_size=16)
    paths = sorted(str(p) for p in d.glob("*.tar"))
    ours, theirs = read_all(paths), webdataset_reads(paths)
    assert len(ours) == 10 and ours == theirs


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names_and_pax_headers_go_through_tarfile(tmp_path, fmt):
    long_key = "k" * 120  # beyond ustar's 100-byte name: a PAX or GNU long-name header
    members = [(f"{long_key}.image.jpg", b"abc"), (f"{long_key}.META.json", b"{}"),
               ("dir/short.image.jpg", b"xyz"), ("__meta__", b"skipped")]
    path = write_tar(tmp_path / "s.tar", members, fmt)
    entries, error = tar_index(path)
    assert error is None
    assert [(k, sorted(m)) for k, m in entries] == [(long_key, ["image.jpg", "meta.json"]),
                                                      ("dir/short", ["image.jpg"])]
    assert read_all([path]) == webdataset_reads([path])


def test_truncated_shard_keeps_the_samples_before_the_damage(tmp_path):
    path = write_tar(tmp_path / "s.tar", [(f"s{i}.image.jpg", bytes(700)) for i in range(4)])
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:512 * 2 + 1024 * 2 + 600])  # third member's data cut short
    entries, error = tar_index(path)
    assert [k for k, _ in entries] == ["s0", "s1"]
    assert isinstance(error, ShardError) and "s.tar" in str(error)
    skipped = []
    handler = lambda e: skipped.append(e) or True  # noqa: E731
    got = list(wds.DataPipeline(wds.SimpleShardList([path]), tar_samples(handler=handler)))
    assert [s["__key__"] for s in got] == ["s0", "s1"] and len(skipped) == 1


def test_bad_header_checksum_is_an_error_naming_the_file(tmp_path):
    path = write_tar(tmp_path / "s.tar", [("a.image.jpg", b"1"), ("b.image.jpg", b"2")])
    raw = bytearray(open(path, "rb").read())
    raw[1024 + 5] ^= 0x01  # second header's name, checksum left as it was
    open(path, "wb").write(bytes(raw))
    entries, error = tar_index(path)
    assert [k for k, _ in entries] == ["a"] and isinstance(error, ShardError) and "s.tar" in str(error)


def test_empty_and_missing_files_are_shard_errors(tmp_path):
    (tmp_path / "empty.tar").write_bytes(b"")
    assert tar_index(str(tmp_path / "empty.tar"))[1] is not None
    with pytest.raises(Exception):
        read_all([str(tmp_path / "missing.tar")])


def test_votes_fast_path_and_fallback_agree():
    v = np.arange(206, dtype=np.float32)
    assert np.array_equal(decode_votes_fast(encode_votes(v), 206), v)
    buf = io.BytesIO()
    np.save(buf, v.astype(np.float64))  # another header: read through np.load
    out = decode_votes_fast(buf.getvalue(), 206)
    assert out.dtype == np.float32 and np.array_equal(out, v)
    with pytest.raises(ValueError):
        decode_votes_fast(encode_votes(v)[:-8], 206)
