#!/usr/bin/env bash
# The GPU checks of docs/throughput.md and docs/results.md on one GPU, in stages (STAGES picks them):
#   bench       benchmarks/bench_step.py on CUDA (CUDA-graph fast step; the eager step as the baseline);
#   concurrent  total throughput of 1, 2, 4 and 6 2x3 processes timed over one shared window;
#   train       table rows trained side by side with the fast step (each capped at TRAIN_MINUTES of training),
#               each followed by train.py's test protocol;
#   audit       the exhaustive regret audit of each trained run on 200 test profiles (evaluate.py --samples 200
#               --audit: the search and the audit on the same profiles; train.py already tested all 1000).
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]
#   env: STAGES="bench concurrent train audit", TRAIN_MINUTES=4, RUNS="paper_2x3_unit original_1x2_exactly_one@1 ..."
#        (a run is a preset, optionally @seed), EPOCHS (override trainer.max_epochs), WINDOW=15 (concurrent, seconds),
#        ACCELERATOR=gpu and EXTRA="more overrides" (to try the script on a CPU: ACCELERATOR=cpu STAGES=train ...).
# Writes OUT_DIR/log.txt, the benchmark JSON, and OUT_DIR/runs.tar.gz (per run: the train log, metrics.json,
# .hydra/, the checkpoints, TensorBoard events, the audit), so that runs can be audited, re-tested and their
# curves read elsewhere. EXTRA="callbacks.checkpoint.save_top_k=-1" keeps a checkpoint of every validation.
set -u
OUT_DIR=${1:-${OUT:-gpu_out}}
STAGES=${STAGES:-"bench concurrent train audit"}
TRAIN_MINUTES=${TRAIN_MINUTES:-4}
RUNS=${RUNS:-"paper_2x3_unit paper_2x3_exactly_one original_1x2_exactly_one"}
WINDOW=${WINDOW:-15}
ACCELERATOR=${ACCELERATOR:-gpu}
WORK=${WORK:-/tmp/gpu_check}
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
exec > >(tee "$OUT_DIR/log.txt") 2>&1
stamp() { echo "[$(date +%H:%M:%S)] $*"; }
staged() { [[ " $STAGES " == *" $1 "* ]]; }
name() { echo "${1/@/_seed}"; }

stamp "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
python -c "import torch, triton, lightning; print('torch', torch.__version__, 'triton', triton.__version__, 'lightning', lightning.__version__)"

if staged bench; then
    stamp "step benchmark"
    timeout 120 python benchmarks/bench_step.py --device cuda --only "1x2 unit" "2x3 unit" "2x15 unit" "2x3 exactly" \
        --variants graph --json "$OUT_DIR/step_graph.json"
    timeout 45 python benchmarks/bench_step.py --device cuda --only "2x3 unit" --mechanisms sinkhorn \
        --variants eager fast --steps 3 --count-kernels --json "$OUT_DIR/step_eager.json"
fi

if staged concurrent; then
    stamp "concurrent runs on one GPU, timed over one shared ${WINDOW} s window"
    timeout 200 python benchmarks/bench_step.py --device cuda --concurrent 1,2,4,6 --window "$WINDOW" \
        --json "$OUT_DIR/concurrent.json"
fi

if staged train; then
    stamp "training ($RUNS), at most $TRAIN_MINUTES minutes of training each, side by side"
    pids=()
    for run in $RUNS; do
        preset=${run%@*}; seed=0; [[ $run == *@* ]] && seed=${run#*@}
        timeout $((TRAIN_MINUTES * 60 + 120)) python train.py experiment="$preset" seed="$seed" trainer.accelerator="$ACCELERATOR" \
            trainer.max_time="00:00:$(printf %02d "$TRAIN_MINUTES"):00" trainer.check_val_every_n_epoch=25 \
            ${EPOCHS:+trainer.max_epochs=$EPOCHS} callbacks.progress=null trainer.enable_progress_bar=false ${EXTRA:-} \
            hydra.run.dir="$WORK/$(name "$run")" > "$WORK/$(name "$run").log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    for run in $RUNS; do
        stamp "$run"; tail -n 12 "$WORK/$(name "$run").log"
        grep -h '"global_step"\|"train_time_s"' "$WORK/$(name "$run")/metrics.json" 2>/dev/null
    done
fi

if staged audit; then
    stamp "regret audit of each run's tested weights (side by side)"
    pids=()
    for run in $RUNS; do
        ckpt="$WORK/$(name "$run")/checkpoints/last.ckpt"
        [ -f "$ckpt" ] || continue
        timeout 240 python evaluate.py "$ckpt" --samples 200 --audit --device "${ACCELERATOR/gpu/cuda}" --no-progress \
            --out "$WORK/$(name "$run")/eval" > "$WORK/$(name "$run").audit.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    for run in $RUNS; do stamp "$run audit"; tail -n 16 "$WORK/$(name "$run").audit.log" 2>/dev/null; done
fi

if staged train; then
    stamp "packing"
    dirs=(); for run in $RUNS; do dirs+=("$(name "$run")"); done
    (cd "$WORK" && tar czf "$OUT_DIR/runs.tar.gz" ./*.log "${dirs[@]}")  # TensorBoard events and every checkpoint
    ls -la "$OUT_DIR"
fi
stamp "done"
