"""Classification scores of one benchmark cell, and their summary over seeds."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from torchmetrics.functional.classification import (binary_auroc, multiclass_accuracy,
                                                    multiclass_recall)

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")


def classification_scores(probs: np.ndarray, target: Sequence[int]) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean per-class recall) and, for two classes, ROC-AUC.

    ``probs``: (n, n_classes) class probabilities; ``target``: class indices.
    """
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float64)
    t = torch.as_tensor(np.asarray(target), dtype=torch.long)
    k = p.shape[1]
    scores = {
        "accuracy": multiclass_accuracy(p, t, num_classes=k, average="micro").item(),
        "balanced_accuracy": multiclass_recall(p, t, num_classes=k, average="macro").item(),
    }
    if k == 2:
        scores["roc_auc"] = binary_auroc(p[:, 1], t).item()
    return scores


def summarise(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample std and the half-width of the Student-t confidence interval of the mean."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci95": math.nan}
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": float(v.mean()), "std": std, "ci95": half}
