"""``hybridssl acquire``: BALD ranking end to end, and what the score rewards."""
import numpy as np
import pandas as pd
import pytest

from backbone_factory import SCHEMA, write_export
from factories import fake_id, write_shards
from hybridssl.apply.acquire import campaign_scores
from hybridssl.cli import main

DR8 = [q.name for q in SCHEMA.questions if q.campaign == "dr8"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("acquire")
    return {"model": write_export(root / "model", head_dropout=0.3),
            "no_dropout": write_export(root / "no_dropout", head_dropout=0.0),
            "shards": write_shards(root / "shards", 16, labelled=False, n_shards=2)}


def acquire(setup, out, *extra, model="model"):
    return main(["acquire", "--model", str(setup[model]), "--shards", str(setup["shards"]), "--out", str(out),
                 "--batch-size", "6", "--mc-samples", "4", *extra])


def test_writes_the_top_n_by_bald(setup, tmp_path, capsys):
    out = tmp_path / "picks.csv"
    assert acquire(setup, out, "--n", "5") == 0
    printed = capsys.readouterr().out
    assert "ranked 16 galaxies by BALD (dr8" in printed
    picks = pd.read_csv(out)
    assert list(picks.columns) == ["rank", "id_str", "bald", *(f"{q}_mi" for q in DR8)]
    assert picks["rank"].tolist() == [1, 2, 3, 4, 5] and picks.id_str.iloc[0] in printed
    assert set(picks.id_str) <= {fake_id(i) for i in range(16)} and picks.id_str.is_unique
    assert np.all(np.diff(picks.bald) <= 0) and np.all(picks.bald > 0)
    mi = picks[[f"{q}_mi" for q in DR8]].to_numpy()
    assert np.all(mi >= 0) and np.all(picks.bald <= mi.sum(1) + 1e-6)  # ask probabilities weigh <= 1
    assert acquire(setup, tmp_path / "all.csv", "--n", "100", "--campaign", "dr5") == 0
    everything = pd.read_csv(tmp_path / "all.csv")
    assert len(everything) == 16 and "smooth-or-featured-dr5_mi" in everything.columns
    assert "source has 16 galaxies" in capsys.readouterr().err


def test_montage_of_the_top_picks(setup, tmp_path):
    from PIL import Image
    out, png = tmp_path / "picks.csv", tmp_path / "picks.png"
    assert acquire(setup, out, "--n", "3", "--montage", str(png)) == 0
    with Image.open(png) as im:
        assert im.width > 200 and im.height > 100


def batch_of(*galaxies):
    """(K, B, n_answers) concentrations from per-galaxy (K, n_answers) samples."""
    return np.stack(galaxies, 1)


def test_disagreeing_samples_outrank_agreeing_ones_and_unasked_questions_count_little():
    k = 6
    certain = np.full((k, SCHEMA.n_answers), 30.0)
    uncertain = certain.copy()
    bar = next(q for q in SCHEMA.questions if q.name == "bar-dr8")
    uncertain[::2, bar.start:bar.end] = [90.0, 2.0, 2.0]  # samples disagree about the bar
    uncertain[1::2, bar.start:bar.end] = [2.0, 2.0, 90.0]
    smooth = next(q for q in SCHEMA.questions if q.name == "smooth-or-featured-dr8")
    unreached = uncertain.copy()
    unreached[:, smooth.start:smooth.end] = [100.0, 1.0, 1.0]  # almost surely smooth: bar is rarely asked
    score, mi = campaign_scores(SCHEMA, "dr8", batch_of(certain, uncertain, unreached), 40)
    assert mi.shape == (3, len(DR8)) and np.all(mi >= 0)
    assert np.all(mi[0] < 1e-10) and score[0] < 1e-9  # identical samples: nothing to learn
    assert mi[1, DR8.index("bar-dr8")] > 0.3 and score[1] > 0.05
    assert mi[2, DR8.index("bar-dr8")] == pytest.approx(mi[1, DR8.index("bar-dr8")])
    assert score[2] < score[1] / 10


@pytest.mark.parametrize("model, extra, message", [
    ("model", ["--mc-samples", "1"], "--mc-samples >= 2"),
    ("no_dropout", [], "dropout 0"),
    ("model", ["--campaign", "dr99"], "unknown campaign 'dr99'"),
])
def test_unusable_settings_exit_2_naming_why(setup, tmp_path, capsys, model, extra, message):
    out = tmp_path / "picks.csv"
    assert acquire(setup, out, "--n", "3", *extra, model=model) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_bad_n_is_an_argument_error(setup, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        acquire(setup, tmp_path / "p.csv", "--n", "0")
    assert e.value.code == 2 and "--n" in capsys.readouterr().err
