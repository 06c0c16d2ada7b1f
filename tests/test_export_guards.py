"""Export folders are checked before use: plain timm names, files inside the folder, safetensors of
the right shapes; exports of NaN weights and `--out` onto a file are refused, each in one line."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from backbone_factory import write_export
from hybridssl.cli import main
from hybridssl.export import ExportError, export_checkpoint, load_backbone, load_head
from hybridssl.train.checkpoint import CheckpointError


def edit_config(export_dir, **changes):
    path = export_dir / "config.json"
    info = json.loads(path.read_text())
    for k, v in changes.items():
        if isinstance(v, dict):
            info[k] = {**info[k], **v}
        else:
            info[k] = v
    path.write_text(json.dumps(info))


@pytest.mark.parametrize("arch", ["hf-hub:timm/resnet18.a1_in1k", "local-dir:/tmp/elsewhere", "no_such_net", 7])
def test_architecture_must_be_a_plain_timm_name(tmp_path, arch):
    export = write_export(tmp_path / "export")
    edit_config(export, architecture=arch)
    with pytest.raises(ExportError, match="not a plain timm model name"):
        load_backbone(export)


@pytest.mark.parametrize("file", ["../head.safetensors", "/etc/passwd", "sub/head.safetensors", ".."])
def test_head_file_must_stay_inside_the_export_folder(tmp_path, file):
    export = write_export(tmp_path / "export", head_dropout=0.2)
    edit_config(export, head={"file": file})
    with pytest.raises(ExportError, match="must be a file name inside"):
        load_head(export)


def test_a_pickle_in_place_of_safetensors_is_one_line_and_never_unpickled(tmp_path):
    export = write_export(tmp_path / "export")
    torch.save({"w": torch.zeros(2)}, export / "model.safetensors")
    with pytest.raises(ExportError, match="model.safetensors: not weights of this export's model") as e:
        load_backbone(export)
    assert "\n" not in str(e.value)


def test_wrong_shapes_in_safetensors_are_one_line(tmp_path):
    export = write_export(tmp_path / "export")
    weights = load_file(str(export / "model.safetensors"))
    key = next(k for k, v in weights.items() if v.ndim == 4)
    weights[key] = torch.zeros(1, 1, 1, 1)
    save_file(weights, str(export / "model.safetensors"))
    with pytest.raises(ExportError, match=rf"size mismatch for {key}") as e:
        load_backbone(export)
    assert "\n" not in str(e.value)


def small_checkpoint(path, value: float):
    export = {"architecture": "test_resnet", "in_chans": 3, "image_size": 32, "mean": [0.5] * 3, "std": [0.2] * 3,
              "schema": "gz_evo_v0.1", "mode": "byol"}
    state = {"model.backbone.conv1.weight": torch.full((2, 3, 3, 3), value),
             "model.backbone.fc.bias": torch.zeros(2)}
    torch.save({"state_dict": state, "global_step": 5, "hybridssl": {"export": export}}, path)
    return path


def test_non_finite_weights_are_not_exported(tmp_path):
    with pytest.raises(CheckpointError, match="1 weight tensors hold NaN or infinity.*conv1.weight"):
        export_checkpoint(small_checkpoint(tmp_path / "nan.ckpt", float("nan")), tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["export", str(small_checkpoint(tmp_path / "x.ckpt", 0.5)), "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert "taken is a file, not a directory" in err and len(err.strip().splitlines()) == 1
