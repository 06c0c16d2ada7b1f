"""``hybridssl predict`` end to end on factory shards and a factory export with a Dirichlet head."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from backbone_factory import SCHEMA, write_export
from factories import fake_id, write_shards
from hybridssl.apply.inference import load_model
from hybridssl.cli import main

N = 20


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    return {"model": write_export(root / "model", head_dropout=0.3),
            "no_head": write_export(root / "no_head"),
            "no_dropout": write_export(root / "no_dropout", head_dropout=0.0),
            "labelled": write_shards(root / "labelled", N, labelled=True, n_shards=2),
            "unlabelled": write_shards(root / "unlabelled", 6, labelled=False, n_shards=1, seed=1)}


def predict(setup, out, *extra, shards="labelled", model="model"):
    return main(["predict", "--model", str(setup[model]), "--shards", str(setup[shards]), "--out", str(out),
                 "--batch-size", "8", *extra])


def answer_columns(suffix):
    return [f"{c}_{suffix}" for c in SCHEMA.label_cols]


def test_columns_follow_the_schema_and_fractions_are_consistent(setup, tmp_path, capsys):
    out = tmp_path / "preds.parquet"
    assert predict(setup, out) == 0
    assert f"predict: {N} galaxies" in capsys.readouterr().out
    df = pd.read_parquet(out)
    assert list(df.columns[:2]) == ["id_str", "campaign"]
    assert df.shape == (N, 206 * 3 + 65 + 2)
    assert set(df.columns[2:]) == {*answer_columns("fraction"), *answer_columns("fraction_lo"),
                                   *answer_columns("fraction_hi"), *(f"{q.name}_asked" for q in SCHEMA.questions)}
    assert df.id_str.tolist() == [fake_id(i) for i in range(N)] and set(df.campaign) == {"dr5"}
    frac = df[answer_columns("fraction")].to_numpy(np.float64)
    lo, hi = df[answer_columns("fraction_lo")].to_numpy(), df[answer_columns("fraction_hi")].to_numpy()
    per_question = np.add.reduceat(frac, [q.start for q in SCHEMA.questions], axis=1)
    np.testing.assert_allclose(per_question, 1.0, atol=1e-5)
    assert np.all((0 <= lo) & (lo <= frac) & (frac <= hi) & (hi <= 1))
    asked = df[[f"{q.name}_asked" for q in SCHEMA.questions]].to_numpy()
    np.testing.assert_allclose(asked, SCHEMA.ask_probability(frac), atol=1e-5)
    roots = [i for i, q in enumerate(SCHEMA.questions) if q.parent is None]
    assert np.all(asked[:, roots] == 1) and asked.min() < 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["preds.parquet"]  # no temp file left behind


def test_one_sample_interval_is_the_heads_beta_quantile(setup, tmp_path):
    from hybridssl.data import IndexedShards

    out = tmp_path / "preds.parquet"
    assert predict(setup, out, "--interval", "0.5") == 0
    df = pd.read_parquet(out)
    model = load_model(setup["model"])
    images = torch.stack([IndexedShards(setup["labelled"])[i]["image"] for i in range(N)])
    a = model.concentrations(model.features(images), 1)[0].double().numpy()
    b = np.concatenate([a[:, q.start:q.end].sum(1, keepdims=True) - a[:, q.start:q.end] for q in SCHEMA.questions], 1)
    np.testing.assert_allclose(df[answer_columns("fraction")], a / (a + b), rtol=1e-5)
    np.testing.assert_allclose(df[answer_columns("fraction_lo")], stats.beta.ppf(0.25, a, b), rtol=1e-5)
    np.testing.assert_allclose(df[answer_columns("fraction_hi")], stats.beta.ppf(0.75, a, b), rtol=1e-5)


def test_mc_samples_are_seeded_and_change_the_prediction(setup, tmp_path):
    one, mc, again = (tmp_path / f"{n}.parquet" for n in ("one", "mc", "again"))
    assert predict(setup, one) == 0
    assert predict(setup, mc, "--mc-samples", "5") == 0
    assert predict(setup, again, "--mc-samples", "5") == 0
    one, mc, again = (pd.read_parquet(p) for p in (one, mc, again))
    pd.testing.assert_frame_equal(mc, again)  # seeded dropout masks
    cols = answer_columns("fraction")
    assert not np.allclose(one[cols], mc[cols])
    frac = mc[cols].to_numpy(np.float64)
    assert np.all((mc[answer_columns("fraction_lo")].to_numpy() <= frac) & (frac <= mc[answer_columns("fraction_hi")]))


def test_unlabelled_source_has_no_campaign_column(setup, tmp_path):
    out = tmp_path / "u.parquet"
    assert predict(setup, out, shards="unlabelled") == 0
    df = pd.read_parquet(out)
    assert df.columns[0] == "id_str" and "campaign" not in df.columns and len(df) == 6


def test_rows_are_written_in_row_groups_of_many_batches_with_plain_floats(setup, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from hybridssl.apply import predict as predict_module

    monkeypatch.setattr(predict_module, "ROW_GROUP", 12)
    out = tmp_path / "p.parquet"
    assert predict(setup, out) == 0  # batches of 8, 8 and 4: a group once 12 rows wait, then the rest
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [16, 4]
    encodings = {meta.schema.column(j).name: meta.row_group(0).column(j).encodings for j in range(meta.num_columns)}
    assert "RLE_DICTIONARY" in encodings["id_str"]
    assert not any("DICTIONARY" in e for e in encodings[answer_columns("fraction_lo")[0]])
    assert pd.read_parquet(out).id_str.tolist() == [fake_id(i) for i in range(N)]


@pytest.mark.parametrize("model, extra, message", [
    ("no_head", [], "needs a Dirichlet head"),
    ("no_dropout", ["--mc-samples", "3"], "dropout 0"),
])
def test_models_that_cannot_predict_exit_2_naming_why(setup, tmp_path, capsys, model, extra, message):
    out = tmp_path / "p.parquet"
    assert predict(setup, out, *extra, model=model) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_bad_arguments_exit_2(setup, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        predict(setup, tmp_path / "p.parquet", "--interval", "1.5")
    assert e.value.code == 2 and "strictly between 0 and 1" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "nowhere"), "--shards", str(setup["labelled"]),
                 "--out", str(tmp_path / "p.parquet")]) == 2
    assert "config.json" in capsys.readouterr().err
