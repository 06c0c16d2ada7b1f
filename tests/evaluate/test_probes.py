import numpy as np
import pytest
from sklearn.linear_model import LogisticRegressionCV
from sklearn.preprocessing import StandardScaler

from hybridssl.evaluate.probes import KnnConfig, LinearProbeConfig, knn_probe, linear_probe

CFG = LinearProbeConfig(Cs=[0.001, 0.1, 10.0], cv_folds=3, scoring="neg_log_loss", max_iter=500)


def _blobs(n, seed=0, shift=2.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8)) + shift * y[:, None] * np.eye(8)[0]
    return x, y


def test_linear_probe_learns_separable_classes():
    x, y = _blobs(300)
    probs, info = linear_probe(x[:100], y[:100], x[100:], CFG, n_classes=2, seed=0)
    assert probs.shape == (200, 2) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y[100:]).mean() > 0.8
    assert info["C"] in CFG.Cs and info["cv_folds"] == 3


def test_cv_and_scaling_see_only_the_subset_rows(monkeypatch):
    """Everything fitted (scaler, CV folds, final model) gets exactly the subset, never test rows."""
    x, y = _blobs(200, seed=1)
    x_train, y_train, x_test = x[:40], y[:40], x[40:] + 100.0  # test rows far away: visible if leaked
    seen = {}
    real_lr_fit, real_scaler_fit = LogisticRegressionCV.fit, StandardScaler.fit

    def lr_fit(self, X, y, **kw):
        seen["lr"] = (X.copy(), y.copy())
        folds = list(self.cv.split(X, y))
        seen["folds"] = folds
        return real_lr_fit(self, X, y, **kw)

    def scaler_fit(self, X, y=None, **kw):
        seen["scaler"] = X.copy()
        return real_scaler_fit(self, X, y, **kw)

    monkeypatch.setattr(LogisticRegressionCV, "fit", lr_fit)
    monkeypatch.setattr(StandardScaler, "fit", scaler_fit)
    linear_probe(x_train, y_train, x_test, CFG, n_classes=2, seed=0)
    np.testing.assert_array_equal(seen["scaler"], x_train)
    assert seen["lr"][0].shape == (40, 8)
    np.testing.assert_allclose(seen["lr"][0], StandardScaler().fit_transform(x_train))
    np.testing.assert_array_equal(seen["lr"][1], y_train)
    # stratified folds split the subset's 40 rows among themselves
    assert all(max(tr.max(), te.max()) < 40 for tr, te in seen["folds"])
    assert sorted(np.concatenate([te for _, te in seen["folds"]]).tolist()) == list(range(40))


def test_subset_too_small_for_cv_falls_back_to_one_c():
    x, y = _blobs(50, seed=2)
    rows = [int(np.flatnonzero(y == 0)[0])] + np.flatnonzero(y == 1)[:4].tolist()
    probs, info = linear_probe(x[rows], y[rows], x, CFG, n_classes=2, seed=0)
    assert info["cv_folds"] == 0 and info["C"] == pytest.approx(0.1)
    assert probs.shape == (50, 2)


def test_missing_class_gets_zero_probability_column():
    x, y = _blobs(60, seed=3)
    rows = np.flatnonzero(y == 1)[:10]
    probs, _ = linear_probe(x[rows], y[rows], x, CFG, n_classes=3, seed=0)
    assert probs.shape == (60, 3) and np.all(probs[:, 1] == 1.0)


def test_knn_is_cosine_and_caps_k():
    # same direction, different length: cosine neighbours, not euclidean ones
    x_train = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 1.0], [0.0, 10.0]])
    y_train = np.array([0, 0, 1, 1])
    x_test = np.array([[100.0, 1.0], [0.1, 5.0]])
    probs, info = knn_probe(x_train, y_train, x_test, KnnConfig(k=2), n_classes=2)
    assert probs.argmax(1).tolist() == [0, 1]
    _, info = knn_probe(x_train, y_train, x_test, KnnConfig(k=50), n_classes=2)
    assert info["k"] == 4


def test_no_deprecation_warnings_from_sklearn(recwarn):
    x, y = _blobs(60, seed=4)
    linear_probe(x[:30], y[:30], x[30:], CFG, n_classes=2, seed=0)
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
