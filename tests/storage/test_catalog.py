"""Catalog reading and vote mapping, on the real GZ DECaLS and GZ2 tables and on bad catalogs."""
import numpy as np
import pandas as pd
import pytest
from testpaths import FIXTURES
from factories import fake_votes

from hybridssl.storage.catalog import CatalogError, find_vote_columns, load_rows, read_catalog
from hybridssl.schema import load_schema

TABLES = FIXTURES / "gz_vote_tables"
DR5 = TABLES / "gz_decals" / "gz_decals_volunteers_5.csv"
DR12 = TABLES / "gz_decals" / "gz_decals_volunteers_1_and_2.csv"
GZ2 = TABLES / "gz2" / "gz2_hart16.csv"
SCHEMA = load_schema("gz_evo_v0.1")


def _load(path, **kw):
    opts = dict(id_column="id_str", path_column="file_loc", labelled=True)
    return load_rows(path, SCHEMA, **{**opts, **kw})


def test_gz_decals_dr5_counts_map_onto_dr5_columns():
    raw = pd.read_csv(DR5)
    rows, rejected, vc = _load(DR5, id_column="iauname", path_column="png_loc", campaign="dr5")
    assert rejected == []
    assert sorted(vc.mapping.values()) == sorted(SCHEMA.campaign_columns("dr5"))
    assert vc.mapping["bar_strong"] == "bar-dr5_strong" and vc.unknown == []
    assert "bar_strong_fraction" in vc.ignored and "bar_total-votes" in vc.ignored
    for plain, col in vc.mapping.items():
        np.testing.assert_array_equal(rows.votes[:, SCHEMA.column_index[col]], raw[plain].to_numpy())
    others = [SCHEMA.column_index[c] for c in SCHEMA.label_cols if c not in SCHEMA.campaign_columns("dr5")]
    assert not rows.votes[:, others].any()
    assert rows.ids == list(raw["iauname"]) and rows.campaigns == ["dr5"] * 6
    assert all(p.endswith(loc) and p.startswith("/") for p, loc in zip(rows.paths, raw["png_loc"]))


def test_gz_decals_dr12_table_maps_its_own_answers(tmp_path):
    raw = pd.read_csv(DR12).copy()  # one block: adding a column to a fragmented frame warns
    raw["file_loc"] = str(DR5.resolve())  # any existing file (absolute): this test is about votes
    raw.to_csv(tmp_path / "dr12.csv", index=False)
    rows, rejected, vc = load_rows(tmp_path / "dr12.csv", SCHEMA, id_column="iauname", path_column="file_loc",
                                   labelled=True, campaign="dr12")
    assert rejected == [] and vc.unknown == [] and len(vc.mapping) == len(SCHEMA.campaign_columns("dr12"))
    got = rows.votes[:, SCHEMA.column_index["merging-dr12_tidal-debris"]]
    np.testing.assert_array_equal(got, raw["merging_tidal-debris"].to_numpy())
    assert rows.paths == [str(DR5.resolve())] * 6


def test_wrong_campaign_names_unknown_columns_and_rejects_rows_with_votes_there(tmp_path):
    raw = pd.read_csv(DR12).copy()  # one block: adding a column to a fragmented frame warns
    raw["file_loc"] = "img.png"
    (tmp_path / "img.png").write_bytes(b"x")
    cat = tmp_path / "dr12.csv"
    raw.to_csv(cat, index=False)
    rows, rejected, vc = load_rows(cat, SCHEMA, id_column="iauname", path_column="file_loc",
                                   labelled=True, campaign="dr5")
    assert {"bar_yes", "how-rounded_completely", "merging_neither"} <= set(vc.unknown)
    assert len(rejected) == 6 and all("not an answer of schema" in r.reason for r in rejected)
    assert rejected[0].id_str == raw["iauname"][0]


def test_gz2_hart16_count_columns_map_to_gz2_questions():
    raw = pd.read_csv(GZ2)
    vc = find_vote_columns(raw.columns, SCHEMA, campaign="gz2")
    assert vc.unknown == []
    assert sorted(vc.mapping.values()) == sorted(SCHEMA.campaign_columns("gz2"))
    assert vc.mapping["t03_bar_a06_bar_count"] == "bar-gz2_yes"
    assert vc.mapping["t11_arms_number_a36_more_than_4_count"] == "spiral-arm-count-gz2_more-than-4"
    assert "t08_odd_feature_a19_ring_count" in vc.ignored  # GZ-Evo has no odd-feature question
    assert "t03_bar_a06_bar_weighted_fraction" in vc.ignored
    assert all(c.endswith("_count") for c in vc.mapping)


def test_plain_release_table_without_campaign_is_a_clear_error():
    with pytest.raises(CatalogError, match="--campaign") as e:
        _load(DR5, id_column="iauname", path_column="png_loc")
    assert "bar_strong" in str(e.value)


def _evo_catalog(tmp_path, n=6):
    """A galaxy-datasets style catalog: id_str, file_loc, campaign, schema vote columns."""
    rng = np.random.default_rng(0)
    (tmp_path / "img.jpg").write_bytes(b"x")
    camps = ["dr5", "gz2", "hubble", "dr5", "candels", "dr8"][:n]
    votes = np.stack([fake_votes(rng, SCHEMA, c) for c in camps])
    df = pd.DataFrame(votes, columns=SCHEMA.label_cols)
    df.insert(0, "campaign", camps)
    df.insert(0, "file_loc", "img.jpg")
    df.insert(0, "id_str", [f"J{i}.5+1" for i in range(n)])
    return df, votes


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_galaxy_datasets_catalog_csv_and_parquet_read_the_same(tmp_path, fmt):
    df, votes = _evo_catalog(tmp_path)
    for c in SCHEMA.campaign_columns("dr12"):  # a campaign never asked: missing, not zero
        df[c] = np.nan
    path = tmp_path / f"cat.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
    rows, rejected, _ = _load(path)
    assert rejected == []
    np.testing.assert_array_equal(rows.votes, votes)
    assert rows.campaigns == list(df["campaign"]) and rows.ids == list(df["id_str"])


