#!/usr/bin/env bash
# A sweep of runs on the lent GPU machine (benchmarks/run_sweep.py): trains the runs of RUNS_FILE side by side,
# audits each, and packs everything a reader needs afterwards (train logs, metrics.json, results with the audit,
# .hydra/, TensorBoard events, checkpoints) into OUT_DIR/sweep.tar.gz, even if the time runs out.
# Usage: bash benchmarks/gpu_sweep.sh RUNS_FILE [OUT_DIR]
#   env: SWEEP_SECONDS=480 (the whole sweep's cap), MINUTES=4 (training cap per run), GPU_JOBS=4, CPU_JOBS=8,
#        AUDIT_SAMPLES=200. hydra-core/omegaconf come from ./.whl when the machine lacks them (pip wheel --no-deps
#        -w .whl hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3; pass .whl in the run's carry).
set -u
RUNS_FILE=${1:?usage: bash benchmarks/gpu_sweep.sh RUNS_FILE [OUT_DIR]}
OUT_DIR=${2:-${OUT:-gpu_out}}
WORK=${WORK:-/tmp/gpu_sweep}
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:${PYTHONPATH:-}"
if ! python -c "import hydra, omegaconf" 2>/dev/null; then
    pip install --quiet --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
exec > >(tee "$OUT_DIR/log.txt") 2>&1
echo "[$(date +%H:%M:%S)] $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null) $(nproc) cores"
python -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
timeout "${SWEEP_SECONDS:-480}" python benchmarks/run_sweep.py "$RUNS_FILE" "$WORK" --minutes "${MINUTES:-4}" \
    --test-minutes 3 --audit-minutes 3 --gpu-jobs "${GPU_JOBS:-4}" --cpu-jobs "${CPU_JOBS:-8}" \
    --audit-samples "${AUDIT_SAMPLES:-200}"
echo "[$(date +%H:%M:%S)] sweep exit $?; packing"
for d in "$WORK"/*/; do tail -n 25 "$d/train.log" 2>/dev/null | grep -a "revenue\|regret\|baseline\|wall\|warm\|Error" | sed "s|^|$(basename "$d"): |"; done
(cd "$WORK" && tar czf "$OUT_DIR/sweep.tar.gz" .)
ls -la "$OUT_DIR"
