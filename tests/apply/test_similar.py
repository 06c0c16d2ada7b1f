"""`hybridssl similar`: exact and FAISS nearest neighbours by cosine similarity, table, CSV, montage."""
import os
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backbone_factory import write_export
from factories import fake_id, write_shards
from hybridssl.apply.inference import l2_normalise
from hybridssl.apply.similar import SearchError, ann_search, exact_search, hnsw_index
from hybridssl.cli import main


def unit_vectors(n=300, d=16, seed=0):
    return l2_normalise(np.random.default_rng(seed).normal(size=(n, d))).astype(np.float32)


def test_exact_search_matches_brute_force_and_finds_itself_first():
    x = unit_vectors()
    sims, rows = exact_search(x, x, 10, chunk=64)  # several chunks
    assert rows.shape == sims.shape == (len(x), 10)
    assert (rows[:, 0] == np.arange(len(x))).all()
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    full = x @ x.T
    np.testing.assert_allclose(sims, -np.sort(-full, axis=1)[:, :10], atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(full, rows, 1), sims, atol=1e-6)


def test_faiss_finds_itself_first_and_agrees_with_exact():
    x = unit_vectors()
    sims, rows = ann_search(hnsw_index(x), x, 10)
    assert (rows[:, 0] == np.arange(len(x))).all()
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    _, exact = exact_search(x, x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact)])
    assert recall > 0.9


def test_faiss_index_is_cached_and_rebuilt_when_the_embeddings_change(tmp_path):
    x = unit_vectors(50)
    emb, cache = tmp_path / "e.npy", tmp_path / "e.npy.hnsw.faiss"
    emb.write_bytes(b"stand-in")
    hnsw_index(x, cache, emb)
    assert cache.is_file()
    os.utime(cache, ns=(1, 1))  # older than the embeddings: stale
    hnsw_index(x, cache, emb)
    assert cache.stat().st_mtime_ns > 1
    before = cache.stat().st_mtime_ns
    assert hnsw_index(x, cache, emb).ntotal == 50 and cache.stat().st_mtime_ns == before  # reused


def test_missing_faiss_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(SearchError, match="pip install faiss-cpu"):
        hnsw_index(unit_vectors(5))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("similar")
    shards = write_shards(root / "shards", 24, labelled=True, n_shards=2, image_size=32)
    model = write_export(root / "export", image_size=32)
    out = root / "emb.parquet"
    assert main(["embed", "--model", str(model), "--shards", str(shards), "--out", str(out)]) == 0
    return out


def test_cli_table_csv_and_montage(embedded, tmp_path, capsys):
    query = fake_id(3)
    png, csv = tmp_path / "m.png", tmp_path / "n.csv"
    assert main(["similar", "--embeddings", str(embedded), "--query", query, "--k", "5",
                 "--montage", str(png), "--out", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "rank 0 is the query" in out and "exact" in out and query in out
    table = pd.read_csv(csv, dtype={"id_str": str})
    assert table["rank"].tolist() == list(range(6)) and table["id_str"][0] == query
    assert abs(table["similarity"][0] - 1.0) < 1e-5
    assert query not in table["id_str"][1:].tolist() and table["id_str"].is_unique
    assert (np.diff(table["similarity"][1:]) <= 1e-7).all() and "campaign" in table.columns
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 150
        assert np.asarray(im.convert("L")).std() > 5  # images drawn, not a blank page


def test_cli_ann_path_gives_the_exact_neighbours_on_a_small_set(embedded, tmp_path):
    runs = {}
    for flag in ([], ["--ann"]):
        csv = tmp_path / f"n{len(flag)}.csv"
        assert main(["similar", "--embeddings", str(embedded), "--query", fake_id(0), "--k", "4",
                     "--out", str(csv), *flag]) == 0
        runs[bool(flag)] = pd.read_csv(csv, dtype={"id_str": str})
    assert runs[True]["id_str"].tolist() == runs[False]["id_str"].tolist()
    assert embedded.with_name(embedded.name + ".hnsw.faiss").is_file()


def test_unknown_query_exits_2_naming_it(embedded, capsys):
    assert main(["similar", "--embeddings", str(embedded), "--query", "J000000003.5+0012.4"]) == 2
    err = capsys.readouterr().err
    assert "'J000000003.5+0012.4'" in err and "did you mean" in err


def test_montage_from_the_wrong_shard_set_names_a_missing_galaxy(embedded, tmp_path, capsys):
    other = write_shards(tmp_path / "other", 4, labelled=False, n_shards=1, image_size=32, seed=7)
    assert main(["similar", "--embeddings", str(embedded), "--query", fake_id(1), "--k", "2",
                 "--montage", str(tmp_path / "m.png"), "--shards", str(other)]) == 2
    assert fake_id(1) in capsys.readouterr().err and not (tmp_path / "m.png").exists()


def test_k_below_one_is_an_argument_error(embedded, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["similar", "--embeddings", str(embedded), "--query", "x", "--k", "0"])
    assert exit_.value.code == 2 and "--k: must be >= 1, got 0" in capsys.readouterr().err
