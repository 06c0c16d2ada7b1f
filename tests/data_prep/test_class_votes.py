"""Class catalogs as pseudo-votes: the shipped GZ1 -> gz2 map, bad maps, and `prepare` with one."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from testpaths import REPO

from hybridssl.storage.catalog import CatalogError
from data_prep.class_votes import load_class_map
from hybridssl.cli import main
from hybridssl.schema import load_schema
from hybridssl.storage.shards import decode_votes, read_manifest
from test_prepare import read_samples

SCHEMA = load_schema("gz_evo_v0.1")
GZ1 = REPO / "data_prep" / "galaxies" / "sdss_gz1"
FEATURED = "smooth-or-featured-gz2_featured-or-disk"


def votes_of(class_value: str, name="gz1_to_gz2") -> dict[str, float]:
    cmap = load_class_map(name, SCHEMA)
    v = cmap.votes(pd.Series([class_value], name="gz1_class_name"), SCHEMA, {}, "test")[0]
    return {SCHEMA.label_cols[i]: float(v[i]) for i in np.flatnonzero(v)}


@pytest.mark.parametrize("value, answers", [
    ("elliptical", ["smooth-or-featured-gz2_smooth"]),
    ("spiral-clockwise", [FEATURED, "disk-edge-on-gz2_no", "has-spiral-arms-gz2_yes"]),
    ("spiral-anticlockwise", [FEATURED, "disk-edge-on-gz2_no", "has-spiral-arms-gz2_yes"]),
    ("edge-on", [FEATURED]),  # GZ1's "edge-on or unclear direction": featured, nothing about edge-on
    ("merger", ["something-odd-gz2_yes"]),
    ("dont-know", []),
])
def test_every_gz1_class_maps_to_its_gz2_answers(value, answers):
    n = load_class_map("gz1_to_gz2", SCHEMA).pseudo_votes
    assert votes_of(value) == {a: n for a in answers}


def test_the_map_covers_every_class_of_the_shipped_gz1_catalog():
    names = set(pd.read_csv(GZ1 / "catalog.csv").gz1_class_name)
    assert names == set(load_class_map("gz1_to_gz2", SCHEMA).classes)


def write_map(tmp_path, classes: dict, pseudo_votes=5):
    path = tmp_path / "map.yaml"
    path.write_text(json.dumps({"pseudo_votes": pseudo_votes, "classes": classes}))
    return str(path)


def test_unknown_class_value_is_an_error_naming_it():
    with pytest.raises(CatalogError, match=r"'barred' \(first at row 0\).*mapped values"):
        votes_of("barred")


def test_answer_not_in_the_schema_is_an_error_naming_class_and_answer(tmp_path):
    path = write_map(tmp_path, {"ring": ["ring-gz2_yes"]})
    with pytest.raises(CatalogError, match=r"class 'ring': answer 'ring-gz2_yes' is not a column of schema gz_evo"):
        load_class_map(path, SCHEMA)


def test_answer_whose_parent_is_not_voted_breaks_the_tree(tmp_path):
    path = write_map(tmp_path, {"spiral": ["has-spiral-arms-gz2_yes"]})
    with pytest.raises(CatalogError, match=rf"class 'spiral': answer 'has-spiral-arms-gz2_yes' breaks the "
                                           rf"decision tree.*'{FEATURED}'"):
        load_class_map(path, SCHEMA)


def test_answers_from_two_campaigns_are_refused(tmp_path):
    path = write_map(tmp_path, {"e": ["smooth-or-featured-gz2_smooth"], "f": ["smooth-or-featured-dr5_smooth"]})
    with pytest.raises(CatalogError, match=r"span campaigns \['dr5', 'gz2'\]"):
        load_class_map(path, SCHEMA)


@pytest.mark.parametrize("votes", [0, 2.5, "ten"])
def test_pseudo_votes_must_be_a_positive_integer(tmp_path, votes):
    with pytest.raises(CatalogError, match="pseudo_votes must be an integer >= 1"):
        load_class_map(write_map(tmp_path, {"e": []}, votes), SCHEMA)


def gz1_catalog(tmp_path, names: list[str]) -> str:
    """A few real GZ1 rows (one per wanted class, in order) beside their images."""
    cat = pd.read_csv(GZ1 / "catalog.csv", dtype=str)
    rows = pd.concat([cat[cat.gz1_class_name == n].head(1) for n in names])
    (tmp_path / "images").mkdir()
    for f in rows.file_loc:
        shutil.copy(GZ1 / f, tmp_path / f)
    rows.to_csv(tmp_path / "gz1.csv", index=False)
    return str(tmp_path / "gz1.csv")


def test_prepare_shards_a_class_catalog_as_pseudo_votes(tmp_path, capsys):
    names = ["elliptical", "spiral-clockwise", "edge-on", "merger", "dont-know"]
    catalog, out = gz1_catalog(tmp_path, names), tmp_path / "shards"
    rc = main(["prepare", "--catalog", catalog, "--out", str(out), "--class-column", "gz1_class_name",
               "--class-votes", "gz1_to_gz2", "--image-size", "32", "--workers", "1"])
    assert rc == 0, capsys.readouterr().err
    m = read_manifest(out)
    assert m["labelled"] and m["n_samples"] == 5
    assert m["votes_are"] == "pseudo" and m["class_column"] == "gz1_class_name"
    ids = pd.read_csv(catalog, dtype=str).set_index("id_str").gz1_class_name
    for id_str, s in read_samples(out).items():
        meta = json.loads(s["meta.json"])
        votes = decode_votes(s["votes.npy"])
        expected = votes_of(ids[id_str])
        assert {SCHEMA.label_cols[i]: float(votes[i]) for i in np.flatnonzero(votes)} == expected
        assert meta["campaign"] == "gz2"


def test_prepare_gives_gz1_edge_on_or_unclear_galaxies_featured_votes_only(tmp_path, capsys):
    """GZ1's fourth class also held face-on spirals of unclear winding, so its shards must not
    claim "edge-on": featured-or-disk gets the pseudo-votes, every edge-on answer gets none."""
    catalog, out = gz1_catalog(tmp_path, ["edge-on", "spiral-clockwise"]), tmp_path / "shards"
    rc = main(["prepare", "--catalog", catalog, "--out", str(out), "--class-column", "gz1_class_name",
               "--class-votes", "gz1_to_gz2", "--image-size", "32", "--workers", "1"])
    assert rc == 0, capsys.readouterr().err
    n = read_manifest(out)["pseudo_votes"]
    classes = pd.read_csv(catalog, dtype=str).set_index("id_str").gz1_class_name
    edge_on = [SCHEMA.column_index[c] for c in ("disk-edge-on-gz2_yes", "disk-edge-on-gz2_no")]
    votes = {classes[i]: decode_votes(s["votes.npy"]) for i, s in read_samples(out).items()}
    assert votes["edge-on"][SCHEMA.column_index[FEATURED]] == n > 0
    assert not votes["edge-on"][edge_on].any()
    assert np.count_nonzero(votes["edge-on"]) == 1
    # a clear spiral still says face-on
    assert votes["spiral-clockwise"][SCHEMA.column_index["disk-edge-on-gz2_no"]] == n


def test_prepare_with_an_unmapped_value_fails_with_one_line_naming_it(tmp_path, capsys):
    catalog = gz1_catalog(tmp_path, ["elliptical", "edge-on"])
    df = pd.read_csv(catalog, dtype=str)
    df.loc[1, "gz1_class_name"] = "lenticular"
    df.to_csv(catalog, index=False)
    rc = main(["prepare", "--catalog", catalog, "--out", str(tmp_path / "s"), "--class-column", "gz1_class_name",
               "--class-votes", "gz1_to_gz2", "--image-size", "32", "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "'lenticular' (first at row 1)" in err and "gz1_class_name" in err


def test_class_votes_need_a_class_column(tmp_path, capsys):
    catalog = gz1_catalog(tmp_path, ["elliptical"])
    rc = main(["prepare", "--catalog", catalog, "--out", str(tmp_path / "s"), "--class-votes", "gz1_to_gz2"])
    assert rc != 0 and "'class_column' and 'class_votes' go together" in capsys.readouterr().err
