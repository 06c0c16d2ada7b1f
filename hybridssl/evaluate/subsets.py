"""Label-budget subsets of a training split: stratified, and nested within a seed.

One ordering of the training rows is drawn per seed; a budget of ``b`` labels is the first
``b`` rows of that ordering, so budget 100 always contains budget 50 of the same seed and the
label curve measures more labels, not different ones. The ordering is jittered systematic
sampling per class: the ``r``-th row of class ``c`` (in a random order) gets the key
``(r + u) / n_c`` with ``u ~ U(0, 1)``; sorting the keys interleaves the classes so that every
prefix holds each class within 2 of its proportional share.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ALL = "all"


def stratified_order(labels: Sequence, seed: int) -> np.ndarray:
    """A permutation of ``range(len(labels))`` whose every prefix is stratified by label."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rows = rows[rng.permutation(len(rows))]
        keys[rows] = (np.arange(len(rows)) + rng.random(len(rows))) / len(rows)
    return np.argsort(keys, kind="stable")


def budget_size(budget: int | str, n_train: int) -> int:
    """The number of rows a budget names (``"all"`` = the whole training split)."""
    return n_train if budget == ALL else int(budget)


def nested_subsets(labels: Sequence, budgets: Sequence[int | str], seed: int) -> dict:
    """``{budget: row indices}`` for one seed; smaller budgets are prefixes of larger ones."""
    order = stratified_order(labels, seed)
    return {b: np.sort(order[:budget_size(b, len(order))]) for b in budgets}


def check_budgets(budgets: Sequence[int | str], n_train: int, n_classes: int, where: str = "") -> None:
    """Refuse budgets the training split cannot honour, naming the ``budgets`` key.

    A budget larger than the split is an error rather than silently becoming ``all``: two
    columns of the table would then hold the same experiment under different names.
    """
    from hybridssl.config import ConfigError

    if not budgets:
        raise ConfigError("config key 'budgets' is empty; give label budgets such as [50, 100, all]")
    for b in budgets:
        if b == ALL:
            continue
        if isinstance(b, str) or isinstance(b, bool) or int(b) != b:
            raise ConfigError(f"config key 'budgets': {b!r} is neither a whole number nor {ALL!r}")
        if b < n_classes:
            raise ConfigError(f"config key 'budgets': {b} labels cannot cover the {n_classes} classes "
                              f"of the task; use at least {n_classes}")
        if b > n_train:
            raise ConfigError(f"config key 'budgets': {b} is larger than the train split "
                              f"({n_train} rows{where}); use at most {n_train} or {ALL!r}")
    sizes = [budget_size(b, n_train) for b in budgets]
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"config key 'budgets': {list(budgets)} name the same subset size twice "
                          f"(train split has {n_train} rows)")
