"""Issue 24 (reliability, round three): outputs that would destroy inputs, float bands without
signal, loose export configs, loud errors due one line, quiet mistakes due a warning."""
from __future__ import annotations

import hashlib
import json
import shutil
import socket

import cv2
import numpy as np
import pandas as pd
import torch

from benchmarks.faults.data import labelled_catalog, labelled_shards, prepare_args
from benchmarks.faults.harness import Ctx, Row, refused_naming, rejected_text, save_catalog, tmpfs
from benchmarks.faults.training import exported_run, pretrain_args


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs_keep_inputs(ctx: Ctx) -> list[Row]:
    """Each command line names an input (or a file no command wrote) as its output: one line,
    and the file is byte for byte what it was."""
    model, shards, catalog = exported_run(ctx), labelled_shards(ctx), labelled_catalog(ctx)
    picks = ctx.path("outputs", "interesting.csv")
    picks.write_text("id_str\n" + "\n".join(pd.read_parquet(catalog)["id_str"][:3]) + "\n")
    foreign = ctx.path("outputs", "someone_elses.parquet")
    foreign.write_bytes(catalog.read_bytes())
    cases = [
        ("predict --catalog X --out X", ["predict", "--model", model, "--catalog", catalog, "--out", catalog],
         catalog, "is the input --catalog"),
        ("embed --catalog X --out X", ["embed", "--model", model, "--catalog", catalog, "--out", catalog],
         catalog, "is the input --catalog"),
        ("predict --out SHARDS/manifest.json", ["predict", "--model", model, "--shards", shards,
                                                "--out", shards / "manifest.json"],
         shards / "manifest.json", "inside the input --shards"),
        ("predict --out EXPORT/config.json", ["predict", "--model", model, "--shards", shards,
                                              "--out", model / "config.json"], model / "config.json",
         "inside the input --model"),
        ("anomalies --labelled-interesting P --out P",
         ["anomalies", "--embeddings", ctx.work / "outputs" / "none.parquet", "--labelled-interesting", picks,
          "--out", picks], picks, "is the input --labelled-interesting"),
        ("predict --out a parquet hybridssl did not write",
         ["predict", "--model", model, "--shards", shards, "--out", foreign], foreign, "did not write"),
        ("finetune --out inside the shard set", ["finetune", "--model", model, "--shards", shards,
                                                 "--out", shards / "ft"], shards / "manifest.json",
         "inside the input --shards"),
    ]
    rows = []
    for name, args, guarded, words in cases:
        before = _digest(guarded)
        p = ctx.cli(*args, timeout=300)
        kept = _digest(guarded) == before
        ok, detail = refused_naming(p, words)
        rows.append(Row(f"output is an input: {name}", 1, int(ok and kept), int(not kept),
                        f"{detail}; {'input intact' if kept else 'INPUT CHANGED'}", seconds=p.seconds))
    return rows


# -- float bands (--image-format npy) ------------------------------------------------------------
def _fits(path, planes) -> str:
    from astropy.io import fits
    fits.PrimaryHDU(np.asarray(planes, dtype=np.float32)).writeto(path, overwrite=True)
    return path.name


def _npy_prepare(ctx: Ctx, catalog, out, *extra):
    return ctx.cli("prepare", "--catalog", catalog, "--out", out, "--unlabelled", "--image-format", "npy",
                   "--image-size", 16, "--shard-size", 4, "--workers", 1, *extra, timeout=300)


