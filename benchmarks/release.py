"""Release an exported backbone into the repository: ``weights/<name>/``.

    python -m benchmarks.release EXPORT_DIR --name NAME --run RUN_DIR --results BENCH/results.json \
        --group GROUP [--rows GROUP=LABEL ...] --hardware "2-core CPU, one thread" [--notes TEXT]

Writes ``model.safetensors`` (fp16: half the size, and what a 64 px convnext needs), the Dirichlet
head when the export has one, the export's ``config.json`` unchanged (so
``timm.create_model("local-dir:weights/NAME", pretrained=True)``, ``hybridssl predict/embed/
finetune/benchmark --model weights/NAME`` and Zoobot's finetuner load it as any export), and a
model card ``README.md``: data, recipe, steps, samples seen, hardware, wall time, and the
benchmark's repeated-split table (the released group, ``--rows``, every baseline) with the released
group's paired differences. Refuses a folder it did not write and weights above ``--max-mb``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file, save_file

from hybridssl.evaluate.bootstrap import MEAN
from hybridssl.export.timm_folder import CONFIG_FILE, HEAD_FILE, MODEL_FILE, load_backbone, read_export_info

CARD = "README.md"
# the benchmark's rows every card shows when present (scratch: the random init as a demo run names it)
BASELINES = {"photometric": "photometric baseline (8 numbers)", "colour": "colour baseline (2 colours)",
             "random_init": "random init", "scratch": "random init"}


def _fp16(src: Path, dest: Path, metadata: dict) -> None:
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(src)).items()}
    save_file(tensors, str(dest), metadata=metadata)


def _wall_time(run: Path) -> str:
    """First launch to the newest checkpoint, from the run folder's own records (pauses included)."""
    launches = sorted((run / "launches").glob("*.yaml"))
    ckpts = sorted((run / "checkpoints").glob("step*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not launches or not ckpts:
        return "unknown"
    start = dt.datetime.strptime(launches[0].stem.split("-", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    end = dt.datetime.fromtimestamp(ckpts[-1].stat().st_mtime, dt.timezone.utc)
    return f"{(end - start).total_seconds() / 60:.0f} min ({len(launches)} launch(es), pauses included)"


def card_table(results: dict, group: str, rows: dict[str, str]) -> str:
    """Markdown: mean ROC AUC [95 %] and AUC per budget for ``group``, ``rows`` ({group: label})
    and the baselines of a benchmark's results.json; then ``group`` minus each of them, paired."""
    plain = results["repeated"]["plain"]
    cell = {(r["group"], str(r["budget"])): r for r in plain["scores"]}
    baselines = {g: label for g, label in BASELINES.items() if (g, MEAN) in cell}
    labels = {group: f"{group} (this release)", **rows, **baselines}
    budgets = sorted({int(r["budget"]) for r in plain["scores"] if str(r["budget"]) != MEAN})
    missing = [g for g in labels if (g, MEAN) not in cell]
    if missing:
        raise SystemExit(f"release: no repeated-split scores for {', '.join(missing)} in the results")
    out = ["| features | mean AUC [95 %] | " + " | ".join(f"AUC {b}" for b in budgets) + " |",
           "|---|---:|" + "---:|" * len(budgets)]
    for g, label in sorted(labels.items(), key=lambda kv: -cell[(kv[0], MEAN)]["auc_mean"]):
        m = cell[(g, MEAN)]
        out.append(f"| {label} | {m['auc_mean']:.3f} [{m['auc_lo']:.3f}, {m['auc_hi']:.3f}] | "
                   + " | ".join(f"{cell[(g, str(b))]['auc_mean']:.3f}" for b in budgets) + " |")
    diffs = [d for d in plain["differences"] if str(d["budget"]) == MEAN and group in (d["group"], d["versus"])
             and ({d["group"], d["versus"]} - {group}) <= set(labels)]
    if diffs:
        out += ["", f"Paired differences, {group} minus each (mean AUC over budgets, 95 % interval):", "",
                "| versus | difference [95 %] |", "|---|---:|"]
        shown = set()
        for d in diffs:  # the benchmark stores group - versus; flip where the release is the versus
            sign, other = (1, d["versus"]) if d["group"] == group else (-1, d["group"])
            if other in shown:
                continue
            shown.add(other)
            lo, hi = sorted((sign * d["auc_lo"], sign * d["auc_hi"]))
            out.append(f"| {labels[other]} | {sign * d['auc_difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    return "\n".join(out)


def model_card(name: str, info: dict, run_cfg: dict, run: Path, results: str, hardware: str, notes: str) -> str:
    steps = int(info["checkpoint"]["global_step"])
    batch = int(run_cfg["data"]["batch_size"])
    aug = run_cfg["augment"]
    return f"""# {name}

A {info['architecture']} backbone pretrained by hybridssl in mode **{info['mode']}** on the real galaxies
shipped in `data_prep/galaxies/` (SDSS images of Galaxy Zoo 1 and the Galaxy Zoo 2 challenge; GZ1
classes as gz2 pseudo-votes; every galaxy of the downstream tasks removed from the pools by image
content, `data_prep/galaxies/overlaps.csv`). Credits: Lintott et al. 2008, 2011; Willett et al. 2013;
Walmsley et al. 2022; SDSS.

```python
import timm
model = timm.create_model("local-dir:weights/{name}", pretrained=True)  # features: num_classes=0
```
or `hybridssl predict|embed|finetune --model weights/{name}`, `hybridssl benchmark backbones.x=weights/{name}`.

| | |
|---|---|
| input | {info['image_size']} px RGB, mean {info['mean']}, std {info['std']} |
| steps × batch | {steps} × {batch} = {steps * batch:,} samples seen |
| vote weight (paper's units) | {run_cfg['loss']['supervised_weight']} ({run_cfg['loss']['weighting']}) |
| augmentations | crop {aug['crop_scale']}, colour jitter p {aug['jitter_p']}, greyscale p {aug['greyscale_p']}, blur p {aug['blur_p']}, noise p {aug['noise_p']} |
| optimiser | {run_cfg['optim']['name']}, base lr {run_cfg['optim']['base_lr']} per 256, momentum start {run_cfg['optim']['target_momentum_start']} |
| hardware | {hardware} |
| wall time of the whole run | {_wall_time(run)} |
| weights | fp16 safetensors (fp32 training) |

{notes}

## Benchmark (repeated-split protocol on the shipped rings, with baselines)

{results.strip()}
"""


def release(export: Path, name: str, run: Path, results: str, hardware: str, notes: str = "",
            root: Path = Path("weights"), max_mb: float = 10.0) -> Path:
    """``results``: the card's benchmark section (markdown, e.g. from ``card_table``)."""
    info = read_export_info(export)
    dest = root / name
    if dest.exists() and not (dest / CARD).is_file():
        raise SystemExit(f"release: {dest} exists and is not a hybridssl release; choose another --name")
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta = {"architecture": info["architecture"], "schema": info["schema"], "mode": info["mode"]}
    _fp16(export / MODEL_FILE, tmp / MODEL_FILE, meta)
    if "head" in info:
        _fp16(export / info["head"]["file"], tmp / HEAD_FILE, meta)
    shutil.copy(export / CONFIG_FILE, tmp / CONFIG_FILE)
    size = sum(p.stat().st_size for p in tmp.iterdir()) / 2**20
    if size > max_mb:
        shutil.rmtree(tmp)
        raise SystemExit(f"release: {size:.1f} MB is over --max-mb {max_mb}")
    run_cfg = yaml.safe_load((run / "config.yaml").read_text())
    (tmp / CARD).write_text(model_card(name, info, run_cfg, run, results, hardware, notes))
    load_backbone(tmp)  # the release loads as an export before it replaces anything
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--run", type=Path, required=True, help="the pretraining run folder (config.yaml, launches/)")
    p.add_argument("--results", type=Path, required=True, help="the rings benchmark's results.json")
    p.add_argument("--group", required=True, help="the released backbone's row in the results")
    p.add_argument("--rows", nargs="*", default=[], metavar="GROUP=LABEL", help="other rows to show")
    p.add_argument("--hardware", required=True)
    p.add_argument("--notes", default="")
    p.add_argument("--root", type=Path, default=Path("weights"))
    p.add_argument("--max-mb", type=float, default=10.0)
    a = p.parse_args(argv)
    rows = dict(r.split("=", 1) for r in a.rows)
    table = card_table(json.loads(a.results.read_text()), a.group, rows)
    dest = release(a.export, a.name, a.run, table, a.hardware, a.notes, a.root, a.max_mb)
    print(f"released {a.export} -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
