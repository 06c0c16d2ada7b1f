"""``hybridssl <command>``: one entry point; each command lives in the module that does the work.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen
command's module is imported, so ``hybridssl schema`` does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help), in data-flow order
COMMANDS = {
    "schema": ("hybridssl.schema", "summarise a label schema (campaigns, questions, answers)"),
    "demo-data": ("data_prep.synthetic.cli", "generate the synthetic GZ-Evo-like demo dataset"),
    "prepare": ("data_prep.prepare", "write a catalog's images and votes into WebDataset shards"),
    "verify": ("data_prep.verify", "check shards against their manifest; name every bad shard"),
    "augment-preview": ("hybridssl.augment", "save a grid of originals and their two augmented views"),
    "pretrain": ("hybridssl.train", "pretrain a backbone (hybrid | byol | supervised | scratch)"),
    "export": ("hybridssl.export", "export a checkpoint's backbone in timm format (+ Dirichlet head)"),
    "benchmark": ("benchmarks.transfer", "low-label transfer benchmark of exported backbones"),
}


def _parser(command: str | None) -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hybridssl", description="Hybrid BYOL + Dirichlet galaxy pretraining.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:  # import only what will run
            importlib.import_module(module).add_arguments(p)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = _parser(command).parse_args(argv)
    if args.command is None:
        _parser(None).print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    from hybridssl.config import ConfigError
    from hybridssl.schema import SchemaError
    try:
        return int(module.run(args) or 0)
    except (ConfigError, SchemaError, FileNotFoundError) as e:
        print(f"hybridssl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hybridssl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
