"""Integer split columns (issue 24): ``isplit == 1`` selects the rows, whatever the stored type."""
import json

import pytest

from backbone_factory import write_export
from factories import write_shards
from hybridssl.cli import main
from hybridssl.finetune.labels import split_text

N = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    keep = {"ring": [i % 2 for i in range(N)], "isplit": [1] * 12 + [0] * 4}
    return write_export(root / "model"), write_shards(root / "rings", N, labelled=False, n_shards=1, keep=keep)


def test_split_values_compare_as_text():
    assert split_text(1) == split_text(1.0) == split_text("1") == "1"
    assert split_text(1.5) == "1.5" and split_text("train") == "train"


def test_an_integer_split_column_selects_its_rows(data, tmp_path, capsys):
    model, shards = data
    # overrides on both sides of a flag (issue 24: key=value anywhere on the command line)
    argv = ["finetune", "split_column=isplit", "--model", str(model), "--shards", str(shards), "train_split=1",
            "--out", str(tmp_path / "ft"), "--batch-size", "4", "--label-column", "ring", "epochs=1"]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "ft" / "config.json").read_text())["finetune"]
    assert summary["n_train"] + summary["n_val"] == 12


def test_a_missing_integer_split_value_is_named_consistently(data, tmp_path, capsys):
    model, shards = data
    argv = ["finetune", "--model", str(model), "--shards", str(shards), "--out", str(tmp_path / "ft"),
            "--label-column", "ring", "split_column=isplit", "train_split=2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no row has isplit == '2' (values: ['0', '1'])" in err
