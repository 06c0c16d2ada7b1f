"""Small-data mode (hybridssl/data/memory.py): decoded once, batches drawn on the device with the
stream's labelled/unlabelled mixing; every sample once per epoch; votes stay with their images."""
import pytest
import torch
from factories import write_shards

from hybridssl.config import ConfigError, load_config
from hybridssl.data import DataConfig, IndexedShards
from hybridssl.data.memory import DeviceBatches, build_loader, use_in_memory
from hybridssl.data.stream import TrainLoader
from hybridssl.schema import load_schema

SCHEMA = load_schema("gz_evo_v0.1")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mem")
    return (write_shards(root / "lab", 40, n_shards=3, image_size=16, seed=1),
            write_shards(root / "unlab", 70, labelled=False, n_shards=3, image_size=16, seed=2))


def config(sets, **over):
    base = dict(batch_size=8, labelled_fraction=0.25, num_workers=0, in_memory="true", seed=3)
    base.update(over)
    return load_config(DataConfig, "configs/data/default.yaml", [f"labelled=[{sets[0]}]", f"unlabelled=[{sets[1]}]"]
                       + [f"{k}={v}" for k, v in base.items()])


def keyed(shard_dir):
    """image bytes -> votes (None when unlabelled), from the read-once reader."""
    data = IndexedShards(shard_dir, SCHEMA)
    return {data[i]["image"].numpy().tobytes(): data[i]["votes"] for i in range(len(data))}


def test_batches_mix_like_the_stream_and_keep_votes_with_their_images(sets):
    lab, unlab = keyed(sets[0]), keyed(sets[1])
    batches = list(build_loader(config(sets), SCHEMA, CPU, rank=0, world_size=1))
    assert len(batches) == 20  # one pass over the pool that needs most batches: 40 labelled, 2 a batch
    for b in batches:
        assert b["image"].dtype == torch.uint8 and b["image"].shape == (8, 3, 16, 16)
        assert b["has_votes"].tolist() == [True] * 2 + [False] * 6  # n_labelled = round(8 * 0.25), first
        for row in range(8):
            key = b["image"][row].numpy().tobytes()
            if row < 2:
                torch.testing.assert_close(b["votes"][row], lab[key])
            else:
                assert key in unlab and not b["votes"][row].any()


def test_every_sample_once_per_epoch_across_ranks_and_a_new_order_next_epoch(sets):
    cfg = config(sets, labelled_fraction=0.5, batch_size=10)  # 5 + 5 rows: 70 unlabelled over 2 ranks = 7 batches
    loaders = [DeviceBatches(cfg, SCHEMA, CPU, rank, 2) for rank in (0, 1)]
    unlab = keyed(sets[1])

    def seen(epoch):
        rows = []
        for loader in loaders:
            loader.set_epoch(epoch)
            rows += [img.numpy().tobytes() for b in loader for img in b["image"][5:]]
        return rows

    first = seen(0)
    assert sorted(first) == sorted(unlab)  # each of the 70 exactly once
    assert first != seen(1) and sorted(seen(1)) == sorted(unlab)


def test_resume_mid_epoch_gives_the_same_batches(sets):
    full = [b["image"] for b in DeviceBatches(config(sets), SCHEMA, CPU, 0, 1)]
    first = DeviceBatches(config(sets), SCHEMA, CPU, 0, 1)
    batches = iter(first)
    for _ in range(5):  # trained on 5 batches, then a checkpoint
        next(batches)
    assert first.state_dict() == {"epoch": 0, "batches": 5}
    resumed = DeviceBatches(config(sets), SCHEMA, CPU, 0, 1)
    resumed.load_state_dict(first.state_dict())
    rest = [b["image"] for b in resumed]
    assert len(rest) == len(full) - 5 and all(torch.equal(a, b) for a, b in zip(rest, full[5:]))


def test_auto_streams_on_the_cpu_and_refuses_nothing(sets):
    assert isinstance(build_loader(config(sets, in_memory="auto"), SCHEMA, CPU, 0, 1), TrainLoader)
    assert use_in_memory(config(sets, in_memory="auto"), SCHEMA, torch.device("cuda"))
    assert not use_in_memory(config(sets, in_memory="auto", in_memory_max_gib=1e-6), SCHEMA, torch.device("cuda"))


def test_true_over_the_cap_or_a_bad_value_is_one_line(sets):
    with pytest.raises(ConfigError, match="in_memory_max_gib"):
        use_in_memory(config(sets, in_memory_max_gib=1e-6), SCHEMA, CPU)
    with pytest.raises(ConfigError, match="data.in_memory must be one of"):
        use_in_memory(config(sets, in_memory="always"), SCHEMA, CPU)
