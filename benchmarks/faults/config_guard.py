"""Faults in what a user hands the training side (issue 15): out-of-range values, a YAML alias
bomb, `--out` paths that are files, tampered export folders. Each must end in one clear line."""
from __future__ import annotations

import json
import shutil

import torch

from benchmarks.faults.data import labelled_shards
from benchmarks.faults.harness import Ctx, Row, refused_naming
from benchmarks.faults.training import exported_run, pretrain_args, trained_run

RANGE_CASES = [("model.head_dropout=1.0", "[0, 1)"), ("optim.base_lr=-0.001", "(0, inf)"),
               ("optim.betas=[0.9,1.0]", "[0, 1)"), ("data.prefetch_factor=0", "[1, inf)"),
               ("trainer.keep_checkpoints=0", "[1, inf) or -1"), ("model.projection_dim=0", "[1, inf)")]


def out_of_range(ctx: Ctx) -> list[Row]:
    """Each value is refused before Lightning is imported, so each case costs a config load."""
    run = ctx.work / "runs" / "range"
    rows = []
    for override, interval in RANGE_CASES[:3] if ctx.quick else RANGE_CASES:
        p = ctx.cli("pretrain", *pretrain_args(ctx, run, 2, None, override), timeout=300)
        ok, detail = refused_naming(p, override.split("=")[0], interval)
        rows.append(Row(f"config out of range: {override}", 1, int(ok), 0, detail, seconds=p.seconds))
    export = exported_run(ctx)
    p = ctx.cli("embed", "--model", export, "--shards", labelled_shards(ctx), "--batch-size", "0",
                "--out", ctx.work / "apply" / "zero.parquet", timeout=300)
    ok, detail = refused_naming(p, "--batch-size", ">= 1")
    rows.append(Row("apply command with --batch-size 0", 1, int(ok), 0, detail, seconds=p.seconds))
    return rows


def alias_bomb(ctx: Ctx) -> list[Row]:
    """A billion-laughs YAML as the pretrain config: refused in one line, not a hang."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = ctx.path("configs", "bomb.yaml")
    bomb.write_text("\n".join(lines) + "\n")
    p = ctx.cli("pretrain", "--config", bomb, timeout=120)
    ok, detail = refused_naming(p, "bomb.yaml", "YAML nodes")
    return [Row("YAML alias bomb as --config", 1, int(ok), 0, detail, seconds=p.seconds)]


def out_is_a_file(ctx: Ctx) -> list[Row]:
    taken = ctx.path("out-files", "taken")
    taken.write_text("a file, not a directory\n")
    rows = []
    for name, args in (("pretrain out_dir", ["pretrain", *pretrain_args(ctx, taken, 2)]),
                       ("export --out", ["export", trained_run(ctx), "--out", taken])):
        p = ctx.cli(*args, timeout=300)
        ok, detail = refused_naming(p, "is a file, not a directory")
        ok = ok and taken.read_text() == "a file, not a directory\n"
        rows.append(Row(f"{name} is an existing file", 1, int(ok), 0, detail, seconds=p.seconds))
    return rows



def _tamper(ctx: Ctx, name: str, edit) -> object:
    copy = ctx.work / "export" / f"tampered-{name}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(exported_run(ctx), copy)
    edit(copy)
    return copy


def _set(field: str, value):
    def edit(d):
        info = json.loads((d / "config.json").read_text())
        info[field] = value if field != "head" else {**info["head"], "file": value}
        (d / "config.json").write_text(json.dumps(info))
    return edit


def _pickle(d):
    torch.save({"w": torch.zeros(2)}, d / "model.safetensors")


def _reshape(d):
    from safetensors.torch import load_file, save_file
    weights = load_file(str(d / "model.safetensors"))
    key = next(k for k, v in weights.items() if v.ndim == 4)
    save_file({**weights, key: torch.zeros(1, 1, 1, 1)}, str(d / "model.safetensors"))


def tampered_export(ctx: Ctx) -> list[Row]:
    """`hybridssl predict` on altered copies of a real export (the trained run is hybrid: it has a head)."""
    cases = [("architecture hf-hub:", _set("architecture", "hf-hub:timm/resnet18.a1_in1k"), "not a plain timm"),
             ("architecture local-dir:", _set("architecture", "local-dir:/tmp"), "not a plain timm"),
             ("head file outside the folder", _set("head", "../../outside.safetensors"), "file name inside"),
             ("pickle as model.safetensors", _pickle, "model.safetensors: not weights"),
             ("wrong shapes in model.safetensors", _reshape, "size mismatch")]
    rows = []
    for name, edit, says in cases:
        d = _tamper(ctx, name.split()[0] + str(len(rows)), edit)
        p = ctx.cli("predict", "--model", d, "--shards", labelled_shards(ctx),
                    "--out", ctx.work / "apply" / f"tampered{len(rows)}.parquet", timeout=300)
        ok, detail = refused_naming(p, says)
        rows.append(Row(f"tampered export: {name}", 1, int(ok), 0, detail, seconds=p.seconds))
    return rows
