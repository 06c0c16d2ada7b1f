"""Clean splits by image content: no downstream-task galaxy is in a pretraining pool.

Ids cannot show this (SDSS objids, GZ2-challenge GalaxyIDs and IAU names are different systems),
so these tests compare pixels with data_prep.galaxies.overlaps.
"""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep.galaxies import overlaps as ov

# merger-task GZ1 objid -> GZ2-challenge GalaxyID of the same galaxy, found by eye (issue 21)
KNOWN = {("mergers", "587739379911360607", "gz2_kaggle", "265483"),
         ("mergers", "588013382191349914", "gz2_kaggle", "293485"),
         ("mergers", "587735697516265583", "gz2_kaggle", "735301")}


def pairs(df: pd.DataFrame) -> set:
    return set(zip(df.task, df.task_id.astype(str), df.pool, df.pool_id.astype(str)))


def test_the_shipped_pools_hold_no_task_galaxy_and_the_removed_ones_are_found_when_put_back():
    """One scan of every task image against each pool with its removed galaxies put back: the
    shipped rows alone give no pair, and all rows give exactly the recorded pairs (the three
    known ones among them), so putting any back would fail the first assertion."""
    removed = pd.read_csv(ov.RECORD, dtype=str)
    task = pd.concat([ov.read_catalog(rel).assign(task=name) for name, rel in ov.TASKS.items()], ignore_index=True)
    task_prints = ov.fingerprints(list(task.path))
    found = set()
    for name, rel in ov.POOLS.items():
        shipped = ov.read_catalog(rel)
        back = removed[removed.pool == name]
        paths = list(shipped.path) + [ov.HERE / rel.split("/")[0] / f for f in back.pool_file]
        score = ov.pool_scores(task_prints, paths)
        t, _, _ = ov.overlapping_pairs(score[:, :len(shipped)])
        assert not len(t), f"{name} holds task galaxies {sorted(set(task.id_str[t]))}"
        ids = list(shipped.id_str) + list(back.pool_id)
        t, p, _ = ov.overlapping_pairs(score)
        found |= {(task.task[i], task.id_str[i], name, ids[j]) for i, j in zip(t, p)}
    assert KNOWN <= found
    assert found == pairs(removed)


def test_a_recropped_copy_is_found_among_look_alikes(tmp_path):
    """The crops differ between catalogs: a task galaxy's centre 80 %, enlarged back to 96 px,
    hidden among 200 pool galaxies, is found and nothing else is."""
    task = ov.read_catalog(ov.TASKS["mergers"]).iloc[[0]]
    pool = ov.read_catalog(ov.POOLS["gz2_kaggle"]).head(200)
    with Image.open(task.path.iloc[0]) as im:
        im.crop((10, 10, 86, 86)).resize((96, 96), Image.BICUBIC).save(tmp_path / "copy.jpg", quality=85)
    copy = pd.DataFrame({"id_str": ["copy"], "file_loc": ["copy.jpg"], "path": [tmp_path / "copy.jpg"]})
    pool = pd.concat([pool, copy], ignore_index=True)
    found = ov.find_overlaps({"mergers": task}, {"pool": pool})
    assert pairs(found) == {("mergers", task.id_str.iloc[0], "pool", "copy")}


def test_the_check_exits_1_listing_the_pairs_while_any_remain(monkeypatch, capsys):
    row = pd.DataFrame([("mergers", "1", "images/1.jpg", "gz2_kaggle", "2", "images/2.jpg", 0.99, 0.2)],
                       columns=ov.RECORD_COLUMNS)
    monkeypatch.setattr(ov, "shipped_overlaps", lambda: row)
    assert ov.main([]) == 1 and "gz2_kaggle" in capsys.readouterr().out
    monkeypatch.setattr(ov, "shipped_overlaps", lambda: row.iloc[:0])
    assert ov.main([]) == 0 and "no task galaxy" in capsys.readouterr().out


def test_a_pool_too_small_for_the_gap_is_refused():
    with pytest.raises(ValueError, match="too small"):
        ov.overlapping_pairs(np.ones((2, ov.KTH - 1)))