def test_question_left_empty_is_unasked_but_partly_empty_is_rejected(tmp_path):
    df, votes = _evo_catalog(tmp_path, 2)
    bar = [c for c in SCHEMA.campaign_columns("dr5") if c.startswith("bar-dr5_")]
    df.loc[0, bar] = np.nan  # the whole question: not asked
    df.loc[1, bar[0]] = np.nan  # one answer of an asked question: corrupt
    df.to_parquet(tmp_path / "cat.parquet")
    rows, rejected, _ = _load(tmp_path / "cat.parquet")
    assert [r.row for r in rejected] == [1] and "missing vote nan in column 'bar-dr5_strong'" in rejected[0].reason
    expected = votes[0].copy()
    expected[[SCHEMA.column_index[c] for c in bar]] = 0
    np.testing.assert_array_equal(rows.votes[0], expected)


def test_campaign_inferred_from_votes_when_no_column(tmp_path):
    df, _ = _evo_catalog(tmp_path)
    path = tmp_path / "cat.parquet"
    df.drop(columns=["campaign"]).to_parquet(path)
    rows, _, _ = _load(path)
    assert rows.campaigns == list(df["campaign"])


@pytest.mark.parametrize("block", [50_000, 2])  # rows checked in blocks: numbers stay catalog-wide
def test_bad_rows_are_rejected_by_row_id_and_reason(tmp_path, monkeypatch, block):
    monkeypatch.setattr("hybridssl.storage.catalog.ROW_BLOCK", block)
    df, _ = _evo_catalog(tmp_path, 6)
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)  # row 6 duplicates row 0
    df["bar-dr5_maybe"] = 0.0
    df.loc[0, "bar-dr5_strong"] = np.nan  # a NaN inside an asked campaign
    df.loc[1, "smooth-or-featured-gz2_smooth"] = -2
    df.loc[2, "smooth-or-featured-hubble_smooth"] = 2.5
    df.loc[3, "bar-dr5_maybe"] = 4.0
    df.loc[4, "file_loc"] = "missing.jpg"
    df.loc[5, "id_str"] = ""
    path = tmp_path / "bad.parquet"
    df.to_parquet(path)
    rows, rejected, vc = _load(path)
    reasons = {r.row: (r.id_str, r.reason) for r in rejected}
    assert set(reasons) == {0, 1, 2, 3, 4, 5, 6} and rows.ids == []
    assert "missing vote" in reasons[0][1] and "bar-dr5_strong" in reasons[0][1]
    assert reasons[1] == ("J1.5+1", "negative vote -2 in column 'smooth-or-featured-gz2_smooth'")
    assert "non-integer vote 2.5" in reasons[2][1]
    assert "bar-dr5_maybe" in reasons[3][1] and vc.unknown == ["bar-dr5_maybe"]
    assert "not found" in reasons[4][1] and "missing.jpg" in reasons[4][1]
    assert reasons[5][1] == "empty id_str"
    assert reasons[6] == ("J0.5+1", "duplicate id_str (first at row 0)")


def test_non_numeric_and_infinite_votes_rejected(tmp_path):
    df, _ = _evo_catalog(tmp_path, 3)
    df["bar-dr5_weak"] = df["bar-dr5_weak"].astype(object)
    df.loc[0, "bar-dr5_weak"] = "lots"
    df.loc[1, "bar-dr5_no"] = np.inf
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    rows, rejected, _ = _load(path)
    assert [r.row for r in rejected] == [0, 1] and rows.ids == ["J2.5+1"]
    assert "non-numeric vote 'lots'" in rejected[0].reason and "infinite vote" in rejected[1].reason


def test_unlabelled_rows_need_no_votes_and_keep_columns(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    pd.DataFrame({"id_str": ["a", "b"], "file_loc": ["a.jpg", "a.jpg"], "ring": [1, 0],
                  "split": ["train", None]}).to_parquet(tmp_path / "rings.parquet")
    rows, rejected, _ = _load(tmp_path / "rings.parquet", labelled=False, keep_columns=("ring", "split"))
    assert rows.votes is None and rows.campaigns == [None, None] and rejected == []
    assert rows.keep == {"ring": [1, 0], "split": ["train", None]}
    assert all(type(v) is int for v in rows.keep["ring"])  # plain JSON values, not numpy


def test_csv_ids_stay_text(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "c.csv").write_text("id_str,file_loc\n007,a.jpg\n1.50,a.jpg\n")
    rows, _, _ = _load(tmp_path / "c.csv", labelled=False)
    assert rows.ids == ["007", "1.50"]


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    ("id_str,file_loc\n", "no rows"),
    ("name,file_loc\nx,y\n", "no id column 'id_str'"),
])
def test_unusable_csv_catalogs_raise_catalog_error(tmp_path, content, match):
    path = tmp_path / "cat.csv"
    path.write_text(content)
    with pytest.raises(CatalogError, match=match) as e:
        _load(path)
    assert "cat.csv" in str(e.value)


def test_unreadable_parquet_and_missing_file(tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really \x00\xff" * 8)
    with pytest.raises(CatalogError, match="junk.parquet"):
        read_catalog(junk)
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(tmp_path / "nope.parquet")
    with pytest.raises(CatalogError, match="keep column 'ring'"):
        _load(DR5, id_column="iauname", path_column="png_loc", campaign="dr5", keep_columns=("ring",))
