"""The read-once evaluation reader."""
import json
import tarfile

import numpy as np
import pytest
import torch
from factories import write_shards

from hybridssl.data import IndexedShards, make_eval_loader
from hybridssl.storage.shards import ShardError, decode_votes


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("s") / "lab", 23, n_shards=3, image_size=16,
                        keep={"ring": [i % 2 for i in range(23)]})


def test_every_sample_once_per_pass_in_manifest_order_with_workers(labelled):
    ds = IndexedShards(labelled, "gz_evo_v0.1")
    loader = make_eval_loader(ds, batch_size=5, num_workers=2)
    for _ in range(2):  # two passes, each exactly once
        ids = [i for b in loader for i in b["id_str"]]
        assert len(ids) == 23 and len(set(ids)) == 23
        assert ids == [ds[i]["id_str"] for i in range(len(ds))]


def test_sample_content_matches_the_tar(labelled):
    ds = IndexedShards(labelled)
    s = ds[7]
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 16, 16)
    assert s["has_votes"] is True and s["campaign"] == "dr5" and s["meta"]["ring"] == 7 % 2
    with tarfile.open(labelled / "shard-000000.tar") as t:  # 23 in 3 shards: 8, 8, 7
        names = sorted(m.name for m in t.getmembers() if m.name.endswith("votes.npy"))
        votes = decode_votes(t.extractfile(names[7]).read())
        meta = json.loads(t.extractfile(names[7].replace("votes.npy", "meta.json")).read())
    assert meta["id_str"] == s["id_str"]
    assert np.array_equal(s["votes"].numpy(), votes) and votes.sum() > 0


def test_unlabelled_batches_have_zero_votes_of_schema_width(tmp_path):
    ds = IndexedShards(write_shards(tmp_path / "u", 6, labelled=False, n_shards=2, image_size=16))
    assert ds[0]["votes"] is None and ds[0]["has_votes"] is False
    b = next(iter(make_eval_loader(ds, batch_size=6)))
    assert b["votes"].shape == (6, 206) and b["votes"].abs().sum() == 0 and not b["has_votes"].any()


def test_schema_mismatch_and_corruption_name_the_file(tmp_path, labelled):
    with pytest.raises(ShardError, match="schema_hash"):
        IndexedShards(labelled, "gz_decals_dr5")
    d = write_shards(tmp_path / "c", 4, n_shards=1, image_size=16)
    shard = d / "shard-000000.tar"
    raw = bytearray(shard.read_bytes())
    start = raw.index(b"\xff\xd8\xff")  # first JPEG's bytes inside the tar
    raw[start:start + 64] = bytes(64)
    shard.write_bytes(bytes(raw))
    ds = IndexedShards(d)
    with pytest.raises(ShardError, match="shard-000000.tar"):
        ds[0]
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["n_samples"] = 5
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="lists 5 samples, shards hold 4"):
        IndexedShards(d)
