"""The fixed downstream splits of the shipped real galaxies (output committed; re-run to check).

    python -m data_prep.galaxies.make_splits   # rewrites the three CSVs below, byte for byte

- ``decals_rings_dev/rings_split.csv``: the 234 rings / not rings with ``split`` train (134) or
  test (100), stratified by ``ring`` (test 50 / 50).
- ``sdss_gz1/mergers_task.csv``: every GZ1 merger (115) plus twice as many random non-mergers
  (ellipticals, spirals, edge-ons; never "don't know"), ``merger`` 1/0, ``split`` train / test
  (100 test), stratified by ``merger``. These galaxies are kept out of pretraining entirely.
- ``sdss_gz1/pretrain.csv``: every other GZ1 galaxy with its class, for pretraining (labelled
  through configs/class_votes/gz1_to_gz2.yaml, and unlabelled), less the pool galaxies that
  ``overlaps.csv`` records as showing a downstream-task galaxy (data_prep.galaxies.overlaps).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).parent
SEED = 14          # the issue that introduced these splits
N_TEST = 100
NON_MERGERS_PER_MERGER = 2


def _with_split(df: pd.DataFrame, label: str) -> pd.DataFrame:
    _, test = train_test_split(df.index, test_size=N_TEST, stratify=df[label], random_state=SEED)
    return df.assign(split=np.where(df.index.isin(test), "test", "train"))


def rings() -> pd.DataFrame:
    return _with_split(pd.read_csv(HERE / "decals_rings_dev/rings.csv", dtype=str).astype({"ring": int}), "ring")


def gz1_tasks() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(merger task, pretraining rows): disjoint, together every GZ1 galaxy but those that
    overlaps.csv removed from pretraining (the same galaxy as a task galaxy, found by image)."""
    gz1 = pd.read_csv(HERE / "sdss_gz1/catalog.csv", dtype=str)
    mergers = gz1[gz1.gz1_class_name == "merger"]
    others = gz1[~gz1.gz1_class_name.isin(["merger", "dont-know"])]
    picked = others.sample(n=NON_MERGERS_PER_MERGER * len(mergers), random_state=SEED)
    task = pd.concat([mergers, picked]).sort_index()
    task = _with_split(task.assign(merger=(task.gz1_class_name == "merger").astype(int)), "merger")
    overlaps = pd.read_csv(HERE / "overlaps.csv", dtype=str)
    pretrain = gz1.drop(task.index)
    return task, pretrain[~pretrain.id_str.isin(overlaps.pool_id[overlaps.pool == "gz1_pretrain"])]


def main() -> None:
    task, pretrain = gz1_tasks()
    rings()[["id_str", "file_loc", "ring", "split"]].to_csv(HERE / "decals_rings_dev/rings_split.csv", index=False)
    task[["id_str", "file_loc", "merger", "gz1_class_name", "split"]].to_csv(
        HERE / "sdss_gz1/mergers_task.csv", index=False)
    pretrain[["id_str", "file_loc", "gz1_class_name"]].to_csv(HERE / "sdss_gz1/pretrain.csv", index=False)
    for name, df, label in (("rings", rings(), "ring"), ("mergers", task, "merger")):
        print(name, df.groupby(["split", label]).size().to_dict())
    print("pretrain", len(pretrain), pretrain.gz1_class_name.value_counts().to_dict())


if __name__ == "__main__":
    main()
