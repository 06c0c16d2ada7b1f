import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import balanced_accuracy_score, log_loss, roc_auc_score

from hybridssl.evaluate.draws import balanced_draws
from hybridssl.evaluate.galaxy_bootstrap import compare, weighted_scores
from hybridssl.evaluate.probes import LinearProbeConfig
from hybridssl.evaluate.repeated import predict_draws

PROBE = LinearProbeConfig(Cs=[0.01, 1.0, 100.0], cv_folds=3, scoring="neg_log_loss", max_iter=200)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_unit_weights_give_sklearns_scores_and_whole_weights_equal_repeated_rows(n_classes):
    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, 40)
    p = rng.dirichlet(np.ones(n_classes), 40)
    p[:, 1] = np.round(p[:, 1], 1) + 0.05  # ties in the ranking count half
    p /= p.sum(1, keepdims=True)
    plain = weighted_scores(np.ones((1, 40)), y, p)
    auc = roc_auc_score(y, p[:, 1]) if n_classes == 2 else roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert plain["auc"][0] == pytest.approx(auc)
    assert plain["accuracy"][0] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert plain["log_loss"][0] == pytest.approx(log_loss(y, p, labels=range(n_classes)))
    w = rng.integers(1, 4, 40).astype(float)  # whole weights, so no class loses all its rows
    rows = np.repeat(np.arange(40), w.astype(int))
    weighted, repeated = weighted_scores(w[None], y, p), weighted_scores(np.ones((1, len(rows))), y[rows], p[rows])
    for m in weighted:
        assert weighted[m][0] == pytest.approx(repeated[m][0])


def toy_task(rng, separation, n_per_class=100):
    """Two classes of galaxies, one feature each: N(0, 1) and N(separation, 1)."""
    y = np.repeat([0, 1], n_per_class)
    return rng.normal(separation * y, 1.0)[:, None], y


def predictions(sets: dict, y, draws) -> pd.DataFrame:
    ids = [f"g{i}" for i in range(len(y))]
    return pd.concat([predict_draws(name, x, y, ids, ["0", "1"], draws, PROBE, False) for name, x in sets.items()])


def test_the_toy_task_gives_the_theoretical_auc_and_its_interval_covers_it_at_about_the_nominal_rate():
    """Two Gaussian classes a distance d apart: any increasing score has ROC AUC = Phi(d / sqrt 2). Over 20
    simulated tasks of 200 galaxies the mean estimate is close, and the 95% interval covers the truth in
    at least 16 (the count of covered tasks is Binomial(20, 0.95): below 16 with probability < 0.3%)."""
    d, truth = 1.0, norm.cdf(1.0 / np.sqrt(2))
    rng = np.random.default_rng(1)
    estimates, covered, widths = [], 0, []
    for sim in range(20):
        x, y = toy_task(rng, d)
        pred = predictions({"toy": x}, y, balanced_draws(y, 10, [20], seed=sim))
        rows, _ = compare(pred, ["0", "1"], [], [], n_boot=400, seed=sim, confidence=0.95)
        mean = next(r for r in rows if r["budget"] == "mean")
        estimates.append(mean["auc_mean"])
        covered += mean["auc_lo"] <= truth <= mean["auc_hi"]
        widths.append(mean["auc_hi"] - mean["auc_lo"])
    assert np.mean(estimates) == pytest.approx(truth, abs=0.02)
    assert covered >= 16
    assert 0.03 < np.median(widths) < 0.2  # an interval that says something, not [0, 1]


def test_paired_differences_are_exactly_zero_for_a_copy_and_clearly_positive_for_a_better_feature():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 60)
    good, poor = rng.normal(2.0 * y, 1.0)[:, None], rng.normal(0.3 * y, 1.0)[:, None]
    pred = predictions({"good": good, "poor": poor, "copy": poor}, y, balanced_draws(y, 6, [10, 20], seed=0))
    rows, diffs = compare(pred, ["0", "1"], ["poor"], [], n_boot=300, seed=0, confidence=0.95)
    assert [r["group"] for r in rows if r["budget"] == "mean"][0] == "good"  # sorted by mean AUC
    by = {(r["group"], r["versus"], r["budget"]): r for r in diffs}
    same = by["copy", "poor", "mean"]
    assert same["auc_difference"] == same["auc_lo"] == same["auc_hi"] == 0 and same["auc_fraction_above_0"] == 0
    better = by["good", "poor", "mean"]
    assert better["auc_lo"] > 0.1 and better["auc_fraction_above_0"] == 1
    assert ("good", "copy", "mean") in by  # modes are compared pairwise besides the reference
    assert {b for _, _, b in by} == {10, 20, "mean"}
