#!/usr/bin/env bash
# Multi-node pretraining with torchrun: run this once on every node, NODE_RANK=0..NNODES-1.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0.example MASTER_PORT=29500 GPUS=4 \
#     configs/launch/torchrun.sh configs/pretrain/gz_evo.yaml out_dir=/shared/runs/gz_evo \
#     'data.labelled=[/shared/shards/labelled]' 'data.unlabelled=[/shared/shards/unlabelled]'
# hybridssl reads the geometry from torchrun's environment (trainer.devices/num_nodes: auto).
# out_dir must be on a filesystem all nodes see; rerunning the same command resumes (resume=auto).
# torchrun sets OMP_NUM_THREADS=1 per process: keep it, data workers do the parallel decoding.
set -euo pipefail
CONFIG=${1:?usage: torchrun.sh CONFIG.yaml [key=value ...]}
shift
exec torchrun --nnodes "${NNODES:-1}" --nproc-per-node "${GPUS:-1}" --node-rank "${NODE_RANK:-0}" \
  --master-addr "${MASTER_ADDR:-127.0.0.1}" --master-port "${MASTER_PORT:-29500}" \
  -m hybridssl.cli pretrain --config "$CONFIG" "$@"
