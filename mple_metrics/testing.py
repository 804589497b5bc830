"""Devices and dtypes the tests run over, in the pytorch_scatter style: tests are tables of cases
run over ``devices() x dtypes``.  CUDA cases always exist and are skipped, visibly, without a GPU."""

from __future__ import annotations

import torch

from . import build_info

#: Floating dtypes for differentiable ops (gradcheck always runs in float64).
FLOAT_DTYPES: list[torch.dtype] = [torch.float32, torch.float64]
#: Integer dtypes accepted for token ids and lengths.
INDEX_DTYPES: list[torch.dtype] = [torch.int64, torch.int32]


def cuda_usable() -> bool:
    """True when the CUDA kernels were compiled in and a GPU is present."""
    return bool(build_info()["cuda"]) and torch.cuda.is_available()


def devices() -> list:
    """pytest parameters: the CPU, and CUDA marked ``cuda`` and skipped when not usable."""
    import pytest

    reason = "no CUDA kernels compiled" if not build_info()["cuda"] else "no GPU available"
    return [
        pytest.param(torch.device("cpu"), id="cpu"),
        pytest.param(torch.device("cuda"), id="cuda",
                     marks=[pytest.mark.cuda, pytest.mark.skipif(not cuda_usable(), reason=reason)]),
    ]
