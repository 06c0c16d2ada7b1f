"""Outputs never destroy inputs (issue 24): identity, inside an input folder, foreign files."""
import numpy as np
import pandas as pd
import pytest

from hybridssl.apply.embeddings import write_embeddings
from hybridssl.storage.outputs import OutputPathError, check_outputs, written_by_us


def test_an_output_that_is_an_input_is_refused(tmp_path):
    catalog = tmp_path / "catalog.parquet"
    pd.DataFrame({"id_str": ["a"]}).to_parquet(catalog)
    with pytest.raises(OutputPathError, match="is the input --catalog"):
        check_outputs({"--out": str(catalog)}, {"--catalog": str(catalog)})
    assert pd.read_parquet(catalog)["id_str"].tolist() == ["a"]


def test_an_output_inside_an_input_folder_is_refused(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text("{}")
    with pytest.raises(OutputPathError, match="inside the input --shards"):
        check_outputs({"--out": str(shards / "manifest.json")}, {"--shards": str(shards)})
    with pytest.raises(OutputPathError, match="inside the input --model"):
        check_outputs({"--out": str(shards / "new" / "x.parquet")}, {"--model": str(shards)})


def test_a_symlinked_output_to_an_input_is_refused(tmp_path):
    ids = tmp_path / "ids.csv"
    ids.write_text("id_str\na\n")
    (tmp_path / "link.csv").symlink_to(ids)
    with pytest.raises(OutputPathError, match="is the input"):
        check_outputs({"--out": str(tmp_path / "link.csv")}, {"--labelled-interesting": str(ids)})


def test_a_foreign_existing_file_is_refused_and_ours_replaced(tmp_path):
    foreign = tmp_path / "other_catalog.parquet"
    pd.DataFrame({"id_str": ["a"]}).to_parquet(foreign)
    with pytest.raises(OutputPathError, match="hybridssl did not write"):
        check_outputs({"--out": str(foreign)}, {})
    ours = write_embeddings(tmp_path / "emb.parquet", ["a"], np.ones((1, 2)), pd.DataFrame({"id_str": ["a"]}), {})
    assert written_by_us(ours)
    check_outputs({"--out": str(ours)}, {})  # a re-run replaces its own output
    ranking = tmp_path / "r.csv"
    ranking.write_text("rank,id_str,score\n1,a,0.5\n")
    assert written_by_us(ranking)
    ranking.write_text("id_str\na\n")
    assert not written_by_us(ranking)


def test_folder_outputs_leave_existing_files_to_the_command(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    check_outputs({"--out": str(taken)}, {}, folder_outputs=True)


def test_urls_are_never_outputs_or_checked_inputs(tmp_path):
    check_outputs({"--out": str(tmp_path / "p.parquet")}, {"--shards": "s3://bucket/set"})


def test_an_export_may_go_inside_the_run_folder_it_comes_from(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("mode: hybrid\n")
    check_outputs({"--out": str(run / "export")}, {"checkpoint": str(run)}, folder_outputs=True)
    with pytest.raises(OutputPathError, match="is the input checkpoint"):
        check_outputs({"--out": str(run)}, {"checkpoint": str(run)}, folder_outputs=True)
