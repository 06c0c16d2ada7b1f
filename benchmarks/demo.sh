#!/usr/bin/env bash
# `make demo`: the paper's experiment in miniature on real galaxies, end to end on CPU.
#   shipped SDSS / DECaLS galaxies (data_prep/galaxies) -> shards (GZ1 classes as pseudo-votes)
#   -> pretrain hybrid / byol / supervised (+ scratch init) -> export to timm format
#   -> low-label benchmarks on real DECaLS rings and on GZ1 mergers kept out of pretraining
#   -> the hybrid model applied: similar galaxies, anomalies, next labels, vote predictions.
# Sizes come from the environment so tests can run the very same path tiny: DEMO_LIMIT (rows per
#   catalog), DEMO_SIZE, DEMO_WORKERS, PRETRAIN_ARGS, BENCHMARK_ARGS.
set -euo pipefail
OUT=${1:-demo}
source "$(dirname "$0")/demo_common.sh"
LIMIT=${DEMO_LIMIT:+--limit $DEMO_LIMIT}
MODES=(hybrid byol supervised scratch)
S="$OUT/shards"

step "1/5 real galaxies -> WebDataset shards at ${SIZE}px (GZ1 classes as pseudo-votes)"
"$PY" -m benchmarks.real_data "$OUT" --image-size "$SIZE" --workers "$WORKERS" $LIMIT

# Two single-thread runs at once finish the three modes ~25% sooner than one after another on
# two threads (small model, 64 px: a second thread helps one run little). DEMO_LANES=1: in turn.
LANES=${DEMO_LANES:-2}; (( LANES <= 2 )) || LANES=2  # two lanes below: hybrid+scratch, supervised+byol
THREADS=$(( $(nproc) / LANES )); (( THREADS >= 1 )) || THREADS=1
mkdir -p "$OUT/logs"
# per-mode augmentations chosen on validation galaxies (docs/recipe.md), as benchmarks/long_run.sh
declare -A RECIPE=([byol]="augment=physical")
pretrain() {  # MODE: one run; its log goes to $OUT/logs, its last lines to the screen if it fails
  local log="$OUT/logs/pretrain_$1.log" t0; t0=$(date +%s)
  if OMP_NUM_THREADS=$THREADS "$HSSL" pretrain --config configs/pretrain/demo.yaml mode="$1" \
      out_dir="$OUT/runs/$1" "data.labelled=[$S/gz1]" "data.unlabelled=[$S/gz2_pool,$S/gz1]" resume=auto \
      trainer.progress_bar=false ${RECIPE[$1]:-} "${PRETRAIN_EXTRA[@]}" >"$log" 2>&1; then
    printf '  %-10s done in %d s (log: %s)\n' "$1" $(( $(date +%s) - t0 )) "$log"
  else
    printf '  %s FAILED; the end of %s:\n' "$1" "$log"; tail -n 25 "$log"; return 1
  fi
}
lane_a() { pretrain hybrid && pretrain scratch; }
lane_b() { pretrain supervised && pretrain byol; }

step "2/5 pretrain hybrid, supervised, byol ($LANES at a time, $THREADS thread(s) each); scratch = the random init"
if (( LANES > 1 )); then
  lane_a & a=$!
  lane_b & b=$!
  failed=0; wait $a || failed=1; wait $b || failed=1
  (( failed == 0 )) || exit 1
else
  lane_a
  lane_b
fi

step "3/5 export backbones to timm format"
for mode in "${MODES[@]}"; do
  "$HSSL" export "$OUT/runs/$mode" --out "$OUT/export/$mode"
done

step "4/5 low-label transfer benchmarks: real DECaLS rings, GZ1 mergers (never pretrained on)"
BACKBONES=()
for mode in "${MODES[@]}"; do BACKBONES+=("backbones.$mode=$OUT/export/$mode"); done
# the released hybrid backbone (weights/, issue 22) beside the demo's own runs; DEMO_RELEASED=0 leaves it out
REPO="$(cd "$(dirname "$0")/.." && pwd)"
RELEASED=()
if [ "${DEMO_RELEASED:-1}" != 0 ]; then
  for d in "$REPO"/weights/hybrid*/; do if [ -f "$d/config.json" ]; then RELEASED+=("$(basename "$d")"); fi; done
fi
for name in "${RELEASED[@]}"; do BACKBONES+=("backbones.released_$name=$REPO/weights/$name"); done
# the repeated-split headline only: the older fixed-split grid (docs/demo_results.md) doubled this step
for task in rings mergers; do
  "$HSSL" benchmark --config "configs/benchmark/real_$task.yaml" out_dir="$OUT/benchmark/$task" \
    task="$S/$task" "protocols=[]" "${BACKBONES[@]}" "${BENCH_EXTRA[@]}"
done

step "5/5 the hybrid model applied to real galaxies"
M="$OUT/export/hybrid" A="$OUT/apply"
mkdir -p "$A"
# the merger-task galaxies were never pretrained on: predict their votes, embed them
"$HSSL" predict --model "$M" --shards "$S/mergers" --out "$A/mergers_predictions.parquet" --mc-samples 5
"$HSSL" embed --model "$M" --shards "$S/mergers" --out "$A/mergers_embeddings.parquet"
for name in "${RELEASED[@]}"; do  # the released hybrid backbone predicts the same galaxies' votes
  if [ -f "$REPO/weights/$name/head.safetensors" ]; then
    "$HSSL" predict --model "$REPO/weights/$name" --shards "$S/mergers" \
      --out "$A/mergers_predictions_released_$name.parquet" --mc-samples 5
  fi
done
# a user who has flagged ten mergers of the train split: find more like them, and look at the first one's neighbours
"$PY" -c "import pandas as pd, sys; d = pd.read_csv(sys.argv[1], dtype=str); \
d[(d.merger == '1') & (d.split == 'train')].head(10)[['id_str']].to_csv(sys.argv[2], index=False)" \
  "$OUT/data/mergers.csv" "$A/flagged.csv"
# similar galaxies, anomalies from the flagged ones, next labels from the GZ2-challenge pool
find_more "$A/mergers_embeddings.parquet" merger "$S/gz2_pool"

printf '\ndemo finished in %d s\n' $(( $(date +%s) - start ))
