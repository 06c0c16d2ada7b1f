import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from hybridssl.evaluate.metrics import classification_scores, summarise


def _toy(n_classes, n=200, seed=0):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[target] * rng.random((n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, target


def test_binary_scores_match_sklearn():
    probs, target = _toy(2)
    s = classification_scores(probs, target)
    pred = probs.argmax(1)
    assert s["accuracy"] == pytest.approx(accuracy_score(target, pred), abs=1e-6)
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(target, pred), abs=1e-6)
    assert s["roc_auc"] == pytest.approx(roc_auc_score(target, probs[:, 1]), abs=1e-6)


def test_multiclass_scores_match_sklearn_and_skip_auc():
    probs, target = _toy(4, seed=1)
    s = classification_scores(probs, target)
    pred = probs.argmax(1)
    assert s["accuracy"] == pytest.approx(accuracy_score(target, pred), abs=1e-6)
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(target, pred), abs=1e-6)
    assert "roc_auc" not in s


def test_imbalanced_balanced_accuracy_differs_from_accuracy():
    target = np.array([0] * 90 + [1] * 10)
    probs = np.tile([0.9, 0.1], (100, 1))  # always predicts the majority class
    s = classification_scores(probs, target)
    assert s["accuracy"] == pytest.approx(0.9)
    assert s["balanced_accuracy"] == pytest.approx(0.5)


def test_summary_mean_std_and_t_interval():
    values = [0.70, 0.74, 0.69, 0.75, 0.72]
    s = summarise(values)
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert s["ci95"] == pytest.approx((hi - lo) / 2)


def test_summary_of_one_seed_has_no_spread():
    s = summarise([0.8])
    assert s["mean"] == 0.8 and math.isnan(s["std"]) and math.isnan(s["ci95"])
