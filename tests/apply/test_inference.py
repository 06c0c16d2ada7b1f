"""Loading an export for inference (issue 24): a head built for other features is refused up front."""
import json

import pytest
from safetensors.torch import save_file

from backbone_factory import SCHEMA, write_export
from hybridssl.apply.inference import ModelError, load_model
from hybridssl.model.heads import DirichletHead


def test_a_head_for_other_features_is_one_line(tmp_path):
    export = write_export(tmp_path / "export", head_dropout=0.2)
    info = json.loads((export / "config.json").read_text())
    wrong = info["num_features"] + 1
    head = DirichletHead(wrong, SCHEMA.n_answers, 0.2)  # self-consistent weights, wrong for the backbone
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(export / "head.safetensors"))
    info["head"]["in_features"] = wrong
    (export / "config.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match=rf"head.in_features is {wrong}, but the backbone gives {wrong - 1}"):
        load_model(export)
    info["head"]["in_features"] = wrong - 1
    head = DirichletHead(wrong - 1, SCHEMA.n_answers, 0.2)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(export / "head.safetensors"))
    (export / "config.json").write_text(json.dumps(info))
    assert load_model(export).head is not None
