# Sourced by benchmarks/demo.sh and demo_synthetic.sh: the CLI and python to use, the shared
# size knobs from the environment (DEMO_SIZE, DEMO_WORKERS, PRETRAIN_ARGS, BENCHMARK_ARGS), step().
HSSL=${HSSL:-hybridssl}
command -v "$HSSL" >/dev/null || HSSL="$(dirname "$0")/../.venv/bin/hybridssl"
PY="$(dirname "$(command -v "$HSSL")")/python"
[ -x "$PY" ] || PY=python3
SIZE=${DEMO_SIZE:-64}
WORKERS=${DEMO_WORKERS:-2}
read -r -a PRETRAIN_EXTRA <<< "${PRETRAIN_ARGS:-}"
read -r -a BENCH_EXTRA <<< "${BENCHMARK_ARGS:-}"
step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
start=$(date +%s)
# find_more EMBEDDINGS TRUTH_COLUMN POOL_SHARDS: with $M (export) and $A (apply dir) set and ten
# flagged galaxies in $A/flagged.csv: the first one's neighbours, anomalies ranked by the flagged
# ones (precision reported against TRUTH_COLUMN), and the pool's next labels (BALD).
find_more() {
  "$HSSL" similar --embeddings "$1" --query "$(sed -n 2p "$A/flagged.csv")" --k 15 \
    --out "$A/similar.csv" --montage "$A/similar.png"
  "$HSSL" anomalies --embeddings "$1" --labelled-interesting "$A/flagged.csv" \
    --report-column "$2" --top 24 --out "$A/anomalies.csv" --montage "$A/anomalies.png"
  "$HSSL" acquire --model "$M" --shards "$3" --n 100 --mc-samples 10 \
    --out "$A/acquire.csv" --montage "$A/acquire.png"
}
