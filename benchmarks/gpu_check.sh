#!/usr/bin/env bash
# The GPU checks of README "Throughput" and "Reproducing the paper", in one pass on one GPU:
#   1. benchmarks/bench_step.py on CUDA (CUDA-graph fast step; the eager step as the baseline),
#   2. total throughput of 1, 2 and 4 concurrent 2x3 processes on the one GPU,
#   3. table rows trained side by side with the fast step (each capped at TRAIN_MINUTES of training),
#      each followed by train.py's test protocol and an exhaustive regret audit (evaluate.py --audit).
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (env: TRAIN_MINUTES=5, RUNS="paper_2x3_unit ...")
# Writes OUT_DIR/log.txt and OUT_DIR/results.tar.gz (benchmark JSON, metrics.json, audit JSON per run).
set -u
OUT_DIR=${1:-${OUT:-gpu_out}}
TRAIN_MINUTES=${TRAIN_MINUTES:-4}
RUNS=${RUNS:-"paper_2x3_unit paper_2x3_exactly_one original_1x2_exactly_one"}
WORK=${WORK:-/tmp/gpu_check}
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
exec > >(tee "$OUT_DIR/log.txt") 2>&1
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

stamp "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
python -c "import torch, triton, lightning; print('torch', torch.__version__, 'triton', triton.__version__, 'lightning', lightning.__version__)"

stamp "1. step benchmark"
timeout 120 python benchmarks/bench_step.py --device cuda --only "1x2 unit" "2x3 unit" "2x15 unit" "2x3 exactly" \
    --variants graph --json "$OUT_DIR/step_graph.json"
timeout 45 python benchmarks/bench_step.py --device cuda --only "2x3 unit" --mechanisms sinkhorn \
    --variants eager fast --steps 3 --count-kernels --json "$OUT_DIR/step_eager.json"

stamp "2. concurrent runs on one GPU"
timeout 75 python benchmarks/bench_step.py --device cuda --concurrent 1,2,4 --steps 20 --json "$OUT_DIR/concurrent.json"

stamp "3. training ($RUNS), at most $TRAIN_MINUTES minutes of training each, side by side"
pids=()
for run in $RUNS; do
    timeout $((TRAIN_MINUTES * 60 + 90)) python train.py experiment="$run" trainer.accelerator=gpu \
        trainer.max_time="00:00:$(printf %02d "$TRAIN_MINUTES"):00" trainer.check_val_every_n_epoch=25 \
        callbacks.progress=null trainer.enable_progress_bar=false hydra.run.dir="$WORK/$run" > "$WORK/$run.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for run in $RUNS; do
    stamp "$run"; tail -n 12 "$WORK/$run.log"
    grep -h '"global_step"' "$WORK/$run/metrics.json" 2>/dev/null
done

stamp "4. regret audit of each run's tested weights (side by side)"
pids=()
for run in $RUNS; do
    ckpt="$WORK/$run/checkpoints/last.ckpt"
    [ -f "$ckpt" ] || continue
    timeout 75 python evaluate.py "$ckpt" --audit --audit-samples 200 --device cuda --no-progress \
        --out "$WORK/$run/eval" > "$WORK/$run.audit.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for run in $RUNS; do stamp "$run audit"; tail -n 16 "$WORK/$run.audit.log" 2>/dev/null; done

stamp "packing"
(cd "$WORK" && tar czf results.tar.gz --exclude='*.ckpt' --exclude='events.out.*' ./*.log $RUNS 2>/dev/null)
cp "$WORK/results.tar.gz" "$OUT_DIR/"
stamp "done"
