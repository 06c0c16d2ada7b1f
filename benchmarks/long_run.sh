#!/usr/bin/env bash
# The long real pretraining (issue 22): hybrid, supervised and byol with the recipe chosen on
# validation galaxies (configs/pretrain/real_long.yaml), EPOCHS passes over the shipped real
# galaxies each, a checkpoint every 1/CURVE of the run kept for the transfer-vs-samples curve,
# every checkpoint exported (OUT/curve/<mode>/stepN) and the final ones (OUT/export/<mode>, with
# the random init as OUT/export/scratch), then the rings benchmark (repeated-split protocol).
#   OUT=longrun EPOCHS=10 bash benchmarks/long_run.sh               # CPU: LANES single-thread runs
#   OUT=longrun EPOCHS=100 ACCEL=gpu LANES=3 bash benchmarks/long_run.sh
# Re-running continues every run where it stopped (resume=auto) and skips finished exports.
# Env: MODES ("hybrid supervised byol"), EPOCHS, CURVE, ACCEL (cpu|gpu), LANES, LIMIT (rows per catalog: tiny rehearsals),
#      MAX_STEPS (overrides the epoch count: tiny rehearsals), PRETRAIN_ARGS, BENCH_ARGS, VAL_BUDGETS.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-longrun}; EPOCHS=${EPOCHS:-10}; CURVE=${CURVE:-5}; ACCEL=${ACCEL:-cpu}; LANES=${LANES:-2}
read -r -a MODES <<< "${MODES:-hybrid supervised byol}"
# per-mode augmentations chosen on validation galaxies (docs/long_run.md): the physical recipe
# lifted byol, the paper's recipe served the vote-trained modes better
declare -A RECIPE=([hybrid]="" [supervised]="" [byol]="augment=physical")
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DEV=$([ "$ACCEL" = gpu ] && echo cuda || echo cpu)
mkdir -p "$OUT/logs"
t0=$(date +%s); tick() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

$PY -m benchmarks.real_data "$OUT/real" --workers 2 ${LIMIT:+--limit $LIMIT} > "$OUT/logs/prepare.log" 2>&1 \
  || { tail -30 "$OUT/logs/prepare.log"; exit 1; }
S=$OUT/real/shards
# one epoch = one pass over the distinct pretraining galaxies (the GZ1 and GZ2-challenge pools)
read -r GALAXIES BATCH < <($PY - "$S" <<'PY'
import json, sys
from hybridssl.config import load_config, resolve_config_path
from hybridssl.train.config import PretrainConfig
n = sum(json.load(open(f"{sys.argv[1]}/{s}/manifest.json"))["n_samples"] for s in ("gz1", "gz2_pool"))
cfg = load_config(PretrainConfig, resolve_config_path("real_long", "pretrain"), ["data.labelled=[x]"])
print(n, cfg.data.batch_size)
PY
)
STEPS=${MAX_STEPS:-$(( (EPOCHS * GALAXIES + BATCH - 1) / BATCH ))}
EVERY=$(( STEPS / CURVE )); (( EVERY >= 1 )) || EVERY=1
tick "$GALAXIES galaxies, batch $BATCH: $STEPS steps per mode ($EPOCHS epochs), a checkpoint every $EVERY"
echo "{\"galaxies\": $GALAXIES, \"batch_size\": $BATCH, \"max_steps\": $STEPS, \"epochs\": $EPOCHS, \"accelerator\": \"$ACCEL\"}" > "$OUT/plan.json"

pretrain() {  # MODE
  local threads=$(( $(nproc) / LANES )); (( threads >= 1 )) || threads=1
  OMP_NUM_THREADS=$([ "$ACCEL" = gpu ] && echo 4 || echo $threads) $PY -m hybridssl.cli pretrain \
    --config real_long mode="$1" out_dir="$OUT/runs/$1" "data.labelled=[$S/gz1]" \
    "data.unlabelled=[$S/gz2_pool,$S/gz1]" trainer.accelerator="$ACCEL" trainer.max_steps="$STEPS" \
    trainer.checkpoint_every_n_steps="$EVERY" trainer.keep_checkpoints=-1 resume=auto \
    trainer.progress_bar=false ${RECIPE[$1]:-} ${PRETRAIN_ARGS:-} >> "$OUT/logs/pretrain_$1.log" 2>&1 \
    && tick "$1 pretrained" || { tick "$1 FAILED"; tail -20 "$OUT/logs/pretrain_$1.log"; return 1; }
}
running=0
for mode in "${MODES[@]}"; do
  pretrain "$mode" & running=$((running + 1))
  if (( running >= LANES )); then wait -n; running=$((running - 1)); fi
done
wait
$PY -m hybridssl.cli pretrain --config real_long mode=scratch out_dir="$OUT/runs/scratch" \
  "data.labelled=[$S/gz1]" "data.unlabelled=[$S/gz2_pool,$S/gz1]" trainer.accelerator=cpu \
  > "$OUT/logs/pretrain_scratch.log" 2>&1

# every run's final export, and one per kept checkpoint for the curve; one process, finished ones kept
$PY - "$OUT" >> "$OUT/logs/export.log" 2>&1 <<'PY'
import sys
from pathlib import Path
from benchmarks.real_sweep import export_checkpoints
from hybridssl.export.timm_folder import export_checkpoint
out = Path(sys.argv[1])
for run in sorted((out / "runs").iterdir()):
    dest = out / "export" / run.name
    if not (dest / "model.safetensors").is_file():
        info = export_checkpoint(run, dest)
        print(f"exported {run} (step {info['checkpoint']['global_step']}) -> {dest}", flush=True)
    if run.name != "scratch":
        curve = export_checkpoints(run, out / "curve" / run.name)
        print(f"{run.name}: {len(curve)} checkpoints exported for the curve", flush=True)
PY
tick "exported"
# validation galaxies inside the rings' train split, for choosing a checkpoint to release (never the test split)
$PY - "$OUT" "${VAL_BUDGETS:-20 50}" >> "$OUT/logs/validation.log" 2>&1 <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from benchmarks.real_sweep import validation_scores
out, budgets = Path(sys.argv[1]), [int(b) for b in sys.argv[2].split()]
exports = sorted(p for p in (out / "curve").glob("*/step*")) + [out / "export" / "scratch"]
scores = {}
for e in exports:
    s = validation_scores(e, out / "real/shards/rings", "rings", budgets, 20, "cpu", out / "valfeatures")
    scores[f"{e.parent.name}_{e.name}" if e.parent.name != "export" else e.name] = {
        **{b: float(np.mean(v)) for b, v in s.items()}, "mean": float(np.mean([np.mean(v) for v in s.values()]))}
(out / "validation_curve.json").write_text(json.dumps(scores, indent=1))
PY
tick "validation curve: $OUT/validation_curve.json"

BACKBONES=(); for d in "$OUT"/export/*; do BACKBONES+=("backbones.$(basename "$d")=$d"); done
$PY -m hybridssl.cli benchmark --config configs/benchmark/real_rings.yaml out_dir="$OUT/bench/rings" \
  task="$S/rings" device="$DEV" "title=Real rings after $EPOCHS epochs" "${BACKBONES[@]}" ${BENCH_ARGS:-} \
  > "$OUT/logs/bench_rings.log" 2>&1 || { tail -20 "$OUT/logs/bench_rings.log"; exit 1; }
tick "rings benchmark: $OUT/bench/rings/results.md"
