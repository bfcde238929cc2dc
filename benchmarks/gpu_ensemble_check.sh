#!/usr/bin/env bash
# The GPU checks of docs/ensembles.md on one GPU (about 5 minutes): the CUDA-graph fast step of an ensemble against
# the uncaptured one (tests/test_ensemble_cuda.py), then the ensemble step benchmark (2x3 and 2x15 unit, batch 4096,
# graph and eager; the target: 8 members of 2x3 in at most 2x one member's step time).
# Usage: bash benchmarks/gpu_ensemble_check.sh [OUT_DIR]    (writes OUT_DIR/log.txt and OUT_DIR/ensemble_cuda.json)
set -u
OUT_DIR=${1:-${OUT:-gpu_out}}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
exec > >(tee "$OUT_DIR/log.txt") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
timeout 120 python -m pytest -q -p no:cacheprovider tests/test_ensemble_cuda.py
timeout 300 python benchmarks/bench_step.py --device cuda --ensemble 1,2,4,8,16 --variants graph eager \
    --steps 10 --warmup 3 --json "$OUT_DIR/ensemble_cuda.json"
