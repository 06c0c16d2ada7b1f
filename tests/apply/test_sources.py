"""Where galaxies come from (``--shards`` / ``--catalog``) and how an export is applied to them."""
import argparse

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from backbone_factory import SCHEMA, write_export
from factories import fake_id, fake_image, fake_votes, write_shards
from hybridssl.apply.inference import ModelError, load_model
from hybridssl.apply.sources import add_source_arguments, open_source
from hybridssl.cli import main
from hybridssl.storage.shards import ShardError


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {"head": write_export(root / "head", head_dropout=0.5), "plain": write_export(root / "plain")}


def source_args(*argv):
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    return parser.parse_args(list(argv))


def write_catalog(root, n, with_votes, size=48):
    """A parquet catalog of ``n`` PNGs (``size`` px, paths relative to it), with dr5 vote columns if asked."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        Image.fromarray(fake_image(rng, size)).save(root / "img" / f"{i}.png")
        row = {"id_str": fake_id(i), "file_loc": f"img/{i}.png"}
        if with_votes:
            votes = fake_votes(rng, SCHEMA, "dr5")
            row.update({c: float(votes[SCHEMA.column_index[c]]) for c in SCHEMA.campaign_columns("dr5")})
        rows.append(row)
    pd.DataFrame(rows).to_parquet(root / "catalog.parquet")
    return root / "catalog.parquet", pd.DataFrame(rows)


def test_shards_source_gives_images_votes_and_ids(tmp_path):
    write_shards(tmp_path, 6, labelled=True, n_shards=2)
    ds = open_source(source_args("--shards", str(tmp_path)), SCHEMA, 32, 3, False)
    assert len(ds) == 6 and ds.labelled
    s = ds[5]
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 32, 32)
    assert s["id_str"] == fake_id(5) and s["campaign"] == "dr5" and s["votes"].shape == (SCHEMA.n_answers,)


def test_shards_at_another_image_size_are_refused(tmp_path):
    write_shards(tmp_path, 2, labelled=False, n_shards=1)
    with pytest.raises(ShardError, match="images are 32 px, the model takes 64 px"):
        open_source(source_args("--shards", str(tmp_path)), SCHEMA, 64, 3, False)


def test_catalog_without_votes_is_resized_and_unlabelled(tmp_path):
    path, _ = write_catalog(tmp_path, 3, with_votes=False)
    ds = open_source(source_args("--catalog", str(path)), SCHEMA, 32, 3, False)
    assert len(ds) == 3 and not ds.labelled
    s = ds[1]
    assert s["image"].shape == (3, 32, 32) and s["image"].dtype == torch.uint8
    assert s["votes"] is None and s["id_str"] == fake_id(1) and s["campaign"] is None


def test_catalog_with_vote_columns_gives_votes_in_schema_order(tmp_path):
    path, table = write_catalog(tmp_path, 4, with_votes=True)
    ds = open_source(source_args("--catalog", str(path)), SCHEMA, 32, 3, False)
    assert ds.labelled
    s = ds[2]
    assert s["campaign"] == "dr5" and s["votes"].shape == (SCHEMA.n_answers,)
    for c in SCHEMA.campaign_columns("dr5"):
        assert s["votes"][SCHEMA.column_index[c]] == table[c].iloc[2]
    assert s["votes"].sum() == sum(table[c].iloc[2] for c in SCHEMA.campaign_columns("dr5"))


def test_predict_and_calibrate_read_a_catalog(tmp_path, exports):
    path, _ = write_catalog(tmp_path / "cat", 5, with_votes=True)
    out = tmp_path / "p.parquet"
    assert main(["predict", "--model", str(exports["head"]), "--catalog", str(path), "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert df.id_str.tolist() == [fake_id(i) for i in range(5)] and set(df.campaign) == {"dr5"}
    assert main(["calibrate", "--model", str(exports["head"]), "--catalog", str(path), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "calibration.json").exists()


def features(model, n=5):
    images = torch.from_numpy(np.stack([fake_image(np.random.default_rng(i), 32) for i in range(n)]))
    return model.features(images.permute(0, 3, 1, 2).contiguous())


def test_mc_samples_differ_and_one_sample_is_deterministic(exports):
    model = load_model(exports["head"])
    f = features(model)
    assert f.shape == (5, model.info["num_features"])
    mc = model.concentrations(f, 4)
    assert mc.shape == (4, 5, SCHEMA.n_answers) and torch.all((mc > 1) & (mc < 101))
    assert not torch.allclose(mc[0], mc[1]) and not torch.allclose(mc[2], mc[3])
    one, again = model.concentrations(f, 1), model.concentrations(f, 1)
    assert one.shape == (1, 5, SCHEMA.n_answers)
    torch.testing.assert_close(one, again, rtol=0, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(one[0], model.head(f), rtol=0, atol=0)  # dropout off, head left in eval mode
    assert not model.head.training


def test_export_without_head_cannot_give_concentrations(exports, tmp_path, capsys):
    model = load_model(exports["plain"])
    assert model.head is None
    with pytest.raises(ModelError, match="needs a Dirichlet head.*scratch mode"):
        model.concentrations(features(model), 1)
    write_shards(tmp_path / "s", 2, labelled=True, n_shards=1)
    assert main(["calibrate", "--model", str(exports["plain"]), "--shards", str(tmp_path / "s"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "needs a Dirichlet head" in capsys.readouterr().err


@pytest.mark.parametrize("gpu", [False, True])
def test_device_and_workers_default_to_auto(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    args = parser.parse_args(["--shards", "x"])
    assert args.device == ("cuda" if gpu else "cpu")
    assert (args.workers >= 1) if gpu else args.workers == 0
    assert parser.parse_args(["--shards", "x", "--device", "cpu", "--workers", "3"]).workers == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--shards", "x", "--workers", "-1"])


def test_float_shards_of_another_stretch_are_refused_naming_both(tmp_path):
    """Issue 24: the model's config.json bands and the shard set's manifest must agree on the stretch."""
    from types import SimpleNamespace

    from hybridssl.apply.sources import check_shards
    ds = SimpleNamespace(in_chans=5, bands={"stretch": "linear"}, image_size=32, labelled=False)
    with pytest.raises(ShardError, match="images are 5 float bands, linear stretch, the model takes "
                                         "5 float bands, asinh stretch"):
        check_shards(ds, "set", SCHEMA, 32, 5, {"stretch": "asinh"})
    assert check_shards(ds, "set", SCHEMA, 32, 5, {"stretch": "linear"}) is ds
