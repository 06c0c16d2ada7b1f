"""Shard-set paths and manifests (issue 24): local folders with a colon, a manifest that is a folder."""
import pytest

from hybridssl.storage.shards import ShardError, is_local, read_manifest


def test_an_existing_folder_with_a_colon_is_local(tmp_path):
    folder = tmp_path / "dr8:v2"
    folder.mkdir()
    assert is_local(str(folder))
    assert not is_local("s3://bucket/set") and not is_local("pipe:curl x")


def test_a_relative_colon_folder_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not is_local("dr8:v2")  # no such folder: a URL scheme, refused later as unknown
    (tmp_path / "dr8:v2").mkdir()
    assert is_local("dr8:v2")


def test_a_manifest_that_is_a_folder_is_one_shard_error(tmp_path):
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(ShardError, match="is a folder"):
        read_manifest(tmp_path)
