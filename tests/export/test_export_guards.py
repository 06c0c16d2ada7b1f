"""Export folders are checked before use: plain timm names, files inside the folder, safetensors of
the right shapes; exports of NaN weights and `--out` onto a file are refused, each in one line."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from backbone_factory import write_export
from hybridssl.cli import main
from hybridssl.export.timm_folder import ExportError, export_checkpoint, load_backbone, load_head
from hybridssl.train.checkpoint import CheckpointError


def edit_config(export_dir, **changes):
    path = export_dir / "config.json"
    info = json.loads(path.read_text())
    for k, v in changes.items():
        if isinstance(v, dict):
            info[k] = {**info.get(k, {}), **v}
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


def finetuned_export(tmp_path, n_outputs=2):
    """A factory export with a classification task head, as `hybridssl finetune` writes it."""
    from safetensors.torch import save_file as save

    from hybridssl.finetune.module import task_head
    export = write_export(tmp_path / "export")
    in_features = json.loads((export / "config.json").read_text())["num_features"]
    head = task_head("classification", in_features, n_outputs, 0.0)
    save(dict(head.state_dict()), str(export / "task_head.safetensors"))
    edit_config(export, task_head={"task": "classification", "label_column": "ring", "in_features": in_features,
                                   "n_outputs": n_outputs, "dropout": 0.0, "classes": list(range(n_outputs)),
                                   "file": "task_head.safetensors"})
    return export


@pytest.mark.parametrize("file", ["../task_head.safetensors", "/etc/passwd", "sub/x.safetensors", ""])
def test_task_head_file_must_stay_inside_the_export_folder(tmp_path, file):
    """Issue 24: every file name in config.json is checked like head.file."""
    from hybridssl.finetune.export import load_task_head
    export = finetuned_export(tmp_path)
    edit_config(export, task_head={"file": file})
    with pytest.raises(ExportError, match="task_head.file .* must be a file name inside"):
        load_task_head(export)


def test_a_task_head_of_the_wrong_shape_is_one_line(tmp_path):
    from hybridssl.finetune.export import load_task_head
    export = finetuned_export(tmp_path)
    edit_config(export, task_head={"n_outputs": 3, "classes": [0, 1, 2]})
    with pytest.raises(ExportError, match="task_head.safetensors: not weights of this export's model") as e:
        load_task_head(export)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("key, value", [("image_size", "abc"), ("image_size", -32), ("image_size", 100000),
                                        ("image_size", True), ("in_chans", 0), ("std", [0.2, 0.0, 0.2]),
                                        ("mean", [0.5]), ("head", "nope")])
def test_numeric_fields_are_validated_naming_the_key(tmp_path, key, value):
    """Issue 24: a hand-edited config.json is one line naming the key, never a traceback or
    another key's error (a negative image_size was blamed on augment.blur_kernel)."""
    export = write_export(tmp_path / "export", head_dropout=0.2)
    info = json.loads((export / "config.json").read_text())
    info[key] = value
    (export / "config.json").write_text(json.dumps(info))
    with pytest.raises(ExportError, match=rf"config.json: {key}\b") as e:
        load_backbone(export)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field, value", [("n_outputs", 0), ("in_features", "8"), ("dropout", 1.0),
                                          ("task", "ranking"), ("classes", [0])])
def test_task_head_fields_are_validated_naming_the_key(tmp_path, field, value):
    from hybridssl.finetune.export import load_task_head
    export = finetuned_export(tmp_path)
    edit_config(export, task_head={field: value})
    with pytest.raises(ExportError, match=rf"task_head.{field}\b"):
        load_task_head(export)
