#!/usr/bin/env bash
# Compile check of every CUDA source (csrc/cuda/*.cu) without a GPU: builds the whole extension with
# MPLE_FORCE_CUDA=1 against a CUDA build of torch in a separate venv, then loads the library and checks
# that every op has a CUDA kernel registered.  Fails on any compile, link or registration error.
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_VENV=${CUDA_VENV:-.venv-cuda}
CUDA_TORCH_SPEC=${CUDA_TORCH_SPEC:-torch==2.14.1}
PYTHON=${PYTHON:-python3}

if ! command -v nvcc >/dev/null 2>&1 && [ -z "${CUDA_HOME:-}" ]; then
  echo "cuda-check: nvcc not found and CUDA_HOME unset; a CUDA toolkit is required" >&2
  exit 1
fi
if [ -z "${CUDA_HOME:-}" ]; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    CUDA_HOME=/usr/local/cuda
  else  # the toolkit that holds the nvcc on PATH (which may be a wrapper script)
    CUDA_HOME=$(nvcc --version >/dev/null && dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  fi
fi
export CUDA_HOME

if [ ! -f "$CUDA_VENV/.mple-deps" ]; then
  "$PYTHON" -m venv "$CUDA_VENV"
  "$CUDA_VENV/bin/python" -m pip install -q --upgrade pip
  "$CUDA_VENV/bin/python" -m pip install -q "$CUDA_TORCH_SPEC" setuptools wheel pybind11 ninja numpy
  touch "$CUDA_VENV/.mple-deps"
fi

SITE=$("$CUDA_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# cusparse, cublas and friends' headers ship inside the nvidia-* wheels of the CUDA torch build.
for inc in "$SITE"/nvidia/cu*/include "$SITE"/nvidia/*/include; do
  [ -d "$inc" ] && CPATH="${CPATH:+$CPATH:}$inc"
done
export CPATH
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-2}

OUT=build/cuda-check
echo "cuda-check: CUDA_HOME=$CUDA_HOME arch=$TORCH_CUDA_ARCH_LIST sources: $(ls csrc/cuda/*.cu | tr '\n' ' ')"
MPLE_FORCE_CUDA=1 "$CUDA_VENV/bin/python" setup.py -q build_ext \
  --build-lib "$OUT/lib" --build-temp "$OUT/temp"

"$CUDA_VENV/bin/python" - "$OUT/lib" <<'PY'
import glob, sys
import torch
lib = glob.glob(f"{sys.argv[1]}/mple_metrics/_C*.so")
assert len(lib) == 1, f"expected one built library, found {lib}"
torch.ops.load_library(lib[0])
ops = [name for name in torch._C._dispatch_get_all_op_names() if name.startswith("mple::")]
assert ops, "no mple:: ops registered"
missing = [op for op in ops if not torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA")]
if missing:
    sys.exit(f"cuda-check: ops without a CUDA kernel: {missing}")
print(f"cuda-check: OK, {len(ops)} ops with CUDA kernels: {sorted(ops)}")
PY
