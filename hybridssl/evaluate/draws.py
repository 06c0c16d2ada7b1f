"""Repeated class-balanced splits of every galaxy of a small task (train and test splits together).

Draw ``d`` (its generator seeded by ``(seed, d)`` alone, so every backbone and baseline gets the
same draws and their differences are paired): each class is shuffled; its first ``k`` galaxies
are the test half, ``k = min(class sizes) // 2``, the same ``k`` for every class, so the test half
is class-balanced and accuracy on it is balanced accuracy. A budget of ``b`` labels takes the first
``b // n_classes`` galaxies of each class's remainder, so budgets are class-balanced and nested
(50 labels contain the 20) and never overlap the test half.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class Draw:
    index: int
    test: np.ndarray                 # row indices, sorted
    labelled: dict[int, np.ndarray]  # budget -> row indices, sorted


def per_class_pool(labels: Sequence[int]) -> tuple[int, int]:
    """(test galaxies per class, galaxies per class left for labelled subsets)."""
    smallest = int(np.bincount(np.asarray(labels)).min())
    return smallest // 2, smallest - smallest // 2


def check_draw_budgets(budgets: Sequence, labels: Sequence[int], where: str = "") -> None:
    """Refuse budgets the draws cannot honour, naming ``repeated.budgets``."""
    from hybridssl.config import ConfigError

    labels = np.asarray(labels)
    n_classes = len(np.unique(labels))
    _, pool = per_class_pool(labels)
    if not budgets:
        raise ConfigError("config key 'repeated.budgets' is empty; give label budgets such as [20, 50, 100]")
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int):
            raise ConfigError(f"config key 'repeated.budgets': {b!r} is not a whole number of labels")
        if b // n_classes < 2:
            raise ConfigError(f"config key 'repeated.budgets': {b} labels give fewer than 2 per class for the "
                              f"{n_classes} classes; use at least {2 * n_classes}")
        if b // n_classes > pool:
            raise ConfigError(f"config key 'repeated.budgets': {b} labels need {b // n_classes} per class, but the "
                              f"smallest class{where} leaves {pool} outside the test half; use at most "
                              f"{pool * n_classes}")
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"config key 'repeated.budgets': {list(budgets)} repeats a budget")


def balanced_draws(labels: Sequence[int], n_draws: int, budgets: Sequence[int], seed: int) -> list[Draw]:
    """``n_draws`` draws over the rows of ``labels`` (class indices 0..C-1); see the module docstring."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    k, _ = per_class_pool(labels)
    out = []
    for d in range(n_draws):
        rng = np.random.default_rng([seed, d])
        shuffled = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
        test = np.sort(np.concatenate([rows[:k] for rows in shuffled]))
        labelled = {b: np.sort(np.concatenate([rows[k:k + b // len(classes)] for rows in shuffled]))
                    for b in budgets}
        out.append(Draw(d, test, labelled))
    return out
