"""Build of the single compiled extension ``mple_metrics._C``.

CPU sources (csrc/*.cpp, csrc/cpu/*.cpp) are always compiled.  CUDA sources (csrc/cuda/*.cu) are
compiled when both a CUDA toolkit (nvcc) and a CUDA build of torch are present.  Override with
``MPLE_FORCE_CUDA=1`` (build CUDA or fail) or ``MPLE_NO_CUDA=1`` (CPU only).  The build prints which
backends it compiles; ``mple_metrics.build_info()`` reports them at run time.  No network access.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup

import torch
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _want_cuda() -> bool:
    if _flag("MPLE_NO_CUDA"):
        return False
    can = torch.version.cuda is not None and CUDA_HOME is not None
    if _flag("MPLE_FORCE_CUDA"):
        if not can:
            sys.exit(
                "MPLE_FORCE_CUDA=1 but CUDA cannot be built: "
                f"torch.version.cuda={torch.version.cuda!r}, CUDA_HOME={CUDA_HOME!r} "
                "(install a CUDA build of torch and a CUDA toolkit with nvcc)."
            )
        return True
    return can


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _extension():
    with_cuda = _want_cuda()
    sources = _sources("csrc/*.cpp") + _sources("csrc/cpu/*.cpp")
    # at::parallel_for expands OpenMP pragmas inline in the extension, so the extension itself must be
    # compiled with -fopenmp or the CPU kernels silently run on one thread.
    # No -std flag: torch's build helpers pick the standard its headers need (C++17, or C++20 from 2.10).
    cxx = ["-O3", "-fopenmp"]
    define_macros = [("TORCH_EXTENSION_NAME", "_C")]
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    backends = ["cpu"]
    if with_cuda:
        sources += _sources("csrc/cuda/*.cu")
        define_macros.append(("MPLE_WITH_CUDA", None))
        backends.append("cuda")
        nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
        ext = CUDAExtension(
            "mple_metrics._C",
            sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
            extra_link_args=["-fopenmp"],
        )
    else:
        ext = CppExtension(
            "mple_metrics._C",
            sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx},
            extra_link_args=["-fopenmp"],
        )
    print(f"mple_metrics: compiling backends {'+'.join(backends)} "
          f"(torch {torch.__version__}, CUDA_HOME={CUDA_HOME})", flush=True)
    return ext


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
