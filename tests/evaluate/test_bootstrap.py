import numpy as np
import pytest

from hybridssl.evaluate.bootstrap import (MEAN, BootstrapConfig, compare_groups, draw, group_of, groups, interval,
                                          resampled_accuracy)

CFG = BootstrapConfig(draws=400, seed=0, confidence=0.95, reference="scratch")


def _cells(preds: dict, budgets=("4", "all"), seeds=(0, 1, 2), protocol="linear"):
    """Cells as the benchmark logs them; ``preds[backbone][budget][seed]`` = predicted classes."""
    return [{"backbone": b, "protocol": protocol, "budget": budget, "seed": s, "n_labels": 4 if budget == "4" else 32,
             "test_pred": list(map(int, preds[b][budget][i]))}
            for b in preds for budget in budgets for i, s in enumerate(seeds)]


def _random_preds(rng, y, accuracy, budgets=("4", "all"), n_seeds=3):
    """Predictions right on about ``accuracy`` of the galaxies, differently per budget and seed."""
    return {b: [np.where(rng.random(len(y)) < accuracy, y, 1 - y) for _ in range(n_seeds)] for b in budgets}


def test_backbones_named_mode_seed_k_are_grouped_and_other_names_stand_alone():
    assert [group_of(n) for n in ("hybrid_seed0", "hybrid_seed12", "scratch", "my_seedling", "hybrid_seed0_wall")] \
        == ["hybrid", "hybrid", "scratch", "my_seedling", "hybrid_seed0_wall"]
    assert groups(["scratch", "hybrid_seed1", "byol", "hybrid_seed0"]) == \
        {"scratch": ["scratch"], "hybrid": ["hybrid_seed0", "hybrid_seed1"], "byol": ["byol"]}


def test_interval_covers_the_truth_at_about_the_nominal_rate():
    """Simulated benchmark: galaxies of varying difficulty (mean 0.65), pretraining seeds and probe
    seeds that shift every galaxy's chance of being right; the truth is the mean over all three."""
    rng = np.random.default_rng(1)
    hits, test_only_hits, trials = 0, 0, 200
    for r in range(trials):
        q = rng.uniform(0.45, 0.85, 150)
        shift = rng.uniform(-0.1, 0.1, (5, 1, 1)) + rng.uniform(-0.03, 0.03, (1, 3, 1))
        correct = rng.random((5, 3, 150)) < q + shift
        draws = draw(150, 3, {"g": 5}, 500, seed=r)
        lo, hi = interval(resampled_accuracy(correct, draws, "g"), 0.95)
        hits += lo <= 0.65 <= hi
        draws.pretrain["g"][:] = 1  # the same intervals without resampling the pretraining seeds
        lo, hi = interval(resampled_accuracy(correct, draws, "g"), 0.95)
        test_only_hits += lo <= 0.65 <= hi
    assert 0.88 <= hits / trials <= 0.99
    assert test_only_hits < hits - 10  # pretraining-seed variance is a real part of the interval


def test_identical_backbones_differ_by_exactly_zero_with_a_zero_width_interval():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    same = _random_preds(rng, y, 0.7)
    preds = {"scratch": same, "hybrid_seed0": same, "hybrid_seed1": same, "other": _random_preds(rng, y, 0.7)}
    modes, diffs = compare_groups(_cells(preds), y, ["4", "all"], CFG)
    d = [r for r in diffs if (r["group"], r["versus"]) == ("hybrid", "scratch")]
    assert [r["budget"] for r in d] == ["4", "all", MEAN]
    for r in d:
        assert r["difference_mean"] == r["difference_lo"] == r["difference_hi"] == 0.0
        assert r["fraction_above_0"] == 0.0
    other = [r for r in diffs if r["budget"] == MEAN and "other" in (r["group"], r["versus"])]
    assert all(r["difference_hi"] > r["difference_lo"] for r in other)  # real differences have a spread


def test_accuracy_by_mode_is_the_mean_of_its_cells_sorted_as_measured_with_paired_differences():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    preds = {"scratch": _random_preds(rng, y, 0.6), "weak_seed0": _random_preds(rng, y, 0.55),
             "strong_seed0": _random_preds(rng, y, 0.85), "strong_seed1": _random_preds(rng, y, 0.8)}
    cells = _cells(preds)
    modes, diffs = compare_groups(cells, y, ["4", "all"], CFG)
    assert list(dict.fromkeys(r["group"] for r in modes)) == ["strong", "scratch", "weak"]  # measured, not given
    strong = {r["budget"]: r for r in modes if r["group"] == "strong"}
    for b in ("4", "all"):
        accs = [np.mean(np.array(c["test_pred"]) == y) for c in cells
                if c["backbone"].startswith("strong") and c["budget"] == b]
        assert strong[b]["accuracy_mean"] == pytest.approx(np.mean(accs))
        assert strong[b]["accuracy_lo"] < strong[b]["accuracy_mean"] < strong[b]["accuracy_hi"]
    assert strong[MEAN]["accuracy_mean"] == pytest.approx(np.mean([strong[b]["accuracy_mean"] for b in ("4", "all")]))
    assert strong["4"]["n_pretrain_seeds"] == 2 and strong["4"]["n_probe_seeds"] == 3 and strong["4"]["n_test"] == 200
    assert [(r["group"], r["versus"]) for r in diffs if r["budget"] == MEAN] == \
        [("strong", "scratch"), ("weak", "scratch"), ("strong", "weak")]  # every mode vs the reference first
    vs = {(r["group"], r["budget"]): r for r in diffs if r["versus"] == "scratch"}
    assert vs["strong", MEAN]["difference_lo"] > 0 and vs["strong", MEAN]["fraction_above_0"] == 1.0
    assert vs["weak", MEAN]["difference_mean"] == pytest.approx(
        next(r["accuracy_mean"] for r in modes if r["group"] == "weak" and r["budget"] == MEAN)
        - next(r["accuracy_mean"] for r in modes if r["group"] == "scratch" and r["budget"] == MEAN))


def test_the_same_seed_gives_the_same_intervals():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    cells = _cells({"a": _random_preds(rng, y, 0.7), "b": _random_preds(rng, y, 0.6)})
    assert compare_groups(cells, y, ["4", "all"], CFG) == compare_groups(cells, y, ["4", "all"], CFG)


def test_a_cell_without_per_galaxy_predictions_is_named():
    y = np.zeros(10, dtype=int)
    cells = _cells({"a": {"4": [y] * 3, "all": [y] * 3}})
    del cells[4]["test_pred"]
    with pytest.raises(ValueError, match="cell a linear budget all seed 1"):
        compare_groups(cells, y, ["4", "all"], CFG)
