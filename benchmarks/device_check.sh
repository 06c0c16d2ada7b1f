#!/usr/bin/env bash
# The one prepared GPU check (issue 22; benchmarks/device_check.md). Writes one JSON per part into
# $OUT as it goes, each part under its own timeout, and skips a part that would overrun BUDGET_S:
#   versions -> shards -> P0 eager -> sync ("error" mode) -> small path 256/512/1024 -> P0 compiled -> trace
#   OUT=out BUDGET_S=560 bash benchmarks/device_check.sh       # one GPU
#   OUT=out CPU=1 bash benchmarks/device_check.sh              # tiny, on the CPU (the test runs this)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device_check_out}; WORK=${WORK:-/tmp/device_check}
# CPU=1: tiny sizes, and every timeout x SCALE (a shared CPU can be many times slower than its idle speed)
SCALE=${SCALE:-$([ "${CPU:-0}" = 1 ] && echo 4 || echo 1)}; BUDGET_S=${BUDGET_S:-$(( 560 * SCALE ))}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
if [ -d .whl ] && ! $PY -c "import lightly, kornia, webdataset, omegaconf" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
fi
export PYTHONUNBUFFERED=1
t0=$(date +%s)
part() {  # part NAME TIMEOUT_S CMD...: run under its own timeout unless the budget is spent
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  local left=$(( BUDGET_S - ($(date +%s) - t0) ))
  if [ "$left" -lt "$limit" ]; then
    echo "{\"skipped\": \"needs ${limit}s, ${left}s left of BUDGET_S\"}" > "$OUT/$name.json"; return
  fi
  echo "[$(( $(date +%s) - t0 ))s] $name"
  timeout -s TERM -k 10 "$limit" "$@" >> "$WORK/$name.log" 2>&1
  local rc=$?
  [ "$rc" -eq 0 ] || { echo "{\"failed\": $rc, \"log_tail\": $($PY -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()[-3000:]))' "$WORK/$name.log")}" > "$OUT/$name.json"; tail -5 "$WORK/$name.log"; }
}
GC="$PY -m benchmarks.gpu_check"
if [ "${CPU:-0}" = 1 ]; then  # tiny: every part runs, on the CPU, in about a minute
  SIZE=32; N=64; STEPS=4; ARCH=test_resnet; SMALL_ARCH=test_resnet; BATCHES="16"; P0_BATCH=8
  COMPILE="trainer.compile_backend=eager"  # inductor on a CPU compiles C++ for minutes
  COMMON="trainer.accelerator=cpu trainer.precision=32-true data.num_workers=0 model.projection_hidden_dim=32 model.prediction_hidden_dim=32 model.projection_dim=16"
  LOG=2; SMALL_SIZE=32
else
  SIZE=224; N=2048; STEPS=60; ARCH=resnet50; SMALL_ARCH=convnext_atto; BATCHES="256 512 1024"; P0_BATCH=256
  COMMON="data.num_workers=14"; LOG=10; SMALL_SIZE=64; COMPILE="trainer.compile_backend=inductor"
fi
SIZES="augment.crop_size=$SIZE augment.resize_size=$SIZE augment.blur_kernel=$(( SIZE / 10 | 1 ))"
P0="model.backbone=$ARCH data.batch_size=$P0_BATCH $SIZES trainer.max_steps=$STEPS trainer.log_every_n_steps=$LOG trainer.checkpoint_every_n_steps=100000 data.in_memory=false $COMMON"

part versions 60 $GC versions --out "$OUT"
part shards 120 $GC shards --name "$WORK/shards" --size $SIZE --n $N
[ "${CPU:-0}" = 1 ] || part shards_small 60 $GC shards --name "$WORK/shards64" --size 64 --n 7000
part p0_eager 180 $GC pretrain --name p0_eager --out "$OUT" --work "$WORK" --shards "$WORK/shards" $P0
part sync 150 $GC sync --out "$OUT" --work "$WORK" --shards "$WORK/shards" $P0 trainer.max_steps=$(( LOG * 2 ))
SMALL_SHARDS=$WORK/shards64; [ "${CPU:-0}" = 1 ] && SMALL_SHARDS=$WORK/shards
for b in $BATCHES; do
  part small_b$b 90 $GC pretrain --name small_b$b --out "$WORK/small" --work "$WORK" --shards "$SMALL_SHARDS" \
    --config configs/pretrain/gpu_small.yaml model.backbone=$SMALL_ARCH data.batch_size=$b trainer.max_steps=$(( STEPS * 2 )) \
    trainer.log_every_n_steps=$LOG trainer.checkpoint_every_n_steps=100000 augment.crop_size=$SMALL_SIZE augment.resize_size=$SMALL_SIZE $COMMON
done
$PY -c "import json,glob,os; json.dump({os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob('$WORK/small/*.json'))}, open('$OUT/small.json','w'), indent=1)" 2>/dev/null
part p0_compiled 300 $GC pretrain --name p0_compiled --out "$OUT" --work "$WORK" --shards "$WORK/shards" $P0 trainer.compile=true $COMPILE
part trace 120 $GC trace --out "$OUT" --work "$WORK" --shards "$WORK/shards" $P0 trainer.max_steps=8
echo "[$(( $(date +%s) - t0 ))s] done"; ls -la "$OUT"
