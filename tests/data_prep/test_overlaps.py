"""Clean splits by image content: no downstream-task galaxy is in a pretraining pool.

Ids cannot show this (SDSS objids, GZ2-challenge GalaxyIDs and IAU names are different systems),
so these tests compare pixels with data_prep.galaxies.overlaps.
"""
import numpy as np
import pytest
import pandas as pd
from PIL import Image

from data_prep.galaxies import overlaps as ov

# merger-task GZ1 objid -> GZ2-challenge GalaxyID of the same galaxy, found by eye (issue 21)
KNOWN = {("mergers", "587739379911360607", "gz2_kaggle", "265483"),
         ("mergers", "588013382191349914", "gz2_kaggle", "293485"),
         ("mergers", "587735697516265583", "gz2_kaggle", "735301")}


def pairs(df: pd.DataFrame) -> set:
    return set(zip(df.task, df.task_id.astype(str), df.pool, df.pool_id.astype(str)))


def test_no_task_galaxy_is_in_a_shipped_pretraining_pool(capsys):
    assert ov.main([]) == 0, capsys.readouterr().out


def test_the_removed_galaxies_are_found_again_when_put_back_in_their_pools():
    removed = pd.read_csv(ov.RECORD, dtype=str)
    pools = {}
    for name, rel in ov.POOLS.items():
        back = removed[removed.pool == name].rename(columns={"pool_id": "id_str", "pool_file": "file_loc"})
        folder = ov.HERE / rel.split("/")[0]
        back = back[["id_str", "file_loc"]].assign(path=[folder / f for f in back.file_loc])
        pools[name] = pd.concat([ov.read_catalog(rel), back], ignore_index=True)
    found = ov.find_overlaps({n: ov.read_catalog(r) for n, r in ov.TASKS.items()}, pools)
    assert KNOWN <= pairs(found)
    assert pairs(found) == pairs(removed)


def test_a_recropped_copy_is_found_among_look_alikes(tmp_path):
    """The crops differ between catalogs: a task galaxy's centre 80 %, enlarged back to 96 px,
    hidden among 200 pool galaxies, is found and nothing else is."""
    task = ov.read_catalog(ov.TASKS["mergers"]).iloc[[0]]
    pool = ov.read_catalog(ov.POOLS["gz2_kaggle"]).head(200)
    with Image.open(task.path.iloc[0]) as im:
        im.crop((10, 10, 86, 86)).resize((96, 96), Image.BICUBIC).save(tmp_path / "copy.jpg", quality=85)
    pool = pd.concat([pool, pd.DataFrame({"id_str": ["copy"], "file_loc": ["copy.jpg"], "path": [tmp_path / "copy.jpg"]})],
                     ignore_index=True)
    found = ov.find_overlaps({"mergers": task}, {"pool": pool})
    assert pairs(found) == {("mergers", task.id_str.iloc[0], "pool", "copy")}


def test_a_pool_too_small_for_the_gap_is_refused():
    with pytest.raises(ValueError, match="too small"):
        ov.overlapping_pairs(np.ones((2, ov.KTH - 1)))
