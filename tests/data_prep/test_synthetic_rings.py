"""The ring task can only be solved by seeing rings: labels are what is visible, negatives matched."""
import numpy as np
import pytest

from data_prep.synthetic import rings, writer
from data_prep.synthetic.morphology import sample_galaxies, take
from data_prep.synthetic import render as render_module
from data_prep.synthetic.render import render
from data_prep.synthetic.surveys import SURVEYS

DECALS = SURVEYS["decals"]


@pytest.fixture(scope="module")
def task():
    params = writer.ring_task_galaxies(2000, seed=0)
    return params, writer.ring_task_split(params["ring_seen"], seed=0)


def _best_rule(x, label):
    """Accuracy of the best rule 'ring iff x > t' (or its reverse) over every threshold t."""
    return max(max(((x > t) == label).mean(), ((x > t) != label).mean()) for t in np.unique(x))


def test_hidden_attributes_alone_do_not_tell_a_ring(task):
    params, split = task
    test = split == "test"
    label = params["ring_seen"][test] == 1
    assert test.sum() == 600 and label.mean() == 0.5
    for name in ("disk", "bar", "inclination", "size"):
        assert _best_rule(params[name][test], label) <= 0.6, name


def test_label_is_the_seen_ring_not_the_hidden_one(task):
    params, _ = task
    hidden = params["ring"] == 1
    assert (hidden == ((params["ring_inner"] > 0) | (params["ring_outer"] > 0))).all()
    assert hidden[params["ring_seen"] == 1].all()
    assert (hidden & (params["ring_seen"] == 0)).sum() > 20     # rings too faint, small or inclined to see


def test_seen_rings_fade_with_noise_blur_and_inclination():
    g = sample_galaxies(np.random.default_rng(1), 20000, DECALS)
    seen = take(g, g["ring_seen"] == 1)
    assert len(seen["mag"]) > 500
    for change, value in (("mag", seen["mag"] + 3), ("psf_fwhm", seen["psf_fwhm"] * 4),
                          ("inclination", np.full_like(seen["inclination"], 80.0)),
                          ("ring_inner", seen["ring_inner"] / 10)):
        other = dict(seen, **{change: value})
        if change == "ring_inner":
            other["ring_outer"] = seen["ring_outer"] / 10
        rings.ring_visibility(other, DECALS)
        assert other["ring_seen"].mean() < 0.5, change


def test_seen_ring_and_its_gap_show_in_the_image(monkeypatch):
    """Render seen inner rings with the same noise: brighter on the ring than without it, and darker
    in the gap than with the disk left whole."""
    params = writer.ring_task_galaxies(80, seed=3)
    pick = (params["ring_seen"] == 1) & (params["artifact_kind"] == 0) & (params["ring_inner"] > 0)
    ringed = take(params, np.flatnonzero(pick)[:8])
    plain = dict(ringed, ring_inner=np.zeros_like(ringed["ring_inner"]), ring_outer=np.zeros_like(ringed["ring_outer"]))
    size = 64

    def image(g):
        return render(g, DECALS, size, np.random.default_rng(0))[0].astype(float).sum(-1)
    with_ring, without_ring = image(ringed), image(plain)
    monkeypatch.setattr(render_module, "GAP_PER_RING_LIGHT", 0.0)
    no_gap = image(ringed)
    grid = (np.arange(size) + 0.5) / size - 0.5
    x, y = np.meshgrid(grid, grid)
    for i in range(len(ringed["mag"])):
        c, s = np.cos(ringed["pa"][i]), np.sin(ringed["pa"][i])
        r = np.hypot(x * c + y * s, (y * c - x * s) / ringed["disk_q"][i]) / ringed["ring_inner_r"][i]
        w = ringed["ring_width"][i]
        on_ring, in_gap = np.abs(r - 1) < w + 0.5 / size, np.abs(r - (1 - 3 * w)) < w
        assert (with_ring - without_ring)[i][on_ring].mean() > 3, i
        assert (with_ring - no_gap)[i][in_gap].mean() < -1, i
