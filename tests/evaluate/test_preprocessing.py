"""Evaluation preprocessing (benchmark features, predict, embed) applies the export's own mean/std,
checked by hand with values far from ImageNet's."""
import json

import numpy as np
import pytest
import torch

from backbone_factory import write_export
from factories import write_shards
from hybridssl.export import timm_folder as export
from hybridssl.apply.inference import load_model
from hybridssl.data import IndexedShards
from hybridssl.evaluate.features import extract_features

MEAN, STD = [0.1, 0.5, 0.9], [0.5, 0.25, 2.0]


@pytest.fixture
def exported(tmp_path):
    out = write_export(tmp_path / "export", image_size=32, head_dropout=0.0)
    info = json.loads((out / "config.json").read_text())
    info["mean"], info["std"] = MEAN, STD
    (out / "config.json").write_text(json.dumps(info))
    return out


def by_hand(images: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def hand_features(export_dir, images: torch.Tensor) -> torch.Tensor:
    backbone, _ = export.load_backbone(export_dir)
    with torch.no_grad():
        return backbone.eval()(by_hand(images))


def test_predict_and_embed_normalise_with_the_exported_statistics(exported):
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = load_model(exported)
    torch.testing.assert_close(model.transform(images), by_hand(images), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.features(images), hand_features(exported, images), atol=1e-4, rtol=1e-4)


def test_benchmark_features_normalise_with_the_exported_statistics(exported, tmp_path):
    shards = write_shards(tmp_path / "shards", 6, n_shards=1, image_size=32)
    feats = extract_features(exported, shards, tmp_path / "cache", "minimal", batch_size=4)
    data = IndexedShards(shards)
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    order = [feats.ids.index(data[i]["id_str"]) for i in range(len(data))]
    np.testing.assert_allclose(feats.x[order], hand_features(exported, images).numpy(), atol=1e-4, rtol=1e-4)
