"""``hybridssl pretrain --config FILE [key=value ...]``."""
from __future__ import annotations

import argparse
import sys

from hybridssl.config import load_config, resolve_config_path, to_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="pretrain YAML (configs/pretrain/<name>.yaml) or a shipped name: demo, gz_evo")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. mode=byol trainer.max_steps=20 out_dir=runs/x "
                             "resume=auto 'data.labelled=[shards/labelled]'; augment=PRESET swaps the "
                             "augmentation recipe (configs/augment/) and keeps the run's sizes")
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")


def run(args) -> int:
    from hybridssl.augment.config import recipe_overrides
    from hybridssl.train.config import PretrainConfig

    overrides = [o for arg in args.overrides
                 for o in (recipe_overrides(arg.partition("=")[2]) if arg.startswith("augment=") else [arg])]
    # the config is checked before Lightning is imported, so a typo fails in a second, not 15
    cfg = load_config(PretrainConfig, resolve_config_path(args.config, "pretrain"), overrides)
    if args.print_config:
        print(to_yaml(cfg))
        return 0
    from hybridssl.storage.outputs import check_outputs
    check_outputs({"out_dir": cfg.out_dir}, {f"data.{key}[{i}]": d for key in ("labelled", "unlabelled")
                                             for i, d in enumerate(getattr(cfg.data, key))}, folder_outputs=True)
    from hybridssl.train.run import pretrain

    final = pretrain(cfg)
    if final is None:
        print("hybridssl pretrain: interrupted; continue with resume=auto", file=sys.stderr)
        return 130
    return 0
