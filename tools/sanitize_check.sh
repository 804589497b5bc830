#!/usr/bin/env bash
# Runs the CPU kernels' tests under AddressSanitizer and libstdc++ assertions (bounds-checked
# operator[] on std::vector and friends): builds a copy of the source tree with
# -fsanitize=address -D_GLIBCXX_ASSERTIONS into a scratch folder, then runs the op tests (and the
# property-based tests, if given as arguments) against that build with libasan preloaded into Python.
# Any out-of-bounds access, use-after-free or failed assertion aborts with a report.
#
#   bash tools/sanitize_check.sh                        # op tests
#   bash tools/sanitize_check.sh tests/test_properties_lap.py --hypothesis-profile=thorough
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
SCRATCH=${SCRATCH:-$(mktemp -d /tmp/mple-sanitize.XXXXXX)}
LIBASAN=$(gcc -print-file-name=libasan.so)
# libstdc++ preloaded too: Python itself does not link it, and ASan's __cxa_throw interceptor needs
# the real one at start-up, or the first C++ exception (any TORCH_CHECK) aborts.
LIBSTDCXX=$(gcc -print-file-name=libstdc++.so.6)
[ -f "$LIBASAN" ] || { echo "sanitize-check: libasan.so not found (gcc's AddressSanitizer runtime)" >&2; exit 1; }

echo "sanitize-check: building an ASan copy in $SCRATCH" >&2
mkdir -p "$SCRATCH"
# The tracked and untracked source files, without the build outputs of this tree.
git ls-files --cached --others --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$SCRATCH"
cd "$SCRATCH"
rm -f mple_metrics/_C*.so
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS -O1 -g" \
LDFLAGS="-fsanitize=address" MPLE_NO_CUDA=1 \
  "$PY" setup.py -q build_ext --inplace >build.log 2>&1 || { tail -30 build.log >&2; exit 1; }

TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
  TESTS=(tests/test_bleu_ops.py tests/test_axe.py tests/test_lap.py tests/test_oaxe.py)
fi
# detect_leaks=0: CPython and torch keep allocations alive until exit, which LeakSanitizer reports.
# The scratch folder comes first on sys.path, so `import mple_metrics` finds the ASan build.
PYTHONPATH="$SCRATCH" LD_PRELOAD="$LIBASAN $LIBSTDCXX" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
  "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
echo "sanitize-check: no sanitizer report ($SCRATCH)" >&2
