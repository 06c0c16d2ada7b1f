"""Which images a model reads (issue 24): float bands of another stretch are another kind."""
import pytest

from hybridssl.data.shardsets import ShardSet, band_kind, image_kind
from hybridssl.storage.shards import ShardError


def shard_set(where, stretch=None, in_chans=3):
    bands = None if stretch is None else {"n_bands": in_chans, "median": [0.0] * in_chans,
                                          "scale": [1.0] * in_chans, "stretch": stretch}
    return ShardSet(where, [f"{where}/shard-000000.tar"], [4], 32, True, in_chans, bands)


def test_band_kind_names_the_stretch():
    assert band_kind(3, None) == "8-bit RGB"
    assert band_kind(5, {"stretch": "linear"}) == "5 float bands, linear stretch"
    assert band_kind(1, {"stretch": "asinh"}) == "1 float band, asinh stretch"


def test_pretraining_refuses_sets_of_two_stretches_naming_both():
    with pytest.raises(ShardError, match=r"'a': '5 float bands, asinh stretch', 'b': '5 float bands, linear stretch'"):
        image_kind([shard_set("a", "asinh", 5), shard_set("b", "linear", 5)])
    assert image_kind([shard_set("a", "asinh", 5), shard_set("c", "asinh", 5)])[0] == 5
