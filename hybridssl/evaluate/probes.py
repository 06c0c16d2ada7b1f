"""Probes on frozen features: the linear probe (the benchmark's main protocol) and kNN.

Everything a probe learns, the feature scaling and the regularisation strength included,
comes from the training subset alone: the pipeline is fitted on the subset rows only and its
cross-validation splits those rows, so a 50-label result never peeks at label 51.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

import numpy as np
from omegaconf import MISSING
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass
class LinearProbeConfig:
    Cs: List[float] = MISSING      # inverse regularisation strengths tried by the CV
    cv_folds: int = MISSING        # at most; fewer when the rarest class has fewer rows
    scoring: str = MISSING         # sklearn scorer that picks C (e.g. neg_log_loss)
    max_iter: int = MISSING


@dataclass
class KnnConfig:
    k: int = MISSING               # at most; fewer when the subset is smaller


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 cfg: LinearProbeConfig, n_classes: int, seed: int) -> tuple[np.ndarray, dict]:
    """Class probabilities (n_test, n_classes) and the chosen C, from a standardised
    logistic regression whose C is picked by stratified CV inside ``x_train``."""
    counts = np.bincount(y_train, minlength=n_classes)
    present = counts[counts > 0]
    folds = int(min(cfg.cv_folds, present.min()))
    if len(present) < 2:  # one class only: nothing to separate, predict it
        clf, info = DummyClassifier(strategy="prior"), {"C": math.nan, "cv_folds": 0}
    elif folds < 2:  # a class with a single row cannot be split: no CV, middle of the C grid
        c = float(np.median(cfg.Cs))
        clf, info = LogisticRegression(C=c, max_iter=cfg.max_iter), {"C": c, "cv_folds": 0}
    else:
        clf = LogisticRegressionCV(Cs=list(cfg.Cs), cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                   scoring=cfg.scoring, max_iter=cfg.max_iter, l1_ratios=(0.0,),
                                   **_new_attributes())
        info = {"cv_folds": folds}
    model = make_pipeline(StandardScaler(), clf).fit(x_train, y_train)
    if isinstance(clf, LogisticRegressionCV):
        info["C"] = float(np.ravel(clf.C_)[0])
    return _full_proba(model, x_test, n_classes), info


def knn_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
              cfg: KnnConfig, n_classes: int) -> tuple[np.ndarray, dict]:
    """Class probabilities from a majority vote of the ``k`` nearest training rows (cosine)."""
    k = int(min(cfg.k, len(y_train)))
    model = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(x_train, y_train)
    return _full_proba(model, x_test, n_classes), {"k": k}


def _full_proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, absent ones at 0."""
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _new_attributes() -> dict:
    """Opt in to scikit-learn's simplified fitted attributes where that option exists (>= 1.8)."""
    return {"use_legacy_attributes": False} if "use_legacy_attributes" in LogisticRegressionCV().get_params() else {}
