"""Montages of galaxies looked up by id: from a shard set or a catalog's image files."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from factories import fake_id, write_shards
from hybridssl.apply.embeddings import Embeddings
from hybridssl.apply.montage import MontageError, galaxy_images, images_from_shards, save_montage
from hybridssl.data import IndexedShards


def test_images_from_shards_in_the_order_asked(tmp_path):
    shards = write_shards(tmp_path / "s", 10, labelled=False, n_shards=3, image_size=32)
    got = images_from_shards(shards, [fake_id(7), fake_id(2)])
    ds = IndexedShards(shards)
    for img, i in zip(got, (7, 2)):
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, ds[i]["image"].permute(1, 2, 0).numpy())
    with pytest.raises(MontageError, match="NOPE"):
        images_from_shards(shards, [fake_id(1), "NOPE"])


def test_catalog_embeddings_take_images_from_their_path_column(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (20, 20, 3), dtype=np.uint8) for _ in range(3)]
    paths = []
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    meta = pd.DataFrame({"id_str": list("abc"), "path": paths})
    emb = Embeddings(list("abc"), np.eye(3, dtype=np.float32), meta, {"source": {"catalog": "cat.csv"}})
    for img, i in zip(galaxy_images(emb, [2, 0]), (2, 0)):
        np.testing.assert_array_equal(img, arrays[i])
    bare = Embeddings(list("abc"), np.eye(3, dtype=np.float32), meta.drop(columns="path"), {})
    with pytest.raises(MontageError, match="--shards"):
        galaxy_images(bare, [0])


def test_save_montage_writes_a_titled_grid(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    path = save_montage(tmp_path / "sub" / "m.png", images, [f"#{i}\nid{i}" for i in range(5)],
                        suptitle="five", ncols=3)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 300  # 3 columns, 2 rows
        assert np.asarray(im.convert("L")).std() > 5
    assert [p.name for p in path.parent.iterdir()] == ["m.png"]  # no temp file left behind
