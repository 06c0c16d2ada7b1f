import numpy as np
import pytest

from backbone_factory import write_export
from factories import write_shards
from hybridssl.data import read_meta
from hybridssl.evaluate.finetune import FinetuneConfig, finetune
from hybridssl.finetune import module as ft


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ft")
    shards = write_shards(tmp / "task", 24, labelled=False, n_shards=2, image_size=32,
                          keep={"ring": [i % 2 for i in range(24)]})
    label_of = {m["id_str"]: m["ring"] for m in read_meta(shards)}
    return write_export(tmp / "bb", image_size=32), shards, label_of


def _run(setup, layer_decay=0.5, seed=0):
    bb, shards, label_of = setup
    cfg = FinetuneConfig(epochs=2, lr=1e-3, weight_decay=0.05, layer_decay=layer_decay, batch_size=6,
                         rotation_degrees=180.0)
    return finetune(bb, shards, np.arange(16), np.arange(16, 24), label_of, cfg, n_classes=2,
                    augment_preset="minimal", seed=seed)


def test_probabilities_for_every_test_row_and_reproducible_per_seed(setup):
    probs, info = _run(setup)
    assert probs.shape == (8, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert info["steps"] == 2 * (16 // 6) and np.isfinite(info["final_loss"])
    again, _ = _run(setup)
    np.testing.assert_allclose(again, probs, atol=1e-6)  # fresh weights each call, same seed -> same result
    other, _ = _run(setup, seed=1)
    assert not np.allclose(other, probs)


def test_layer_decay_gives_earlier_layers_smaller_learning_rates(setup, monkeypatch):
    made = []
    real = ft.create_optimizer_v2
    monkeypatch.setattr(ft, "create_optimizer_v2", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    _run(setup, layer_decay=0.5)
    groups = made[-1].param_groups
    scales = np.array([g["lr_scale"] for g in groups])
    lrs = np.array([g["lr"] for g in groups])
    assert scales.min() < 0.1 and scales.max() == 1.0
    np.testing.assert_allclose(lrs / scales, lrs[scales.argmax()], rtol=1e-6)  # the schedule applied each scale
    _run(setup, layer_decay=None)
    assert all("lr_scale" not in g or g["lr_scale"] == 1.0 for g in made[-1].param_groups)
