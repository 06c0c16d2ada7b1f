"""The training stream: per-batch mix, distribution, exact resume, corrupt samples, URL safety."""
import collections
import io
import tarfile

import pytest
import torch
from factories import write_shards

from hybridssl.config import ConfigError, load_config
from hybridssl.data import DataConfig, IndexedShards, build_train_loader, decode_image
from hybridssl.storage.shards import ShardError

SCHEMA = "gz_evo_v0.1"


def config(labelled=(), unlabelled=(), **over):
    base = dict(batch_size=4, labelled_fraction=0.5, num_workers=0, shuffle_buffer=8,
                persistent_workers=False, epoch_length=None)
    base.update(over)
    sets = [f"labelled=[{','.join(map(str, labelled))}]", f"unlabelled=[{','.join(map(str, unlabelled))}]"]
    return load_config(DataConfig, "configs/data/default.yaml",
                       sets + [f"{k}={'null' if v is None else v}" for k, v in base.items()])


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    return (write_shards(root / "lab", 64, n_shards=8, image_size=16, seed=1),
            write_shards(root / "unlab", 64, labelled=False, n_shards=8, image_size=16, seed=2))


def ids_of(loader):
    return [b["id_str"] for b in loader]


def test_labelled_fraction_holds_in_every_batch(sets):
    lab, unlab = sets
    cfg = config([lab], [unlab], batch_size=10, labelled_fraction=0.3, epoch_length=12)
    truth = {s["id_str"]: s["votes"] for s in IndexedShards(lab, SCHEMA)}
    batches = list(build_train_loader(cfg, SCHEMA))
    assert len(batches) == 12
    for b in batches:
        assert b["image"].shape == (10, 3, 16, 16) and b["image"].dtype == torch.uint8
        assert b["votes"].dtype == torch.float32 and b["votes"].shape == (10, 206)
        assert b["has_votes"].tolist() == [True] * 3 + [False] * 7
        assert b["votes"][~b["has_votes"]].abs().sum() == 0
        for i in range(3):  # labelled rows carry exactly their own votes
            assert torch.equal(b["votes"][i], truth[b["id_str"][i]])
            assert b["campaign"][i] == "dr5"
        assert b["campaign"][3:] == [None] * 7


def test_deterministic_two_ranks_two_workers_every_sample_once(sets):
    lab, unlab = sets
    cfg = config([lab], [unlab], num_workers=2, deterministic=True)
    seen, per_rank = collections.Counter(), []
    for rank in range(2):
        loader = build_train_loader(cfg, SCHEMA, rank=rank, world_size=2)
        batches = ids_of(loader)
        per_rank.append((len(batches), len(loader)))
        seen.update(i for b in batches for i in b)
    all_ids = {s["id_str"] for d in sets for s in IndexedShards(d)}
    assert per_rank[0] == per_rank[1] and per_rank[0][0] == per_rank[0][1] == 16
    assert set(seen) == all_ids and set(seen.values()) == {1}


def test_resampled_ranks_yield_equal_batch_counts_over_uneven_shards(tmp_path):
    lab = write_shards(tmp_path / "lab", 23, n_shards=3, image_size=16)  # 8, 8, 7 samples
    cfg = config([lab], labelled_fraction=1.0, num_workers=2, epoch_length=5)
    counts = [len(ids_of(build_train_loader(cfg, SCHEMA, rank=r, world_size=4))) for r in range(4)]
    assert counts == [5, 5, 5, 5]


def test_too_few_shards_for_deterministic_split_names_the_counts(tmp_path):
    lab = write_shards(tmp_path / "lab", 12, n_shards=3, image_size=16)
    cfg = config([lab], labelled_fraction=1.0, num_workers=2, deterministic=True)
    with pytest.raises(ShardError, match=r"3 shards but 2 ranks x 2 workers = 4"):
        build_train_loader(cfg, SCHEMA, rank=0, world_size=2)


def test_stream_is_a_function_of_seed_and_epoch_and_resumes_exactly(sets):
    lab, unlab = sets
    cfg = config([lab], [unlab], num_workers=2, epoch_length=7, seed=3)
    a, b = build_train_loader(cfg, SCHEMA), build_train_loader(cfg, SCHEMA)
    a.set_epoch(4)
    b.set_epoch(4)
    full = ids_of(a)
    assert ids_of(b) == full and len(full) == 7
    b.set_epoch(5)
    assert ids_of(b) != full
    for k in (1, 4):  # odd and even: worker 0 and worker 1 each drop their own share
        b.set_epoch(4)
        b.skip_batches(k)
        assert ids_of(b) == full[k:]
    assert ids_of(b) != full  # the skip applied to epoch 4 only; this pass is epoch 5


