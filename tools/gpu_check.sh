#!/usr/bin/env bash
# One-shot check on a machine with a GPU (and no package registry): build the extension with CUDA
# against the torch already installed, run the CUDA test cases, the extra numeric checks of
# tools/gpu_cases.py (non-default stream, cuda:1, AXE at B = 512 and with B*Lp*V > 2^31, BLEU at the
# shared-memory limits), compute-sanitizer's racecheck/synccheck/memcheck/initcheck on small cases
# when it is installed, and the kernel benchmarks on the GPU; a summary table goes to
# ${OUT:-gpu-check-out}/summary.md, the logs beside it.  Sized to finish in about 8 minutes.
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

echo "== extra checks" | tee -a "$OUT/summary.txt"
timeout 240 $PY tools/gpu_cases.py checks --out "$OUT" > "$OUT/checks.log" 2>&1 || status=1
grep -E "^(PASS|FAIL)" "$OUT/checks.log" | tee -a "$OUT/summary.txt"

echo "== compute-sanitizer" | tee -a "$OUT/summary.txt"
if command -v compute-sanitizer > /dev/null; then
  for spec in "racecheck axe" "racecheck lap40" "racecheck lap256" "racecheck pairwise" "synccheck axe" \
              "synccheck lap256" "synccheck pairwise" "memcheck ragged" "initcheck axe" "initcheck lap256"; do
    set -- $spec
    if timeout 60 compute-sanitizer --tool "$1" --error-exitcode 3 $PY tools/gpu_cases.py sanitize "$2" \
        > "$OUT/sanitize_$1_$2.log" 2>&1; then
      echo "PASS  $1 $2" | tee -a "$OUT/summary.txt"
    else
      echo "FAIL  $1 $2 (see sanitize_$1_$2.log)" | tee -a "$OUT/summary.txt"; status=1
    fi
  done
else
  echo "compute-sanitizer not found: skipped" | tee -a "$OUT/summary.txt"
fi

echo "== kernels on the GPU: peers and floors" | tee -a "$OUT/summary.txt"
timeout 180 $PY tools/gpu_cases.py bench --out "$OUT" > "$OUT/bench_gpu.log" 2>&1 || status=1
tail -8 "$OUT/bench_gpu.log" | tee -a "$OUT/summary.txt"

echo "== benchmarks (GPU)" | tee -a "$OUT/summary.txt"
for bench in benchmarks/bench_*.py; do
  if grep -q -- '--device' "$bench"; then
    timeout 300 $PY "$bench" --device cuda --json "$OUT/$(basename "$bench" .py).json" > "$OUT/$(basename "$bench" .py).log" 2>&1 || status=1
    tail -8 "$OUT/$(basename "$bench" .py).log" | tee -a "$OUT/summary.txt"
  fi
done
{ echo "# GPU check"; echo; echo '```'; cat "$OUT/summary.txt"; echo '```'; echo;
  [ -f "$OUT/checks.md" ] && cat "$OUT/checks.md"; echo; [ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"; } \
  > "$OUT/summary.md"
exit $status
