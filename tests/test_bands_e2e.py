"""Float images with any number of bands, end to end: 1-band and 5-band FITS catalogs ->
``prepare --image-format npy`` -> pretrain 2 steps -> export -> embed; and the band-count checks.

The FITS files are written here (astropy): a sky with noise, a galaxy, a NaN pixel; the 5-band
catalog mixes a (5, H, W) cube with files holding one image HDU per band.
"""
import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from hybridssl.apply.embeddings import read_embeddings
from hybridssl.cli import main
from hybridssl.config import config_dir
from hybridssl.data import IndexedShards

SIZE, N_IMAGES = 32, 12
DEMO = config_dir() / "pretrain" / "demo.yaml"


def galaxy_bands(rng, n_bands: int) -> np.ndarray:
    """(bands, SIZE, SIZE) float32 in flux units: sky 0.01 +- 0.003, a disc redder in later bands."""
    yy, xx = np.mgrid[:SIZE, :SIZE] - rng.uniform(12, 20, 2)[:, None, None]
    disc = np.exp(-np.hypot(xx, yy / 0.7) / 3.0)
    a = np.stack([0.01 + rng.normal(0, 0.003, (SIZE, SIZE)) + (0.5 + 0.2 * b) * disc for b in range(n_bands)])
    a[:, 0, rng.integers(SIZE)] = np.nan  # a bad pixel in every band
    return a.astype(np.float32)


def write_catalog(root, n_bands: int):
    """A catalog of FITS files and the source arrays, by id."""
    rng = np.random.default_rng(n_bands)
    root.mkdir()
    rows, sources = [], {}
    for i in range(N_IMAGES):
        a, path = galaxy_bands(rng, n_bands), root / f"g{i}.fits"
        if n_bands > 1 and i % 2:  # one image HDU per band
            fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(band) for band in a]).writeto(path)
        else:  # one HDU: a 2-D image or a (bands, H, W) cube
            fits.PrimaryHDU(a[0] if n_bands == 1 else a).writeto(path)
        rows.append({"id_str": f"g{i}", "file_loc": path.name})
        sources[f"g{i}"] = a.astype(np.float64)
    pd.DataFrame(rows).to_csv(root / "catalog.csv", index=False)
    return root / "catalog.csv", sources


