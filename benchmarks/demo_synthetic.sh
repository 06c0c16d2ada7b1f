#!/usr/bin/env bash
# `make demo-synthetic`: the paper's experiment in miniature on synthetic galaxies, end to end on CPU.
#   synthetic GZ-Evo-like data -> shards -> pretrain hybrid / byol / supervised (+ scratch init)
#   -> export to timm format -> low-label ring-finding benchmark -> results table
#   -> the hybrid model applied: vote predictions, calibration, similar galaxies, anomalies, BALD picks.
# Sizes come from the environment so tests can run the very same path tiny: DEMO_LABELLED,
#   DEMO_UNLABELLED, DEMO_DOWNSTREAM, DEMO_HELDOUT, DEMO_SIZE, PRETRAIN_ARGS, BENCHMARK_ARGS.
set -euo pipefail
OUT=${1:-demo}
source "$(dirname "$0")/demo_common.sh"
N_LAB=${DEMO_LABELLED:-6000}
N_UNL=${DEMO_UNLABELLED:-6000}
N_DOWN=${DEMO_DOWNSTREAM:-3000}
N_HELD=${DEMO_HELDOUT:-1500}

step "1/6 synthetic GZ-Evo-like data: $N_LAB labelled (+$N_HELD held out), $N_UNL unlabelled, $N_DOWN ring-task galaxies at ${SIZE}px"
[ -f "$OUT/data/downstream/rings.parquet" ] && [ -f "$OUT/data/heldout.parquet" ] || \
  "$HSSL" demo-data "$OUT/data" --n-labelled "$N_LAB" --n-unlabelled "$N_UNL" \
    --n-downstream "$N_DOWN" --n-heldout "$N_HELD" --size "$SIZE" --workers "$WORKERS"

step "2/6 catalogs -> WebDataset shards"
"$HSSL" prepare --catalog "$OUT/data/labelled.parquet" --out "$OUT/shards/labelled" \
  --image-size "$SIZE" --workers "$WORKERS"
"$HSSL" prepare --catalog "$OUT/data/unlabelled.parquet" --out "$OUT/shards/unlabelled" \
  --unlabelled --image-size "$SIZE" --workers "$WORKERS"
"$HSSL" prepare --catalog "$OUT/data/downstream/rings.parquet" --out "$OUT/shards/rings" \
  --unlabelled --keep-columns ring,split --image-size "$SIZE" --workers "$WORKERS"
"$HSSL" prepare --catalog "$OUT/data/heldout.parquet" --out "$OUT/shards/heldout" \
  --keep-columns true_ring --image-size "$SIZE" --workers "$WORKERS"

step "3/6 pretrain: hybrid, byol, supervised; scratch = the random init"
for mode in hybrid byol supervised scratch; do
  "$HSSL" pretrain --config configs/pretrain/demo.yaml mode="$mode" out_dir="$OUT/runs/$mode" \
    "data.labelled=[$OUT/shards/labelled]" "data.unlabelled=[$OUT/shards/unlabelled]" \
    resume=auto "${PRETRAIN_EXTRA[@]}"
done

step "4/6 export backbones to timm format"
for mode in hybrid byol supervised scratch; do
  "$HSSL" export "$OUT/runs/$mode" --out "$OUT/export/$mode"
done

step "5/6 low-label transfer benchmark on the ring task"
"$HSSL" benchmark --config configs/benchmark/demo.yaml out_dir="$OUT/benchmark" \
  task="$OUT/shards/rings" \
  backbones.hybrid="$OUT/export/hybrid" backbones.byol="$OUT/export/byol" \
  backbones.supervised="$OUT/export/supervised" backbones.scratch="$OUT/export/scratch" \
  "${BENCH_EXTRA[@]}"

step "6/6 the hybrid model applied to held-out galaxies and the unlabelled pool"
M="$OUT/export/hybrid" A="$OUT/apply" HELD="$OUT/shards/heldout"
mkdir -p "$A"
"$HSSL" predict --model "$M" --shards "$HELD" --out "$A/heldout_predictions.parquet" --mc-samples 5
"$HSSL" calibrate --model "$M" --shards "$HELD" --out "$A/calibration" --mc-samples 5
"$HSSL" embed --model "$M" --shards "$HELD" --out "$A/heldout_embeddings.parquet"
# a user who has flagged ten ringed galaxies: find more like them, and look at the first one's neighbours
"$PY" -c "import pandas as pd, sys; d = pd.read_parquet(sys.argv[1]); \
d[d.true_ring == 1].head(10)[['id_str']].to_csv(sys.argv[2], index=False)" "$OUT/data/heldout.parquet" "$A/flagged.csv"
# similar galaxies, anomalies from the flagged ones, and next labels
find_more "$A/heldout_embeddings.parquet" true_ring "$OUT/shards/unlabelled"

printf '\ndemo finished in %d s\n' $(( $(date +%s) - start ))
