import numpy as np
import pytest

from hybridssl.config import ConfigError
from hybridssl.evaluate.subsets import check_budgets, nested_subsets, stratified_order

LABELS = np.array([0] * 700 + [1] * 250 + [2] * 50)
BUDGETS = [10, 50, 100, 250, 600, "all"]


def test_budgets_are_nested_within_a_seed():
    subsets = nested_subsets(LABELS, BUDGETS, seed=3)
    sizes = [len(subsets[b]) for b in BUDGETS]
    assert sizes == [10, 50, 100, 250, 600, len(LABELS)]
    for small, large in zip(BUDGETS, BUDGETS[1:]):
        assert set(subsets[small]) <= set(subsets[large])


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_prefix_is_stratified(seed):
    order = stratified_order(LABELS, seed)
    assert sorted(order) == list(range(len(LABELS)))
    share = np.bincount(LABELS) / len(LABELS)
    for b in range(1, len(LABELS) + 1, 7):
        counts = np.bincount(LABELS[order[:b]], minlength=3)
        assert np.all(np.abs(counts - b * share) < 2), (b, counts, b * share)


def test_deterministic_per_seed_and_different_across_seeds():
    a = nested_subsets(LABELS, BUDGETS, seed=0)
    again = nested_subsets(LABELS, BUDGETS, seed=0)
    other = nested_subsets(LABELS, BUDGETS, seed=1)
    assert all(np.array_equal(a[b], again[b]) for b in BUDGETS)
    assert not np.array_equal(a[100], other[100])


def test_string_labels_work():
    labels = np.array(["ring"] * 30 + ["none"] * 70)
    sub = nested_subsets(labels, [10], seed=0)[10]
    assert sorted(labels[sub].tolist()).count("ring") == 3


def test_budget_larger_than_train_split_names_the_key():
    with pytest.raises(ConfigError, match=r"'budgets'.*2000.*larger than the train split \(800 rows"):
        check_budgets([50, 2000, "all"], n_train=800, n_classes=2)


@pytest.mark.parametrize("budgets, message", [
    ([], "empty"), ([1, "all"], "cannot cover the 2 classes"), (["most"], "neither a whole number"),
    ([800, "all"], "same subset size twice")])
def test_other_bad_budgets(budgets, message):
    with pytest.raises(ConfigError, match=message):
        check_budgets(budgets, n_train=800, n_classes=2)


def test_good_budgets_pass():
    check_budgets([2, 50, 799, "all"], n_train=800, n_classes=2)
