#!/usr/bin/env bash
# One-shot check on a machine with a GPU (and no package registry): build the extension with CUDA
# against the torch already installed, run the CUDA test cases, run the kernel benchmarks on the GPU,
# and print a short table.  Logs go to ${OUT:-gpu-check-out}/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
status=0

echo "== build" | tee "$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/summary.txt"
MPLE_FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} \
  $PY -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 || { echo "build FAILED"; tail -40 "$OUT/build.log"; exit 1; }
$PY -c "import mple_metrics; print(mple_metrics.build_info())" | tee -a "$OUT/summary.txt"

echo "== CUDA tests" | tee -a "$OUT/summary.txt"
$PY -m pytest -q -m cuda --continue-on-collection-errors tests > "$OUT/tests_cuda.log" 2>&1 || status=1
tail -3 "$OUT/tests_cuda.log" | tee -a "$OUT/summary.txt"

echo "== benchmarks (GPU)" | tee -a "$OUT/summary.txt"
for bench in benchmarks/bench_*.py; do
  if grep -q -- '--device' "$bench"; then
    timeout 300 $PY "$bench" --device cuda --json "$OUT/$(basename "$bench" .py).json" > "$OUT/$(basename "$bench" .py).log" 2>&1 || status=1
    tail -8 "$OUT/$(basename "$bench" .py).log" | tee -a "$OUT/summary.txt"
  fi
done
exit $status
