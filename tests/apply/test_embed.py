"""`hybridssl embed`: unit-norm features of every galaxy in source order, in parquet or npy, read back alike."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from backbone_factory import write_export
from factories import fake_id, write_shards
from hybridssl.apply.embeddings import EmbeddingsError, read_embeddings, write_embeddings
from hybridssl.apply.inference import l2_normalise, load_model
from hybridssl.cli import main
from hybridssl.data import IndexedShards

N = 20


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    rng = np.random.default_rng(1)
    keep = {"ring": rng.integers(0, 2, N).tolist(), "split": ["train", "test"] * (N // 2)}
    shards = write_shards(root / "shards", N, labelled=False, n_shards=3, image_size=32, keep=keep)
    model = write_export(root / "export", image_size=32)
    outs = {}
    for suffix in ("parquet", "npy"):
        outs[suffix] = root / f"emb.{suffix}"
        assert main(["embed", "--model", str(model), "--shards", str(shards), "--out", str(outs[suffix]),
                     "--batch-size", "7"]) == 0
    return shards, model, keep, outs


def test_rows_are_unit_features_in_source_order(embedded):
    shards, model_dir, keep, outs = embedded
    emb = read_embeddings(outs["parquet"])
    model = load_model(model_dir)
    assert emb.x.dtype == np.float32 and emb.x.shape == (N, model.info["num_features"])
    assert emb.ids == [fake_id(i) for i in range(N)]
    np.testing.assert_allclose(np.linalg.norm(emb.x, axis=1), 1.0, atol=1e-5)
    ds = IndexedShards(shards)
    raw = np.concatenate([model.features(ds[i]["image"][None]).numpy() for i in range(N)])
    centre = np.asarray(emb.metadata["centre"], dtype=np.float32)
    np.testing.assert_allclose(centre, raw.mean(0), rtol=1e-4, atol=1e-5)
    # each row is that galaxy's centred features, not just its id
    np.testing.assert_allclose(emb.x, l2_normalise(raw - centre), atol=1e-4)
    assert emb.meta["ring"].tolist() == keep["ring"] and emb.meta["split"].tolist() == keep["split"]
    assert "campaign" in emb.meta.columns and emb.meta["id_str"].tolist() == emb.ids


def test_metadata_names_source_and_model(embedded):
    shards, model_dir, _, outs = embedded
    md = read_embeddings(outs["parquet"]).metadata
    assert md["source"] == {"shards": str(shards.resolve())}
    assert md["model"]["dir"] == str(model_dir.resolve())
    assert md["model"]["architecture"] == "test_resnet" and md["model"]["mode"] == "scratch"
    assert md["n"] == N and md["dim"] == md["model"]["num_features"] and md["normalised"] == "centred-l2"


def test_parquet_and_npy_read_back_identical(embedded):
    _, _, _, outs = embedded
    a, b = read_embeddings(outs["parquet"]), read_embeddings(outs["npy"])
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.x, b.x)
    pd.testing.assert_frame_equal(a.meta, b.meta)
    assert {k: v for k, v in a.metadata.items() if k != "created"} == \
        {k: v for k, v in b.metadata.items() if k != "created"}
    assert outs["npy"].with_suffix(".ids.json").is_file()


def test_write_read_round_trip_keeps_missing_values_and_mixed_columns(tmp_path):
    x = l2_normalise(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    meta = pd.DataFrame({"id_str": ["a", "b", "c"], "campaign": ["dr5", None, "gz2"], "z": [0.1, np.nan, 0.3],
                         "mixed": [1, "two", None]})
    for suffix in ("parquet", "npy"):
        emb = read_embeddings(write_embeddings(tmp_path / f"e.{suffix}", ["a", "b", "c"], x, meta, {"k": 1}))
        np.testing.assert_array_equal(emb.x, x)
        assert emb.meta["campaign"].isna().tolist() == [False, True, False]
        # parquet columns have one type: a mixed column is stored as text
        assert emb.meta["mixed"].tolist()[:2] == (["1", "two"] if suffix == "parquet" else [1, "two"])
        assert emb.metadata["k"] == 1 and emb.metadata["n"] == 3


def test_unreadable_files_are_clear_errors(tmp_path, embedded):
    _, _, _, outs = embedded
    with pytest.raises(EmbeddingsError, match="no such embeddings file"):
        read_embeddings(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(EmbeddingsError, match="not a readable parquet"):
        read_embeddings(tmp_path / "bad.parquet")
    np.save(tmp_path / "lonely.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(EmbeddingsError, match="lonely.ids.json is missing"):
        read_embeddings(tmp_path / "lonely.npy")
    doc = json.loads(outs["npy"].with_suffix(".ids.json").read_text())
    np.save(tmp_path / "short.npy", np.zeros((N - 1, 4), np.float32))
    (tmp_path / "short.ids.json").write_text(json.dumps(doc))
    with pytest.raises(EmbeddingsError, match="do not match"):
        read_embeddings(tmp_path / "short.npy")
    with pytest.raises(EmbeddingsError, match=r"\.parquet or \.npy"):
        read_embeddings(tmp_path / "emb.csv")


def test_unknown_ids_are_named_with_a_suggestion(embedded):
    emb = read_embeddings(embedded[3]["parquet"])
    with pytest.raises(EmbeddingsError, match=r"'J0000000003\.5\+0012\.3'.*did you mean 'J000000003\.5\+0012\.3'"):
        emb.rows_of(["J0000000003.5+0012.3"])
    assert emb.rows_of([fake_id(5), fake_id(2)]).tolist() == [5, 2]


def test_bad_output_suffix_exits_2_before_loading(tmp_path, capsys):
    assert main(["embed", "--model", str(tmp_path / "nowhere"), "--shards", str(tmp_path),
                 "--out", str(tmp_path / "emb.csv")]) == 2
    assert "emb.csv" in capsys.readouterr().err


def test_summary_printed(embedded, tmp_path, capsys):
    shards, model, _, _ = embedded
    assert main(["embed", "--model", str(model), "--shards", str(shards), "--out", str(tmp_path / "e.npy")]) == 0
    out = capsys.readouterr().out
    assert f"{N} galaxies" in out and "test_resnet" in out and "ring" in out


def test_images_at_another_size_are_refused(tmp_path, embedded, capsys):
    _, model, _, _ = embedded
    shards = write_shards(tmp_path / "s64", 4, labelled=False, n_shards=1, image_size=64)
    assert main(["embed", "--model", str(model), "--shards", str(shards), "--out", str(tmp_path / "e.npy")]) == 2
    assert "64 px" in capsys.readouterr().err
    assert not (tmp_path / "e.npy").exists()


def test_catalog_source_records_image_paths_for_montages(tmp_path, embedded):
    from factories import fake_image

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    for i in range(5):
        Image.fromarray(fake_image(rng, 48)).save(tmp_path / "img" / f"{i}.png")
    pd.DataFrame({"id_str": [f"g{i}" for i in range(5)], "file_loc": [f"img/{i}.png" for i in range(5)]}).to_csv(
        tmp_path / "cat.csv", index=False)
    out = tmp_path / "e.npy"
    assert main(["embed", "--model", str(embedded[1]), "--catalog", str(tmp_path / "cat.csv"), "--out", str(out)]) == 0
    emb = read_embeddings(out)
    assert emb.ids == [f"g{i}" for i in range(5)] and emb.x.shape[0] == 5
    assert emb.metadata["source"]["catalog"] == str((tmp_path / "cat.csv").resolve())
    assert emb.meta["path"].tolist() == [str(tmp_path / "img" / f"{i}.png") for i in range(5)]
    assert main(["similar", "--embeddings", str(out), "--query", "g2", "--k", "3",
                 "--montage", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 1000


def test_non_finite_features_are_refused_when_embedding_and_reading(tmp_path, embedded, capsys):
    shards, model, _, _ = embedded
    diverged = tmp_path / "diverged"
    diverged.mkdir()
    for f in model.iterdir():
        (diverged / f.name).write_bytes(f.read_bytes())
    weights = load_file(str(diverged / "model.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()},
              str(diverged / "model.safetensors"))
    out = tmp_path / "nan.parquet"
    assert main(["embed", "--model", str(diverged), "--shards", str(shards), "--out", str(out)]) == 2
    assert "NaN or infinite features" in capsys.readouterr().err and not out.exists()

    ids = [fake_id(i) for i in range(3)]
    x = np.eye(3, dtype=np.float32)
    x[1, 2] = np.nan
    write_embeddings(tmp_path / "altered.npy", ids, x, pd.DataFrame({"id_str": ids}), {})
    with pytest.raises(EmbeddingsError, match=re.escape(f"1 of 3 galaxies have NaN or infinite features ('{ids[1]}')")):
        read_embeddings(tmp_path / "altered.npy")
