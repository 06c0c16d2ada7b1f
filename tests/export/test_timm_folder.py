"""Export round trip: the exported backbone gives the same features as the trained one, via timm itself."""
import json
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import load_file

from factories import tiny_run_config
from hybridssl.config import ConfigError
from hybridssl.export.timm_folder import export_checkpoint, load_backbone, load_head
from hybridssl.schema import load_schema
from hybridssl.train.checkpoint import load_checkpoint
from hybridssl.train.module import PretrainModule
from hybridssl.train.run import pretrain


@pytest.fixture(scope="module")
def trained_run(tiny_pretrained):
    return tiny_pretrained[:2]


def trained_module(cfg, ckpt) -> PretrainModule:
    module = PretrainModule(cfg, load_schema(cfg.schema))
    module.load_state_dict(load_checkpoint(ckpt)["state_dict"])
    return module.eval()


def test_export_round_trip_through_timm(trained_run, tmp_path):
    cfg, ckpt = trained_run
    info = export_checkpoint(ckpt.parents[1], tmp_path)  # a run directory: its newest checkpoint
    assert info["checkpoint"] == {"file": ckpt.name, "global_step": 2}
    on_disk = json.loads((tmp_path / "config.json").read_text())
    assert on_disk["architecture"] == "test_resnet" and on_disk["mode"] == "hybrid"
    assert on_disk["image_size"] == 32 and on_disk["in_chans"] == 3 and len(on_disk["mean"]) == 3
    assert on_disk["schema"] == "gz_evo_v0.1" and on_disk["schema_hash"] == load_schema("gz_evo_v0.1").hash

    module = trained_module(cfg, ckpt)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = module.model.features(x)
        ours, _ = load_backbone(tmp_path)
        via_timm = timm.create_model("test_resnet", pretrained=True, num_classes=0,
                                     pretrained_cfg_overlay=dict(file=str(tmp_path / "model.safetensors")))
        assert on_disk["num_features"] == via_timm.num_features == before.shape[1]
        torch.testing.assert_close(ours(x), before)
        torch.testing.assert_close(via_timm.eval()(x), before)
        head = load_head(tmp_path)
        torch.testing.assert_close(head(before), module.model.head(before))
    # timm's own key names, and no BYOL or target weights leaked into the backbone file
    assert set(load_file(str(tmp_path / "model.safetensors"))) == set(timm.create_model(
        "test_resnet", num_classes=0).state_dict())


def test_vit_backbone_kwargs_round_trip_through_the_export(tmp_path):
    # img_size and patch_size are not test_vit's defaults (224, 16): the reload must take them from config.json
    cfg = tiny_run_config(tmp_path, "model.backbone=test_vit", "model.backbone_kwargs={img_size: 32, patch_size: 8}")
    ckpt = pretrain(cfg)
    info = export_checkpoint(ckpt, tmp_path / "export")
    assert info["model_args"] == {"img_size": 32, "patch_size": 8, "num_classes": 0, "in_chans": 3}
    module = trained_module(cfg, ckpt)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours, _ = load_backbone(tmp_path / "export")
        assert ours.patch_embed.patch_size == (8, 8) and ours.patch_embed.img_size == (32, 32)
        torch.testing.assert_close(ours(x), module.model.features(x))


def test_backbone_kwargs_may_not_set_what_the_run_sets(tmp_path):
    cfg = tiny_run_config(tmp_path, "model.backbone_kwargs={in_chans: 1}")
    with pytest.raises(ConfigError, match=r"model.backbone_kwargs may not set \['in_chans'\]"):
        PretrainModule(cfg, load_schema(cfg.schema))


def test_export_without_head_for_byol(trained_run, tmp_path):
    cfg, ckpt = trained_run
    state = load_checkpoint(ckpt)
    state["state_dict"] = {k: v for k, v in state["state_dict"].items() if not k.startswith("model.head.")}
    state["hybridssl"]["export"].pop("head")
    torch.save(state, tmp_path / "no_head.ckpt")
    info = export_checkpoint(tmp_path / "no_head.ckpt", tmp_path / "out")
    assert "head" not in info and not (tmp_path / "out" / "head.safetensors").exists()
    assert load_head(tmp_path / "out") is None


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling this would create the marker file
        return open, (self.marker, "w")


def test_export_cli_refuses_a_pickle_checkpoint(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "global_step": 1, "hybridssl": _Payload(marker)},
               tmp_path / "evil.ckpt")
    p = subprocess.run([sys.executable, "-m", "hybridssl.cli", "export", str(tmp_path / "evil.ckpt"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=180)
    assert p.returncode == 2 and "refusing to load" in p.stderr and "Traceback" not in p.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
