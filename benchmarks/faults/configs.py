"""Bad configs: every mistake ends in one error line naming the key (and the valid choices)."""
from __future__ import annotations

from benchmarks.faults.data import prepare_args
from benchmarks.faults.harness import Ctx, Row, write_catalog
from benchmarks.faults.training import pretrain_args, trained_run
from hybridssl.config import config_dir


def _case(ctx: Ctx, name: str, args: list, must_name: list[str]) -> Row:
    p = ctx.cli(*args, timeout=300)
    missing = [w for w in must_name if w not in p.err]
    ok = p.rc not in (0, None) and not p.traceback and not missing
    return Row(f"bad config: {name}", 1, int(ok), 0,
               f"rc={p.rc}: {p.message()}" + (f" [does not name {missing}]" if missing else "")
               + (" [Python traceback]" if p.traceback else ""), seconds=p.seconds)


def bad_configs(ctx: Ctx) -> list[Row]:
    run = ctx.work / "runs" / "bad-config"
    pre = lambda *extra: ["pretrain", *pretrain_args(ctx, run, 2, None, *extra)]  # noqa: E731
    cases = [("unknown key", pre("trainer.max_stepz=3"), ["max_stepz", "max_steps"]),
             ("wrong type", pre("trainer.max_steps=many"), ["max_steps"]),
             ("crop larger than the shards' image size", pre("augment.crop_size=48", "augment.resize_size=48"),
              ["crop_size", "32"])]
    if not ctx.quick:  # each costs a Lightning import (~10 s of CPU); the quick form keeps one per kind
        cases += [("unknown mode", pre("mode=hybird"), ["mode", "hybrid", "byol", "supervised", "scratch"]),
                  ("crop larger than augment.resize_size", pre("augment.crop_size=48"), ["crop_size", "resize_size"])]
    rows = [_case(ctx, *c) for c in cases]
    rows.append(_case(ctx, "label budget larger than the train split", *_budget_args(ctx)))
    return rows


def _budget_args(ctx: Ctx) -> tuple[list, list[str]]:
    """`hybridssl benchmark` on a 40-galaxy ring task (30 train) asked for a 1000-label budget on its fixed split (the repeated design checks its own budgets)."""
    n = 40
    catalog = write_catalog(ctx.work / "task-catalog", n, seed=4, labelled=False,
                            extra={"ring": [i % 2 for i in range(n)], "split": ["train"] * 30 + ["test"] * 10})
    task = ctx.work / "shards" / "task"
    prep = ctx.cli(*prepare_args(catalog, task, 10, 1, "--unlabelled", "--keep-columns", "ring,split"), timeout=300)
    export = ctx.work / "export" / "baseline"
    exp = ctx.cli("export", trained_run(ctx), "--out", export, timeout=300)
    if prep.rc != 0 or exp.rc != 0:
        raise RuntimeError(f"could not make the benchmark inputs: {prep.tail()} {exp.tail()}")
    return (["benchmark", "--config", config_dir() / "benchmark" / "demo.yaml", f"out_dir={ctx.work / 'bench'}",
             f"task={task}", f"backbones.baseline={export}", "budgets=[10,1000]", "repeated.draws=0"],
            ["budgets", "1000", "30"])
