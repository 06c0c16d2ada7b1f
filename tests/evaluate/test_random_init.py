import json

import numpy as np
import torch

from backbone_factory import write_export
from hybridssl.export import timm_folder as export
from hybridssl.evaluate.random_init import write_random_init


def test_the_random_init_has_the_backbones_architecture_and_config_but_fresh_seeded_weights(tmp_path):
    trained = write_export(tmp_path / "hybrid", image_size=40, seed=7, mode="hybrid", head_dropout=0.2)
    a = write_random_init(trained, tmp_path / "a", seed=0)
    b = write_random_init(trained, tmp_path / "b", seed=0)
    c = write_random_init(trained, tmp_path / "c", seed=1)
    info = json.loads((a / export.CONFIG_FILE).read_text())
    assert info["mode"] == "random_init" and info["architecture"] == "test_resnet" and info["image_size"] == 40
    assert "head" not in info and not (a / export.HEAD_FILE).exists()  # no trained head comes along
    models = [export.load_backbone(d)[0] for d in (trained, a, b, c)]
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        out = [m(x).numpy() for m in models]
    np.testing.assert_array_equal(out[1], out[2])  # seeded: the same weights every time
    assert not np.allclose(out[1], out[3]) and not np.allclose(out[0], out[1])
    assert export.read_export_info(a)["num_features"] == models[1].num_features