def stored_images(shard_dir) -> dict:
    out = {}
    for tar in sorted(shard_dir.glob("shard-*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".image.npy"):
                    out[m.name.split(".")[0]] = np.load(io.BytesIO(t.extractfile(m).read()))
    return out


def pretrain_args(shards, out, *extra) -> list:
    return ["pretrain", "--config", str(DEMO), "mode=byol", f"out_dir={out}", "data.labelled=[]",
            f"data.unlabelled=[{shards}]", "data.batch_size=4", "data.num_workers=0", "data.shuffle_buffer=8",
            "model.backbone=test_resnet", "model.projection_hidden_dim=32", "model.prediction_hidden_dim=32",
            "model.projection_dim=16", "augment.crop_size=32", "augment.resize_size=32", "augment.blur_kernel=3",
            "augment.solarize_p=[0.0,0.0]", "trainer.precision=32-true", "trainer.max_steps=2",
            "trainer.checkpoint_every_n_steps=2", "trainer.progress_bar=false", "optim.warmup_steps=1", *extra]


@pytest.fixture(scope="module")
def band_sets(tmp_path_factory):
    """n_bands -> (shard dir, sources, export dir), each prepared, pretrained 2 steps and exported."""
    root = tmp_path_factory.mktemp("bands")
    sets = {}
    for n_bands in (1, 5):
        catalog, sources = write_catalog(root / f"fits{n_bands}", n_bands)
        shards, run, export = root / f"shards{n_bands}", root / f"run{n_bands}", root / f"export{n_bands}"
        assert main(["prepare", "--catalog", str(catalog), "--out", str(shards), "--unlabelled",
                     "--image-format", "npy", "--image-size", str(SIZE), "--shard-size", "4", "--workers", "1"]) == 0
        assert main(pretrain_args(shards, run)) == 0
        assert main(["export", str(run), "--out", str(export)]) == 0
        sets[n_bands] = shards, sources, export
    return sets


@pytest.mark.parametrize("n_bands", [1, 5])
def test_stored_pixels_are_the_normalised_source(band_sets, n_bands):
    shards, sources, _ = band_sets[n_bands]
    m = json.loads((shards / "manifest.json").read_text())
    bands = m["bands"]
    assert m["image_format"] == "npy" and m["in_chans"] == bands["n_bands"] == n_bands
    # the set-wide statistics are the documented ones: every image is in the sample at this size
    good = np.concatenate([s.reshape(n_bands, -1) for s in sources.values()], 1)
    for b in range(n_bands):
        v = good[b][np.isfinite(good[b])]
        assert bands["median"][b] == pytest.approx(np.median(v), rel=1e-9)
        assert bands["scale"][b] == pytest.approx(1.4826 * np.median(np.abs(v - np.median(v))), rel=1e-9)
    median = np.asarray(bands["median"])[:, None, None]
    scale = np.asarray(bands["scale"])[:, None, None]
    stored = stored_images(shards)
    assert sorted(stored) == sorted(sources)
    for key, src in sources.items():
        want = np.where(np.isfinite(src), np.arcsinh((src - median) / scale), 0.0)[:, ::-1]  # north up
        got = stored[key]
        assert got.dtype == np.float16 and got.shape == (n_bands, SIZE, SIZE)
        # float16 keeps 11 significant bits (rel. 4.9e-4); atol only covers values near 0 (subnormals)
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3, atol=1e-4)
    assert main(["verify", str(shards)]) == 0
    sample = IndexedShards(shards)[0]["image"]
    assert sample.dtype.is_floating_point and tuple(sample.shape) == (n_bands, SIZE, SIZE)


@pytest.mark.parametrize("n_bands", [1, 5])
def test_pretrain_export_embed_take_the_bands_from_the_data(band_sets, n_bands, tmp_path):
    shards, sources, export = band_sets[n_bands]
    info = json.loads((export / "config.json").read_text())
    assert info["in_chans"] == n_bands and info["pretrained_cfg"]["input_size"][0] == n_bands
    assert info["bands"] == json.loads((shards / "manifest.json").read_text())["bands"]
    assert info["mean"] == [0.0] * n_bands and info["std"] == [1.0] * n_bands
    out = tmp_path / "emb.parquet"
    assert main(["embed", "--model", str(export), "--shards", str(shards), "--out", str(out)]) == 0
    emb = read_embeddings(out)
    assert sorted(emb.ids) == sorted(sources)
    assert emb.x.shape[0] == N_IMAGES and np.isfinite(emb.x).all() and np.ptp(emb.x, 0).max() > 0


def test_a_band_count_mismatch_is_one_clear_line(band_sets, tmp_path, capsys):
    shards1, _, export1 = band_sets[1]
    shards5, _, _ = band_sets[5]
    capsys.readouterr()
    assert main(["embed", "--model", str(export1), "--shards", str(shards5), "--out", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "5 float bands" in err and "takes 1 float band" in err and str(shards5) in err

    assert main(pretrain_args(shards5, tmp_path / "run", "model.in_chans=3")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.in_chans=3" in err and "5-band" in err

    assert main(pretrain_args(shards5, tmp_path / "run2", f"data.labelled=[{shards1}]", "mode=hybrid",
                              "data.labelled_fraction=0.5")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 float band" in err and "5 float bands" in err


def test_a_stretch_mismatch_is_refused_at_embed_and_pretraining(band_sets, tmp_path, capsys):
    """Issue 24: an asinh-trained model never reads linear-stretched shards, nor does pretraining mix them."""
    shards1, _, export1 = band_sets[1]
    linear = tmp_path / "linear"
    assert main(["prepare", "--catalog", str(shards1.parent / "fits1" / "catalog.csv"), "--out", str(linear),
                 "--unlabelled", "--image-format", "npy", "--fits-stretch", "linear", "--image-size", str(SIZE),
                 "--shard-size", "4", "--workers", "1"]) == 0
    assert json.loads((linear / "manifest.json").read_text())["bands"]["stretch"] == "linear"
    capsys.readouterr()
    assert main(["embed", "--model", str(export1), "--shards", str(linear), "--out", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "1 float band, linear stretch" in err and "takes 1 float band, asinh stretch" in err
    assert main(pretrain_args(linear, tmp_path / "run", f"data.unlabelled=[{shards1},{linear}]")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "linear stretch" in err and "asinh stretch" in err
