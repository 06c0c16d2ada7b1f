import numpy as np
import pytest

from hybridssl.config import ConfigError
from hybridssl.evaluate.draws import balanced_draws, check_draw_budgets


LABELS = np.array([0] * 70 + [1] * 31 + [2] * 45)  # unbalanced on purpose


def test_test_halves_and_labelled_subsets_are_class_balanced_nested_and_disjoint():
    draws = balanced_draws(LABELS, 12, [6, 15, 30], seed=3)
    assert [d.index for d in draws] == list(range(12))
    for d in draws:
        assert np.bincount(LABELS[d.test]).tolist() == [15, 15, 15]  # 31 // 2 of each class
        for b, rows in d.labelled.items():
            assert np.bincount(LABELS[rows], minlength=3).tolist() == [b // 3] * 3
            assert not set(rows) & set(d.test)
        assert set(d.labelled[6]) < set(d.labelled[15]) < set(d.labelled[30])
    assert len({tuple(d.test) for d in draws}) == 12  # every draw is a new split


def test_the_same_draws_for_every_caller_and_budget_list():
    a = balanced_draws(LABELS, 5, [6, 15], seed=0)
    b = balanced_draws(LABELS, 7, [15, 30], seed=0)  # more draws, other budgets: the shared ones agree
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.test, y.test)
        np.testing.assert_array_equal(x.labelled[15], y.labelled[15])
    assert not np.array_equal(balanced_draws(LABELS, 1, [6], seed=1)[0].test, a[0].test)


@pytest.mark.parametrize("budgets, message", [([6, 60], "at most 48"), ([3], "at least 6"), ([], "empty"),
                                              ([6, 6], "repeats"), (["all"], "whole number")])
def test_budgets_the_draws_cannot_honour_name_the_key(budgets, message):
    with pytest.raises(ConfigError, match=f"'repeated.budgets'.*{message}"):
        check_draw_budgets(budgets, LABELS)
