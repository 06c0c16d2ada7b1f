"""Choose the benchmark's finetune schedule on validation galaxies inside a task's train split.

    python -m benchmarks.finetune_schedule SHARDS OUT.jsonl --backbone NAME=EXPORT ... [--draws 0 1 2]

Each draw holds out a class-balanced validation set from the train split (``--val`` galaxies) and
finetunes on the rest with the benchmark's own protocol (``hybridssl/evaluate/finetune.py``), one
line per (draw, backbone, schedule) with ROC AUC and accuracy on the validation galaxies. The test
split is never read. The schedules are the candidates below, each a change of the benchmark's base.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from omegaconf import OmegaConf

from hybridssl.config import config_dir
from hybridssl.data import read_meta
from hybridssl.evaluate.finetune import FinetuneConfig, finetune

# (name, overrides of configs/benchmark/base.yaml's finetune section)
SCHEDULES = [("10ep lr5e-4 b64", {}),
             ("10ep lr5e-4 b16", {"batch_size": 16}),
             ("30ep lr5e-4 b16", {"epochs": 30, "batch_size": 16}),
             ("30ep lr2e-3 b16", {"epochs": 30, "batch_size": 16, "lr": 2e-3}),
             ("30ep lr1e-4 b16", {"epochs": 30, "batch_size": 16, "lr": 1e-4}),
             ("60ep lr5e-4 b32", {"epochs": 60, "batch_size": 32})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("shards")
    ap.add_argument("out")
    ap.add_argument("--backbone", action="append", required=True, metavar="NAME=EXPORT")
    ap.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val", type=int, default=34, help="validation galaxies per draw (from the train split)")
    ap.add_argument("--schedules", nargs="+", help="names of SCHEDULES to run (default all)")
    ap.add_argument("--label-column", default="ring")
    args = ap.parse_args()
    base = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(FinetuneConfig),
                                               OmegaConf.load(config_dir() / "benchmark" / "base.yaml").finetune))
    meta = read_meta(args.shards)
    train = np.array([i for i, m in enumerate(meta) if m["split"] == "train"])
    label_of = {m["id_str"]: int(m[args.label_column]) for m in meta}
    y = np.array([label_of[meta[i]["id_str"]] for i in train])
    for draw in args.draws:
        fit, val = train_test_split(train, test_size=args.val, stratify=y, random_state=draw)
        truth = np.array([label_of[meta[i]["id_str"]] for i in val])
        for name, export in (b.split("=", 1) for b in args.backbone):
            for schedule, change in SCHEDULES:
                if args.schedules and schedule not in args.schedules:
                    continue
                t0 = time.time()
                probs, info = finetune(export, args.shards, np.sort(fit), np.sort(val), label_of,
                                       replace(base, **change), 2, "minimal", seed=draw)
                row = {"draw": draw, "backbone": name, "schedule": schedule, "n_fit": len(fit), "n_val": len(val),
                       "auc": roc_auc_score(truth, probs[:, 1]), "accuracy": accuracy_score(truth, probs.argmax(1)),
                       "steps": info["steps"], "seconds": round(time.time() - t0)}
                print(json.dumps(row), flush=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
