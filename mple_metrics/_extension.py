"""Loads the compiled extension ``mple_metrics._C`` that registers the ``torch.ops.mple`` kernels.

There is no pure-Python fallback: a missing or broken build is an ImportError that says how to build.
"""

from __future__ import annotations

import torch  # loads libtorch and libc10, which _C links against

try:
    from . import _C  # noqa: F401  (importing registers torch.ops.mple.*)
except ImportError as error:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "mple_metrics: the compiled extension mple_metrics._C could not be imported "
        f"({error}). Build it from the source tree with "
        "`pip install --no-build-isolation -e .` (or `make install`), with the same torch that is "
        "installed now; set MPLE_NO_CUDA=1 to build the CPU kernels only."
    ) from error


def build_info() -> dict[str, object]:
    """Backends compiled into the extension and the torch it runs with.

    Returns ``{"cpu": True, "cuda": bool, "openmp": bool, "torch": str, "cuda_available": bool}``;
    ``cuda`` says whether CUDA kernels were compiled, ``cuda_available`` whether a GPU is usable now.
    """
    return {
        "cpu": True,
        "cuda": bool(_C.cuda_compiled()),
        "openmp": bool(_C.openmp_compiled()),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
    }
