"""``hybridssl calibrate`` end to end, and its tally skipping questions nobody voted on."""
import argparse
import json

import numpy as np
import pytest

from backbone_factory import SCHEMA, write_export
from factories import write_shards
from hybridssl.apply.calibrate import markdown, tally
from hybridssl.apply.inference import load_model
from hybridssl.cli import main
from hybridssl.data import IndexedShards

N = 24
LEVELS = [0.5, 0.68, 0.8, 0.9, 0.95]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate")
    return {"model": write_export(root / "model", head_dropout=0.3),
            "labelled": write_shards(root / "labelled", N, labelled=True, n_shards=2),
            "unlabelled": write_shards(root / "unlabelled", 4, labelled=False, n_shards=1)}


def calibrate(setup, out, *extra, shards="labelled"):
    return main(["calibrate", "--model", str(setup["model"]), "--shards", str(setup[shards]), "--out", str(out),
                 "--batch-size", "10", *extra])


@pytest.mark.parametrize("mc", ["1", "4"])
def test_writes_json_markdown_and_plot(setup, tmp_path, capsys, mc):
    assert calibrate(setup, tmp_path, "--mc-samples", mc) == 0
    assert f"calibrate: {N} galaxies" in capsys.readouterr().out
    doc = json.loads((tmp_path / "calibration.json").read_text())
    assert doc["levels"] == LEVELS and doc["mc_samples"] == int(mc)
    dr5 = [q for q in SCHEMA.questions if q.campaign == "dr5"]
    assert set(doc["campaigns"]) == {"dr5"} and set(doc["questions"]) <= {q.name for q in dr5}
    root = doc["questions"]["smooth-or-featured-dr5"]
    assert root["n_galaxy_questions"] == N and root["n"] == N * 3  # every galaxy answered the root question
    overall = doc["overall"]
    assert overall["n"] == sum(q["n"] for q in doc["questions"].values()) == doc["campaigns"]["dr5"]["n"]
    for s in [overall, *doc["questions"].values()]:
        assert len(s["observed"]) == len(s["expected"]) == len(LEVELS)
        assert all(0 <= o <= 1 for o in s["observed"]) and all(lv <= e <= 1 for lv, e in zip(LEVELS, s["expected"]))
        assert np.all(np.diff(s["expected"]) >= 0)
    md = (tmp_path / "calibration.md").read_text()
    assert "| **overall** |" in md and "| dr5 |" in md and "Worst" in md
    assert (tmp_path / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_galaxies_without_votes_contribute_nothing(setup):
    ds = IndexedShards(setup["labelled"])
    samples = [ds[i] for i in range(8)]
    for s in samples[4:]:
        s["votes"] = s["votes"] * 0  # no volunteers at all: no interval, no division by zero
    args = argparse.Namespace(batch_size=3, workers=0, mc_samples=1, levels=LEVELS)
    t = tally(load_model(setup["model"]), samples, args)
    votes = np.stack([s["votes"].numpy() for s in samples[:4]])
    answered = np.add.reduceat(votes, [q.start for q in SCHEMA.questions], axis=1) > 0
    np.testing.assert_array_equal(t["galaxies"], answered.sum(0))
    np.testing.assert_array_equal(t["n"], answered.sum(0) * [len(q.answers) for q in SCHEMA.questions])
    root = [q.name for q in SCHEMA.questions].index("smooth-or-featured-dr5")
    assert t["n"][root] == 4 * 3 and SCHEMA.questions[0].campaign == "dr12" and t["n"][0] == 0
    assert np.all(np.isfinite(t["mass"])) and np.all(t["mass"] <= t["n"] + 1e-9)
    assert np.all(t["inside"] <= t["n"]) and np.all(t["inside"][:, t["n"] == 0] == 0)


def test_markdown_lists_worst_question_first():
    def s(obs, exp):
        return {"n": 10, "n_galaxy_questions": 5, "observed": obs, "expected": exp}
    doc = {"model": "m", "source": "s", "mc_samples": 1, "levels": [0.5, 0.9], "overall": s([0.5, 0.9], [0.6, 0.95]),
           "campaigns": {"dr5": s([0.5, 0.9], [0.6, 0.95])},
           "questions": {"fine": s([0.6, 0.95], [0.6, 0.95]), "bad": s([0.1, 0.2], [0.6, 0.95])}}
    md = markdown(doc)
    assert md.index("| bad |") < md.index("| fine |") and "0.100 / 0.600" in md


def test_sources_without_votes_and_bad_levels_exit_2(setup, tmp_path, capsys):
    assert calibrate(setup, tmp_path / "u", shards="unlabelled") == 2
    assert "has no votes" in capsys.readouterr().err and not (tmp_path / "u").exists()
    for bad in ("0.5,1.2", "x", ""):
        with pytest.raises(SystemExit) as e:
            calibrate(setup, tmp_path / "b", "--levels", bad)
        assert e.value.code == 2 and "--levels" in capsys.readouterr().err
