"""Simulated volunteers: data-driven from the schema, confusion grows for faint galaxies."""
import numpy as np
import pytest

from data_prep.synthetic.morphology import observability, sample_galaxies
from data_prep.synthetic.surveys import SURVEYS
from data_prep.synthetic.volunteers import VolunteerError, ideal_answer, sample_volunteer_counts, simulate_votes
from hybridssl.schema import Schema, load_schema

SCHEMA = load_schema("gz_evo_v0.1")


def _galaxies(n, seed, style="decals"):
    g = sample_galaxies(np.random.default_rng(seed), n, SURVEYS[style])
    g["asymmetry"] = np.zeros(n)      # the renderer measures it; irrelevant to these questions
    return g


def _agreement(truth, campaign, question_name, seed):
    """Fraction of a question's votes that give the answer of a perfect volunteer."""
    q = next(q for q in SCHEMA.questions if q.name == question_name)
    votes = simulate_votes(truth, campaign, SCHEMA, np.random.default_rng(seed), np.full(len(truth["mag"]), 40))
    v = votes[:, q.start:q.end]
    ideal = ideal_answer(truth, q)
    return v[np.arange(len(v)), ideal].sum() / v.sum()


def test_confusion_grows_with_faintness():
    """The same galaxies made 2.5 mag fainter get less accurate votes."""
    bright = _galaxies(3000, seed=1)
    faint = {k: v.copy() for k, v in bright.items()}
    faint["mag"] += 2.5
    observability(faint, SURVEYS["decals"])
    assert (faint["clarity"] < bright["clarity"]).all()
    for question in ("smooth-or-featured-dr5", "disk-edge-on-dr5", "merging-dr5"):
        a_bright = _agreement(bright, "dr5", question, seed=0)
        a_faint = _agreement(faint, "dr5", question, seed=0)
        assert a_bright > a_faint + 0.03, (question, a_bright, a_faint)


def test_bright_clear_galaxies_are_mostly_answered_right():
    g = _galaxies(2000, seed=2)
    clear = {k: v[g["clarity"] > 0.9] for k, v in g.items()}
    assert len(clear["mag"]) > 200
    assert _agreement(clear, "dr5", "smooth-or-featured-dr5", seed=1) > 0.8


def test_volunteer_counts_per_campaign():
    """~40 per galaxy in GZ2, Hubble, CANDELS and DECaLS DR1/2; DR5 and DR8 mix ~5 and ~40."""
    for campaign in ("gz2", "hubble", "candels", "dr12"):
        n = sample_volunteer_counts(np.random.default_rng(0), 5000, campaign)
        assert n.min() >= 30 and n.max() <= 40, campaign
    for campaign in ("dr5", "dr8"):
        n = sample_volunteer_counts(np.random.default_rng(0), 5000, campaign)
        assert n.min() >= 5 and n.max() <= 40
        assert 0.3 < (n <= 7).mean() < 0.7 and (n >= 30).mean() > 0.3, campaign


def test_answers_by_concept_not_by_campaign():
    """dr12 asks bar yes/no, dr5 strong/weak/no: strong bars get 'yes' and 'strong' most."""
    g = _galaxies(3000, seed=3)
    strong = {k: v[(g["bar"] > 0.8) & (g["clarity"] > 0.8) & (g["inclination"] < 50)] for k, v in g.items()}
    assert len(strong["mag"]) > 30
    n = np.full(len(strong["mag"]), 40)
    for campaign, answer in (("dr12", "bar-dr12_yes"), ("dr5", "bar-dr5_strong")):
        votes = simulate_votes(strong, campaign, SCHEMA, np.random.default_rng(0), n)
        q = next(q for q in SCHEMA.questions if q.name == f"bar-{campaign}")
        assert q.columns[votes[:, q.start:q.end].sum(0).argmax()] == answer


def test_new_campaign_with_known_concepts_needs_no_code():
    schema = Schema("mini", {"newsky": [
        {"name": "smooth-or-featured-newsky", "answers": ["smooth", "featured-or-disk", "artifact"], "parent": None},
        {"name": "bar-newsky", "answers": ["strong", "weak", "no"], "parent": "smooth-or-featured-newsky_featured-or-disk"},
    ]})
    g = _galaxies(200, seed=4)
    counts = sample_volunteer_counts(np.random.default_rng(1), 200, "newsky")
    votes = simulate_votes(g, "newsky", schema, np.random.default_rng(0), counts)
    assert votes[:, :3].sum(1).min() >= 5
    assert (votes[:, 3:].sum(1) <= votes[:, 1]).all() and votes[:, 3:].sum() > 0


def test_unknown_concept_or_answer_named_in_error():
    g = _galaxies(10, seed=5)
    n = np.full(10, 5)
    bad_q = Schema("bad", {"x": [{"name": "has-halo-x", "answers": ["yes", "no"], "parent": None}]})
    with pytest.raises(VolunteerError, match="has-halo-x"):
        simulate_votes(g, "x", bad_q, np.random.default_rng(0), n)
    bad_a = Schema("bad", {"x": [{"name": "bar-x", "answers": ["yes", "maybe"], "parent": None}]})
    with pytest.raises(VolunteerError, match="maybe"):
        simulate_votes(g, "x", bad_a, np.random.default_rng(0), n)