def float_bands(ctx: Ctx) -> list[Row]:
    """A band without coverage, blank FITS, 8- and 16-bit PNGs in one set, two stretches mixed in
    pretraining and between a model and the shards it embeds."""
    root = ctx.work / "bands"
    root.mkdir(parents=True, exist_ok=True)
    rng, rows = np.random.default_rng(7), []
    sky = [rng.normal(100, 5, (2, 16, 16)) for _ in range(4)]
    dead = [_fits(root / f"dead{i}.fits", [s[0], np.zeros((16, 16))]) for i, s in enumerate(sky)]
    catalog = save_catalog(pd.DataFrame({"id_str": [f"d{i}" for i in range(4)], "file_loc": dead}), root / "dead.csv")
    p = _npy_prepare(ctx, catalog, root / "dead-out")
    ok, detail = refused_naming(p, "band 1 has no finite, non-zero pixel")
    rows.append(Row("npy: a band with no coverage in any image", 1, int(ok), 0, detail, seconds=p.seconds))

    files = [_fits(root / f"g{i}.fits", s) for i, s in enumerate(sky)]
    files += [_fits(root / "nan.fits", np.full((2, 16, 16), np.nan)), _fits(root / "zero.fits", np.zeros((2, 16, 16)))]
    ids = [f"g{i}" for i in range(4)] + ["all-nan", "all-zero"]
    catalog = save_catalog(pd.DataFrame({"id_str": ids, "file_loc": files}), root / "blank.csv")
    out = root / "blank-out"
    p = _npy_prepare(ctx, catalog, out)
    rejected = rejected_text(out)
    stored = _stored_npy(out) if p.rc == 0 else {}
    finite = all(np.isfinite(a).all() for a in stored.values())
    ok = p.rc == 0 and sorted(stored) == ids[:4] and finite and rejected.count("no valid pixels") == 2
    rows.append(Row("npy: all-NaN and all-zero FITS", 1, int(ok), len(set(ids[:4]) - set(stored)),
                    f"rc={p.rc}; stored {sorted(stored)}, all finite: {finite}; "
                    f"{rejected.count('no valid pixels')} rejected as 'no valid pixels'"))

    scene = np.clip(rng.normal(0.2, 0.03, (16, 16, 3)) + np.pad(np.full((4, 4, 3), 0.6), ((6, 6), (6, 6), (0, 0))), 0, 1)
    cv2.imwrite(str(root / "s16.png"), (scene * 65535).round().astype(np.uint16))
    cv2.imwrite(str(root / "s8.png"), (scene * 255).round().astype(np.uint8))
    catalog = save_catalog(pd.DataFrame({"id_str": ["s16", "s8"], "file_loc": ["s16.png", "s8.png"]}), root / "depth.csv")
    out = root / "depth-out"
    p = _npy_prepare(ctx, catalog, out)
    stored = _stored_npy(out) if p.rc == 0 else {}
    gap = float(np.abs(stored["s16"].astype(float) - stored["s8"].astype(float)).max()) if len(stored) == 2 else np.inf
    rows.append(Row("npy: 8- and 16-bit PNGs of one scene in one set", 1, int(p.rc == 0 and gap < 0.2), 0,
                    f"rc={p.rc}; largest stored difference {gap:.3g} (a scale apart would be > 1)", seconds=p.seconds))

    sets = {}
    for stretch in ("asinh", "linear"):
        sets[stretch] = root / f"{stretch}-set"
        made = _npy_prepare(ctx, ctx.work / "bands" / "blank.csv", sets[stretch], "--fits-stretch", stretch)
        if made.rc != 0:
            raise RuntimeError(f"prepare --fits-stretch {stretch} failed: {made.tail()}")
    p = ctx.cli("pretrain", *pretrain_args(ctx, ctx.work / "runs" / "stretches", 2, None,
                                           f"data.unlabelled=[{sets['asinh']},{sets['linear']}]", "data.labelled=[]",
                                           "mode=byol", "augment.solarize_p=[0.0,0.0]", "augment.crop_size=16",
                                           "augment.resize_size=16"), timeout=300)
    ok, detail = refused_naming(p, "asinh stretch", "linear stretch")
    rows.append(Row("npy: pretraining on an asinh and a linear set", 1, int(ok), 0, detail, seconds=p.seconds))

    run, model = ctx.work / "runs" / "asinh", ctx.work / "export" / "asinh"
    shutil.rmtree(run, ignore_errors=True)
    made = ctx.cli("pretrain", *pretrain_args(ctx, run, 2, None, f"data.unlabelled=[{sets['asinh']}]",
                                              "data.labelled=[]", "data.batch_size=4", "mode=byol",
                                              "augment.solarize_p=[0.0,0.0]", "augment.crop_size=16",
                                              "augment.resize_size=16"), timeout=600)
    exported = ctx.cli("export", run, "--out", model, timeout=300) if made.rc == 0 else made
    if exported.rc != 0:
        raise RuntimeError(f"could not train and export a model on the asinh set: {exported.tail()}")
    same = ctx.cli("embed", "--model", model, "--shards", sets["asinh"], "--out", root / "asinh.parquet", timeout=300)
    p = ctx.cli("embed", "--model", model, "--shards", sets["linear"], "--out", root / "linear.parquet", timeout=300)
    ok, detail = refused_naming(p, "linear stretch", "the model takes 2 float bands, asinh stretch")
    rows.append(Row("npy: embed a linear set with an asinh-trained model", 1,
                    int(ok and same.rc == 0 and not (root / "linear.parquet").exists()), 0,
                    f"{detail}; its own asinh set: rc={same.rc}" + (f" [{same.message()}]" if same.rc else ""),
                    seconds=same.seconds + p.seconds))
    return rows


