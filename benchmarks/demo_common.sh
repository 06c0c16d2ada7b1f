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
