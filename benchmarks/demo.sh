#!/usr/bin/env bash
# `make demo`: the paper's experiment in miniature, end to end on CPU.
#   synthetic GZ-Evo-like data -> shards -> pretrain hybrid / byol / supervised (+ scratch init)
#   -> export to timm format -> low-label ring-finding benchmark -> results table.
# Sizes come from the environment so tests can run the very same path tiny:
#   DEMO_LABELLED, DEMO_UNLABELLED, DEMO_DOWNSTREAM, DEMO_SIZE, PRETRAIN_ARGS, BENCHMARK_ARGS.
set -euo pipefail
OUT=${1:-demo}
HSSL=${HSSL:-hybridssl}
command -v "$HSSL" >/dev/null || HSSL="$(dirname "$0")/../.venv/bin/hybridssl"
N_LAB=${DEMO_LABELLED:-6000}
N_UNL=${DEMO_UNLABELLED:-6000}
N_DOWN=${DEMO_DOWNSTREAM:-3000}
SIZE=${DEMO_SIZE:-64}
WORKERS=${DEMO_WORKERS:-2}
read -r -a PRETRAIN_EXTRA <<< "${PRETRAIN_ARGS:-}"
read -r -a BENCH_EXTRA <<< "${BENCHMARK_ARGS:-}"
step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
start=$(date +%s)

step "1/5 synthetic GZ-Evo-like data: $N_LAB labelled, $N_UNL unlabelled, $N_DOWN ring-task galaxies at ${SIZE}px"
[ -f "$OUT/data/downstream/rings.parquet" ] || \
  "$HSSL" demo-data "$OUT/data" --n-labelled "$N_LAB" --n-unlabelled "$N_UNL" \
    --n-downstream "$N_DOWN" --size "$SIZE" --workers "$WORKERS"

step "2/5 catalogs -> WebDataset shards"
"$HSSL" prepare --catalog "$OUT/data/labelled.parquet" --out "$OUT/shards/labelled" \
  --image-size "$SIZE" --workers "$WORKERS"
"$HSSL" prepare --catalog "$OUT/data/unlabelled.parquet" --out "$OUT/shards/unlabelled" \
  --unlabelled --image-size "$SIZE" --workers "$WORKERS"
"$HSSL" prepare --catalog "$OUT/data/downstream/rings.parquet" --out "$OUT/shards/rings" \
  --unlabelled --keep-columns ring,split --image-size "$SIZE" --workers "$WORKERS"

step "3/5 pretrain: hybrid, byol, supervised; scratch = the random init"
for mode in hybrid byol supervised scratch; do
  "$HSSL" pretrain --config configs/pretrain/demo.yaml mode="$mode" out_dir="$OUT/runs/$mode" \
    "data.labelled=[$OUT/shards/labelled]" "data.unlabelled=[$OUT/shards/unlabelled]" \
    resume=auto "${PRETRAIN_EXTRA[@]}"
done

step "4/5 export backbones to timm format"
for mode in hybrid byol supervised scratch; do
  "$HSSL" export "$OUT/runs/$mode" --out "$OUT/export/$mode"
done

step "5/5 low-label transfer benchmark on the ring task"
"$HSSL" benchmark --config configs/benchmark/demo.yaml out_dir="$OUT/benchmark" \
  task="$OUT/shards/rings" \
  backbones.hybrid="$OUT/export/hybrid" backbones.byol="$OUT/export/byol" \
  backbones.supervised="$OUT/export/supervised" backbones.scratch="$OUT/export/scratch" \
  "${BENCH_EXTRA[@]}"

printf '\ndemo finished in %d s\n' $(( $(date +%s) - start ))
