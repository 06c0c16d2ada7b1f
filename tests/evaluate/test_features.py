import numpy as np
import pytest

from backbone_factory import write_export
from factories import write_shards
from hybridssl.export import timm_folder as export
from hybridssl.data import read_meta
from hybridssl.evaluate.features import cache_key, extract_features


@pytest.fixture
def shards(tmp_path):
    n = 20
    return write_shards(tmp_path / "task", n, labelled=False, n_shards=2, image_size=32,
                        keep={"ring": [i % 2 for i in range(n)], "split": ["train"] * 14 + ["test"] * 6})


def test_read_meta_lists_every_sample_in_order_without_images(shards):
    metas = read_meta(shards)
    assert len(metas) == 20
    assert [m["ring"] for m in metas] == [i % 2 for i in range(20)]
    assert metas[0]["split"] == "train" and metas[-1]["split"] == "test"
    assert all("." in m["id_str"] for m in metas)  # real-looking ids survive the key escaping


def test_features_are_extracted_once_then_read_from_the_cache(tmp_path, shards, monkeypatch):
    bb = write_export(tmp_path / "bb", image_size=32)
    first = extract_features(bb, shards, tmp_path / "cache", "minimal", batch_size=8)
    assert first.x.shape == (20, 96) and first.x.dtype == np.float32
    assert first.ids == [m["id_str"] for m in read_meta(shards)]
    assert np.isfinite(first.x).all() and first.x.std(0).max() > 0  # images differ, so do their features

    def no_backbone(*a, **k):
        raise AssertionError("the backbone was loaded although its features are cached")
    monkeypatch.setattr(export, "load_backbone", no_backbone)
    second = extract_features(bb, shards, tmp_path / "cache", "minimal", batch_size=5)
    assert second.key == first.key and second.ids == first.ids
    np.testing.assert_array_equal(second.x, first.x)


def test_cache_key_changes_with_weights_data_and_preprocessing(tmp_path, shards):
    a = write_export(tmp_path / "a", seed=0)
    b = write_export(tmp_path / "b", seed=1)
    other = write_shards(tmp_path / "other", 20, labelled=False, n_shards=2, image_size=32, seed=5)
    pre = {"crop_size": 32}
    keys = {cache_key(a, shards, pre), cache_key(b, shards, pre), cache_key(a, other, pre),
            cache_key(a, shards, {"crop_size": 28})}
    assert len(keys) == 4
    assert cache_key(a, shards, pre) == cache_key(a, shards, dict(pre))


def test_features_match_a_direct_forward_pass(tmp_path, shards):
    """The cached numbers are the backbone's: same as running it on the preprocessed images."""
    import torch

    from hybridssl.data import IndexedShards
    from hybridssl.evaluate.features import eval_transform

    bb = write_export(tmp_path / "bb", image_size=32)
    feats = extract_features(bb, shards, tmp_path / "cache", "minimal", batch_size=6)
    model, info = export.load_backbone(bb)
    transform, _ = eval_transform(info, "minimal")
    ds = IndexedShards(shards)
    with torch.inference_mode():
        direct = model(transform(torch.stack([ds[i]["image"] for i in (0, 13)]))).numpy()
    np.testing.assert_allclose(feats.x[[0, 13]], direct, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [16, 224])
def test_eval_transform_takes_models_smaller_than_the_presets_blur_kernel(size):
    """A model trained at 16 px (below galaxy.yaml's 23 px blur kernel) is embedded, not refused."""
    import torch

    from hybridssl.evaluate.features import eval_transform

    transform, settings = eval_transform({"image_size": size, "mean": [0.5] * 3, "std": [0.25] * 3}, "minimal")
    assert settings["crop_size"] == size and settings["blur_kernel"] <= size
    assert transform(torch.zeros(2, 3, size, size, dtype=torch.uint8)).shape == (2, 3, size, size)
