#!/usr/bin/env bash
# Does longer pretraining change the real-ring ranking? The demo config (configs/pretrain/demo.yaml)
# with STEPS optimiser steps instead of 375, all runs at once on one GPU, then the real-ring
# benchmark (linear + kNN) and the validation scores of benchmarks/real_sweep.py on the same exports.
#   OUT=gpu_steps STEPS=3000 bash benchmarks/gpu_steps.sh
# Env: STEPS, RUNS ("mode:seed ..."), BUDGET_S (each run is stopped after this and its newest
# checkpoint exported), ACCEL (gpu; cpu for a tiny local try), WORKERS, LIMIT, PRETRAIN_ARGS, BENCH_ARGS,
# VAL_BUDGETS (labels per validation draw, "20 50").
# Writes OUT/export_<mode>_seed0.tar (seed-0 exports, for probes elsewhere), OUT/results.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_steps}; STEPS=${STEPS:-3000}; BUDGET_S=${BUDGET_S:-330}; ACCEL=${ACCEL:-gpu}
RUNS=${RUNS:-"hybrid:0 supervised:0 byol:0 hybrid:1 supervised:1"}; WORKERS=${WORKERS:-2}
DEV=$([ "$ACCEL" = gpu ] && echo cuda || echo cpu)
W=${WORK:-/tmp/gpu_steps}
mkdir -p "$OUT" "$W/logs"
PY=${PYTHON:-python3}
t0=$(date +%s); tick() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
if [ -d .whl ] && ! $PY -c "import lightly, kornia, webdataset, omegaconf" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
fi
$PY -m benchmarks.real_data "$W/real" --workers 8 ${LIMIT:+--limit $LIMIT} > "$W/logs/prepare.log" 2>&1 \
  || { tail -30 "$W/logs/prepare.log"; exit 1; }
S=$W/real/shards; tick "shards ready"

for run in $RUNS; do
  mode=${run%:*} seed=${run#*:}
  timeout -s TERM "$BUDGET_S" $PY -m hybridssl.cli pretrain --config configs/pretrain/demo.yaml mode="$mode" \
    seed="$seed" out_dir="$W/runs/${mode}_seed$seed" "data.labelled=[$S/gz1]" "data.unlabelled=[$S/gz2_pool,$S/gz1]" \
    trainer.accelerator="$ACCEL" trainer.max_steps="$STEPS" trainer.checkpoint_every_n_steps=250 \
    data.num_workers="$WORKERS" trainer.progress_bar=false ${PRETRAIN_ARGS:-} \
    > "$W/logs/pretrain_${mode}_seed$seed.log" 2>&1 &
done
for seed in 0 1; do  # the random inits the pretrained backbones are compared with
  $PY -m hybridssl.cli pretrain --config configs/pretrain/demo.yaml mode=scratch seed=$seed \
    out_dir="$W/runs/scratch_seed$seed" "data.labelled=[$S/gz1]" "data.unlabelled=[$S/gz2_pool,$S/gz1]" \
    trainer.accelerator=cpu > "$W/logs/pretrain_scratch_seed$seed.log" 2>&1 &
done
wait; tick "pretraining done (or stopped at ${BUDGET_S}s)"
grep -h "finished at step\|Trainer.fit. stopped" "$W"/logs/pretrain_*.log

for d in "$W"/runs/*; do
  $PY -m hybridssl.cli export "$d" --out "$W/export/$(basename "$d")" > "$W/logs/export_$(basename "$d").log" 2>&1 &
done
wait; ls "$W/export"
for d in "$W"/export/*_seed0; do
  n=$(basename "$d"); [ "$n" = scratch_seed0 ] || tar -C "$W/export" -cf "$OUT/export_$n.tar" "$n"
done; tick "exported"

BACKBONES=(); for d in "$W"/export/*; do BACKBONES+=("backbones.$(basename "$d")=$d"); done
$PY -m hybridssl.cli benchmark --config configs/benchmark/real_rings.yaml out_dir="$W/bench/rings" \
  task="$S/rings" device="$DEV" "title=Real rings after $STEPS steps" "${BACKBONES[@]}" ${BENCH_ARGS:-} \
  > "$W/logs/bench_rings.log" 2>&1 || tail -20 "$W/logs/bench_rings.log"
tick "rings benchmark"
$PY - "$W" "$S" "$DEV" "${VAL_BUDGETS:-20 50}" <<'EOF' > "$W/logs/validation.log" 2>&1 || tail -20 "$W/logs/validation.log"
import json, sys
from pathlib import Path
from benchmarks.real_sweep import validation_scores
w, s, dev, budgets = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], [int(b) for b in sys.argv[4].split()]
out = {e.name: validation_scores(e, s / "rings", "rings", budgets, 20, dev, w / "features")
       for e in sorted((w / "export").iterdir())}
(w / "bench" / "validation_rings.json").write_text(json.dumps(out, indent=1))
for name, r in out.items():
    print(name, round(sum(sum(v) / len(v) for v in r.values()) / len(r), 3))
EOF
tick "validation scores"; cat "$W/logs/validation.log" | grep -v Warn | tail -8
mkdir -p "$W/metrics"; for d in "$W"/runs/*; do cp "$d"/logs/version_0/metrics.csv "$W/metrics/$(basename "$d").csv" 2>/dev/null; done
tar -C "$W" -czf "$OUT/results.tgz" --exclude='*.npz' --exclude='features' logs metrics bench
grep -A8 "accuracy by mode" "$W/bench/rings/results.md" | head -24