def _stored_npy(shard_dir) -> dict:
    from hybridssl.data import IndexedShards
    return {s["id_str"]: s["image"].numpy() for s in IndexedShards(shard_dir)}


# -- export config.json ------------------------------------------------------------------------
def export_config(ctx: Ctx) -> list[Row]:
    """`predict` on copies of a real export with one config.json field edited."""
    def edit(field, value):
        def apply(d):
            info = json.loads((d / "config.json").read_text())
            if field == "task_head":
                (d / "task_head.safetensors").write_bytes(b"")
                info.pop("head", None)
            info[field] = value
            (d / "config.json").write_text(json.dumps(info))
        return apply
    head = {"task": "classification", "label_column": "x", "in_features": 8, "n_outputs": 2, "dropout": 0.0,
            "classes": [0, 1]}

    def wrong_shape(d):
        """A two-class head whose file holds five outputs' weights (a finetune's layout: dropout, linear)."""
        from safetensors.torch import save_file
        info = json.loads((d / "config.json").read_text())
        n = info.pop("head")["in_features"]
        layers = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(n, 5))
        save_file(dict(layers.state_dict()), str(d / "task_head.safetensors"))
        info["task_head"] = {**head, "in_features": n, "file": "task_head.safetensors"}
        (d / "config.json").write_text(json.dumps(info))
    cases = [("task_head.file outside the folder", edit("task_head", {**head, "file": "../../model.safetensors"}),
              "task_head.file"),
             ("image_size \"abc\"", edit("image_size", "abc"), "image_size 'abc'"),
             ("image_size -32", edit("image_size", -32), "image_size -32"),
             ("task_head.n_outputs 0", edit("task_head", {**head, "n_outputs": 0, "file": "task_head.safetensors"}),
              "task_head.n_outputs"),
             ("task head weights of the wrong shape", wrong_shape, "task_head.safetensors: not weights")]
    rows = []
    for i, (name, change, says) in enumerate(cases):
        copy = ctx.work / "export" / f"config{i}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(exported_run(ctx), copy)
        change(copy)
        p = ctx.cli("predict", "--model", copy, "--shards", labelled_shards(ctx),
                    "--out", ctx.work / "apply" / f"config{i}.parquet", timeout=300)
        ok, detail = refused_naming(p, says)
        ok = ok and "blur_kernel" not in p.err
        rows.append(Row(f"export config.json: {name}", 1, int(ok), 0, detail, seconds=p.seconds))
    return rows


# -- loud errors that are due one line ---------------------------------------------------------
def _read_only(path):
    """A read-only tmpfs at ``path`` (mount must be allowed, as for the no-inodes faults)."""
    return tmpfs(path, "ro,size=1m", "for a read-only filesystem")


def _split_shards(ctx: Ctx):
    """The suite's catalog with an integer split column (0/1), prepared with it kept."""
    def make():
        df = pd.read_parquet(labelled_catalog(ctx))
        df["isplit"] = (np.arange(len(df)) % 4 != 0).astype(np.int64)
        catalog = save_catalog(df, labelled_catalog(ctx).parent / "isplit.parquet")
        out = ctx.work / "shards" / "isplit"
        p = ctx.cli(*prepare_args(catalog, out, 40, 1, "--keep-columns", "isplit"), timeout=300)
        if p.rc != 0:
            raise RuntimeError(f"prepare with --keep-columns isplit failed: {p.tail()}")
        return out, int(df["isplit"].sum())
    return ctx.cached("isplit-shards", make)