def test_persistent_workers_see_new_epochs(sets):
    lab, unlab = sets
    loader = build_train_loader(config([lab], [unlab], num_workers=2, epoch_length=4, persistent_workers=True),
                                SCHEMA)
    first = ids_of(loader)           # epoch 0
    second = ids_of(loader)          # advanced to epoch 1 without set_epoch
    loader.set_epoch(0)
    assert ids_of(loader) == first and second != first


def test_corrupt_samples_are_skipped_and_counted(tmp_path):
    lab = write_shards(tmp_path / "lab", 16, n_shards=1, image_size=16)
    shard = lab / "shard-000000.tar"
    with tarfile.open(shard) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    keys = sorted({m.name.split(".")[0] for m, _ in members})
    bad_image, bad_votes = keys[2], keys[5]
    with tarfile.open(shard, "w") as t:
        for m, data in members:
            if m.name == f"{bad_image}.image.jpg":
                data = b"not a jpeg"
            if m.name == f"{bad_votes}.votes.npy":
                data = io.BytesIO(data).getvalue()[:-8]  # truncated array
            m.size = len(data)
            t.addfile(m, io.BytesIO(data))
    loader = build_train_loader(config([lab], labelled_fraction=1.0, batch_size=2, epoch_length=7,
                                       deterministic=True), SCHEMA)
    batches = list(loader)
    seen = [i for b in batches for i in b["id_str"]]
    assert len(seen) == 14 and len(set(seen)) == 14
    assert sum(int(b["n_skipped"]) for b in batches) == 2
    from hybridssl.storage.shards import decode_key
    assert decode_key(bad_image) not in seen and decode_key(bad_votes) not in seen


def test_shell_urls_refused_unless_allowed(sets):
    lab, _ = sets
    with pytest.raises(ConfigError, match="allow_shell_urls"):
        build_train_loader(config([f"pipe:cat {lab}"], labelled_fraction=1.0, epoch_length=1), SCHEMA)
    with pytest.raises(ConfigError, match="allow_shell_urls"):
        build_train_loader(config([f"https://example.org/{lab.name}"], labelled_fraction=1.0), SCHEMA)
    allowed = config([f"pipe:cat {lab}"], labelled_fraction=1.0, epoch_length=2, allow_shell_urls=True)
    batches = list(build_train_loader(allowed, SCHEMA))
    assert len(batches) == 2 and all(b["has_votes"].all() for b in batches)


def test_schema_hash_mismatch_is_an_error(tmp_path):
    lab = write_shards(tmp_path / "lab", 4, n_shards=1, image_size=16, schema="gz_decals_dr5", campaign="dr5")
    with pytest.raises(ShardError, match="schema_hash"):
        build_train_loader(config([lab], labelled_fraction=1.0), SCHEMA)


def test_bad_config_values_name_the_key(sets):
    lab, unlab = sets
    with pytest.raises(ConfigError, match="labelled_fraction"):
        config([lab], [unlab], labelled_fraction=1.5)
    with pytest.raises(ConfigError, match="data.unlabelled"):
        config([lab], [], labelled_fraction=0.5)
    with pytest.raises(ConfigError, match="data.decode"):
        config([lab], [unlab], decode="cv2")


def test_decoders_agree_on_lossless_images(tmp_path):
    d = write_shards(tmp_path / "png", 2, n_shards=1, image_size=16, image_format="png")
    with tarfile.open(d / "shard-000000.tar") as t:
        png = next(t.extractfile(m).read() for m in t.getmembers() if m.name.endswith(".png"))
    tv, pil = decode_image(png, "torchvision"), decode_image(png, "pil")
    assert tv.dtype == pil.dtype == torch.uint8 and tv.shape == (3, 16, 16)
    assert torch.equal(tv, pil) and tv.float().std() > 0


def test_a_shard_set_listed_twice_is_refused(sets):
    """Issue 24: the same set twice (however spelled) would be sampled twice per pass."""
    lab, unlab = sets
    with pytest.raises(ConfigError, match=r"data.labelled lists the shard set .* twice"):
        config([lab, f"{lab}/"], [unlab])


def test_a_labelled_set_without_a_single_vote_warns(tmp_path, caplog):
    """Issue 24: pretraining on a 'labelled' set whose votes are all zero says so at the start."""
    import json
    lab = write_shards(tmp_path / "lab", 16, n_shards=2, image_size=16, seed=1)
    unlab = write_shards(tmp_path / "unlab", 16, labelled=False, n_shards=2, image_size=16, seed=2)
    manifest = json.loads((lab / "manifest.json").read_text())
    (lab / "manifest.json").write_text(json.dumps({**manifest, "n_voted": 0}))
    with caplog.at_level("WARNING"):
        build_train_loader(config([lab], [unlab]), SCHEMA)
    assert "every vote in it is zero" in caplog.text
    caplog.clear()
    (lab / "manifest.json").write_text(json.dumps({**manifest, "n_voted": 16}))
    with caplog.at_level("WARNING"):
        build_train_loader(config([lab], [unlab]), SCHEMA)
    assert "every vote in it is zero" not in caplog.text
