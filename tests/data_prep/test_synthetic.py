"""The demo dataset end to end: catalogs, votes, images, determinism, montage (small, 32 px)."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep.synthetic import rings, writer
from data_prep.synthetic.surveys import SURVEYS
from data_prep.synthetic.volunteers import MAX_VOLUNTEERS, MIN_VOLUNTEERS
from hybridssl.cli import main
from hybridssl.schema import load_schema

SCHEMA = load_schema("gz_evo_v0.1")


def _cli_args(out, workers):
    return ["demo-data", str(out), "--n-labelled", "90", "--n-unlabelled", "25", "--n-downstream", "30",
            "--size", "32", "--seed", "7", "--workers", str(workers), "--n-heldout", "20"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(_cli_args(out, 0)) == 0
    return out


def _read(out):
    return {"labelled": pd.read_parquet(out / "labelled.parquet"),
            "unlabelled": pd.read_parquet(out / "unlabelled.parquet"),
            "rings": pd.read_parquet(out / "downstream" / "rings.parquet")}


def test_catalog_columns_and_shapes(demo):
    cats = _read(demo)
    lab = cats["labelled"]
    assert len(lab) == 90 and lab["id_str"].is_unique
    assert list(lab.columns[:3]) == ["id_str", "file_loc", "campaign"]
    assert list(lab.columns[3:3 + SCHEMA.n_answers]) == SCHEMA.label_cols
    truth = [c for c in lab.columns[3 + SCHEMA.n_answers:]]
    assert truth and all(c.startswith("true_") for c in truth)
    assert {"true_ring", "true_bar", "true_arms", "true_clumps", "true_merger"} <= set(truth)
    assert set(lab["campaign"]) <= set(SCHEMA.campaigns) and lab["campaign"].nunique() >= 4
    assert list(cats["unlabelled"].columns) == ["id_str", "file_loc", "survey"]
    assert len(cats["unlabelled"]) == 25 and set(cats["unlabelled"]["survey"]) <= set(SURVEYS)
    assert list(cats["rings"].columns) == ["id_str", "file_loc", "ring", "split"]
    assert len(cats["rings"]) == 30


def test_heldout_is_labelled_like_training_but_disjoint(demo):
    lab, held = pd.read_parquet(demo / "labelled.parquet"), pd.read_parquet(demo / "heldout.parquet")
    assert len(held) == 20 and list(held.columns) == list(lab.columns)
    assert not set(held["id_str"]) & set(lab["id_str"])
    assert not set(held["file_loc"]) & set(lab["file_loc"])
    assert (held[SCHEMA.label_cols].sum(axis=1) > 0).all()
    # its own random stream: not a copy of the first labelled galaxies
    assert not np.array_equal(held[SCHEMA.label_cols].to_numpy(), lab[SCHEMA.label_cols].to_numpy()[:20])


def test_votes_follow_each_campaigns_tree(demo):
    lab = _read(demo)["labelled"]
    votes = lab[SCHEMA.label_cols]
    assert all(np.issubdtype(t, np.integer) for t in votes.dtypes) and (votes.to_numpy() >= 0).all()
    for _, row in lab.iterrows():
        own = set(SCHEMA.campaign_columns(row["campaign"]))
        assert row[[c for c in SCHEMA.label_cols if c not in own]].sum() == 0
        roots = [q for q in SCHEMA.questions if q.campaign == row["campaign"] and q.parent is None]
        for q in roots:                      # every volunteer answers every root question
            assert MIN_VOLUNTEERS <= row[q.columns].sum() <= MAX_VOLUNTEERS
        assert len({row[q.columns].sum() for q in roots}) == 1
    v = votes.to_numpy()
    for q in SCHEMA.questions:
        if q.parent is not None:
            child = v[:, q.start:q.end].sum(1)
            assert (child <= v[:, SCHEMA.column_index[q.parent]]).all(), q.name
    # deeper questions get fewer votes in aggregate
    for c in SCHEMA.campaigns:
        root = next(q for q in SCHEMA.questions if q.campaign == c and q.parent is None)
        deep = [q for q in SCHEMA.questions if q.campaign == c and q.parent is not None]
        assert all(v[:, q.start:q.end].sum() < v[:, root.start:root.end].sum() for q in deep)


def test_ring_is_truth_not_a_question(demo):
    """``true_ring``: the galaxy has a ring; ``true_ring_seen``: one a volunteer could see (face-on,
    contrasted, above the noise), the ring task's label."""
    assert not [c for c in SCHEMA.label_cols if "ring" in c.split("_", 1)[0]]
    lab = _read(demo)["labelled"]
    has_ring = (lab["true_ring_inner"] > 0) | (lab["true_ring_outer"] > 0)
    assert (lab["true_ring"] == has_ring.astype(int)).all()
    seen = lab["true_ring_seen"] == 1
    assert has_ring[seen].all()
    assert (lab.loc[seen, "true_ring_contrast"] >= rings.MIN_CONTRAST).all()
    assert (lab.loc[seen, "true_ring_snr"] >= rings.MIN_SNR).all()
    assert (lab.loc[seen, "true_inclination"] <= rings.MAX_INCLINATION).all()
    task = _read(demo)["rings"]
    params = writer.ring_task_galaxies(30, seed=7)
    assert (task["ring"].to_numpy() == params["ring_seen"]).all()
    assert task["ring"].sum() == 15
    for split in ("train", "test"):
        assert set(task.loc[task["split"] == split, "ring"]) == {0, 1}


def test_images_readable_with_right_size(demo):
    for name, cat in _read(demo).items():
        base = demo / "downstream" if name == "rings" else demo
        for loc in cat["file_loc"].iloc[:10]:
            with Image.open(base / loc) as img:
                assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 32)
                assert np.asarray(img).std() > 0


def test_deterministic_for_a_seed_whatever_the_workers(demo, tmp_path):
    assert main(_cli_args(tmp_path / "again", 2)) == 0
    first, again = _read(demo), _read(tmp_path / "again")
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])
    for loc in first["labelled"]["file_loc"].iloc[::10]:
        assert (demo / loc).read_bytes() == (tmp_path / "again" / loc).read_bytes()
    other = writer.write_labelled(tmp_path / "other", 90, 32, 8, 0, SCHEMA)
    assert not other[SCHEMA.label_cols].equals(first["labelled"][SCHEMA.label_cols])


def test_montage_written(demo):
    with Image.open(demo / "montage.png") as img:
        assert img.size[0] > 500 and img.size[1] > 500


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["demo-data", "--help"])
    text = capsys.readouterr().out
    for option in ("--n-labelled", "--n-unlabelled", "--n-downstream", "--size", "--seed", "--workers", "--montage"):
        assert option in text
