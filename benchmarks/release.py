"""Release an exported backbone into the repository: ``weights/<name>/``.

    python -m benchmarks.release EXPORT_DIR --name NAME --run RUN_DIR --results RESULTS_MD \
        --hardware "2-core CPU, one thread" [--notes TEXT]

Writes ``model.safetensors`` (fp16: half the size, and what a 64 px convnext needs), the Dirichlet
head when the export has one, the export's ``config.json`` unchanged (so
``timm.create_model("local-dir:weights/NAME", pretrained=True)``, ``hybridssl predict/embed/
finetune/benchmark --model weights/NAME`` and Zoobot's finetuner load it as any export), and a
model card ``README.md``: data, recipe, steps, samples seen, hardware, wall time, the benchmark
table with its baselines. Refuses a folder it did not write and weights above ``--max-mb``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file, save_file

from hybridssl.export import CONFIG_FILE, HEAD_FILE, MODEL_FILE, load_backbone, read_export_info

CARD = "README.md"


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


def release(export: Path, name: str, run: Path, results_md: Path, hardware: str, notes: str = "",
            root: Path = Path("weights"), max_mb: float = 10.0) -> Path:
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
    (tmp / CARD).write_text(model_card(name, info, run_cfg, run, results_md.read_text(), hardware, notes))
    load_backbone(tmp)  # the release loads as an export before it replaces anything
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--run", type=Path, required=True, help="the pretraining run folder (config.yaml, launches/)")
    p.add_argument("--results", type=Path, required=True, help="the benchmark's results.md to put in the card")
    p.add_argument("--hardware", required=True)
    p.add_argument("--notes", default="")
    p.add_argument("--root", type=Path, default=Path("weights"))
    p.add_argument("--max-mb", type=float, default=10.0)
    a = p.parse_args(argv)
    dest = release(a.export, a.name, a.run, a.results, a.hardware, a.notes, a.root, a.max_mb)
    print(f"released {a.export} -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