def loud_errors(ctx: Ctx) -> list[Row]:
    rows, model, shards = [], exported_run(ctx), labelled_shards(ctx)
    out = ctx.work / "loud"
    out.mkdir(parents=True, exist_ok=True)

    p = ctx.cli("prepare", "--catalog", labelled_catalog(ctx), "--out", out / "huge", "--image-size", 100000,
                timeout=300)
    ok, detail = refused_naming(p, "image_size", "100000", "8..4096")
    rows.append(Row("prepare --image-size 100000", 1, int(ok and not (out / "huge").exists()), 0, detail,
                    seconds=p.seconds))

    folder = out / "manifest-folder"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(shards, folder)
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").mkdir()
    p = ctx.cli("predict", "--model", model, "--shards", folder, "--out", out / "mf.parquet", timeout=300)
    ok, detail = refused_naming(p, "manifest.json: is a folder")
    rows.append(Row("a manifest.json that is a folder", 1, int(ok), 0, detail, seconds=p.seconds))

    with _read_only(out / "ro") as ro:
        p = ctx.cli("predict", "--model", model, "--shards", shards, "--out", f"{ro}/preds/", timeout=300)
    ok, detail = refused_naming(p, "Read-only file system")
    rows.append(Row("predict --out DIR/ on a read-only filesystem", 1, int(ok), 0, detail, seconds=p.seconds))

    colon = out / "dr8:v2"
    shutil.rmtree(colon, ignore_errors=True)
    shutil.copytree(shards, colon)
    p = ctx.cli("embed", "--model", model, "--shards", "dr8:v2", "--out", "colon.parquet", timeout=300, cwd=out)
    ok = p.rc == 0 and (out / "colon.parquet").exists()
    rows.append(Row("a local folder named dr8:v2 (relative)", 1, int(ok), 0,
                    f"rc={p.rc}: " + ("read as a folder, colon.parquet written" if ok else p.message()),
                    seconds=p.seconds))

    with socket.socket() as s:  # bound and released: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = ctx.cli("predict", "--model", model, "--shards", f"http://127.0.0.1:{port}/set", "--out", f"{out}/url/",
                timeout=300)
    ok, detail = refused_naming(p, "cannot connect")
    rows.append(Row("an unreachable http host", 1, int(ok and "no such file" not in p.err), 0, detail,
                    seconds=p.seconds))

    split, n_train = _split_shards(ctx)
    ft = out / "ft-isplit"
    shutil.rmtree(ft, ignore_errors=True)
    # key=value on both sides of the flags, an integer split column selected by train_split=1
    p = ctx.cli("finetune", "split_column=isplit", "--model", model, "--shards", split, "train_split=1",
                "--task", "votes", "--out", ft, "--batch-size", 16, "epochs=1", timeout=600)
    summary = json.loads((ft / "config.json").read_text())["finetune"] if p.rc == 0 else {}
    used = summary.get("n_train", 0) + summary.get("n_val", 0)
    rows.append(Row("finetune: integer split column, overrides both sides of flags", 1,
                    int(p.rc == 0 and used == n_train), 0, f"rc={p.rc}: {used} of {n_train} isplit==1 rows used"
                    + (f"; {p.message()}" if p.rc else ""), seconds=p.seconds))
    p = ctx.cli("finetune", "--model", model, "--shards", split, "--task", "votes", "--out", out / "ft-none",
                "split_column=isplit", "train_split=2", timeout=300)
    ok, detail = refused_naming(p, "no row has isplit == '2' (values: ['0', '1'])")
    rows.append(Row("finetune: an integer split value no row has", 1, int(ok), 0, detail, seconds=p.seconds))
    return rows


# -- quiet mistakes that are due a warning or a refusal ----------------------------------------
def quiet_mistakes(ctx: Ctx) -> list[Row]:
    rows = []
    df = pd.read_parquet(labelled_catalog(ctx))
    vote_cols = [c for c in df.columns if c not in ("id_str", "file_loc", "campaign") and df[c].dtype.kind in "fi"]
    df[vote_cols] = 0
    catalog = save_catalog(df, labelled_catalog(ctx).parent / "zero-votes.parquet")
    out = ctx.work / "shards" / "zero-votes"
    p = ctx.cli(*prepare_args(catalog, out, 40, 1), timeout=300)
    warned = "every vote is zero" in p.err
    rows.append(Row("all-zero votes: prepare", 1, int(p.rc == 0 and warned), 0,
                    f"rc={p.rc}; {'warns' if warned else 'does NOT warn'}"))
    p = ctx.cli("pretrain", *pretrain_args(ctx, ctx.work / "runs" / "zero-votes", 1, out), timeout=600)
    warned = "every vote in it is zero" in p.err
    rows.append(Row("all-zero votes: pretraining start", 1, int(p.rc == 0 and warned), 0,
                    f"rc={p.rc}; {'warns' if warned else 'does NOT warn'}" + (f"; {p.message()}" if p.rc else ""),
                    seconds=p.seconds))
    shards = labelled_shards(ctx)
    p = ctx.cli("pretrain", *pretrain_args(ctx, ctx.work / "runs" / "twice", 1, f"{shards},{shards}/"), timeout=300)
    ok, detail = refused_naming(p, "data.labelled lists the shard set", "twice")
    rows.append(Row("the same shard set twice in data.labelled", 1, int(ok), 0, detail, seconds=p.seconds))
    return rows
