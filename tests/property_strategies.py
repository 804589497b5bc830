"""Hypothesis building blocks shared by the property tests (tests/test_properties_*.py): extreme
values, integer dtypes that hold given ids, and memory layouts (permuted, strided over garbage,
stride-0 expanded) of a tensor.

Layouts are drawn *after* the values and may repeat values along one dimension (to make a stride-0
``expand`` possible), so a test computes its expectation from the tensor that :func:`arrange`
returns, never from the values it passed in.
"""

from __future__ import annotations

import math
import sys

import torch
from hypothesis import settings
from hypothesis import strategies as st

from mple_metrics.ops.arguments import INDEX_DTYPES

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DBL_MAX = sys.float_info.max
FLT_MAX = float(torch.finfo(torch.float32).max)
DBL_TRUE_MIN = 5e-324  # smallest positive subnormal float64
FLT_TRUE_MIN = float(torch.finfo(torch.float32).smallest_normal) * 2.0**-23  # 1.4e-45

#: Token ids at and around the int32 / int64 limits.
EXTREME_IDS = (0, 1, -1, INT32_MAX, INT32_MIN, INT32_MAX + 1, INT32_MIN - 1, 2**32, 2**53 + 1,
               INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1)

#: Log-probability-like values (<= 0) from the tiny to the huge, for float64 and for float32.
NONPOSITIVE_EXTREMES_64 = (0.0, -0.0, -DBL_TRUE_MIN, -2.2250738585072014e-308, -1e-300, -1e-10, -0.5,
                           -1.0, -2.0, -1e5, -1e300, -1e308, -DBL_MAX)
NONPOSITIVE_EXTREMES_32 = (0.0, -0.0, -FLT_TRUE_MIN, -1e-40, -1e-30, -1e-7, -0.5, -1.0, -2.0, -1e5,
                           -1e30, -1e38, -FLT_MAX)

FLOAT_DTYPES = (torch.float32, torch.float64)


def index_dtypes_holding(low: int, high: int) -> list[torch.dtype]:
    """The accepted integer dtypes whose range holds [low, high] (int64 always)."""
    out = []
    for dtype in INDEX_DTYPES:
        info = torch.iinfo(dtype)
        if info.min <= low and high <= info.max:
            out.append(dtype)
    return out


def index_tensor(draw, values, low: int, high: int) -> torch.Tensor:
    """``values`` (nested lists of ints in [low, high]) as a tensor of a drawn dtype that holds them."""
    dtype = draw(st.sampled_from(index_dtypes_holding(low, high)))
    return torch.tensor(values, dtype=dtype)


def _garbage_for(x: torch.Tensor):
    if x.is_floating_point():
        return math.nan
    info = torch.iinfo(x.dtype)
    return info.max if x.dtype == torch.uint8 else info.min


LAYOUTS = ("contiguous", "permuted", "strided", "expanded")


def arrange(draw, x: torch.Tensor, garbage=None, layouts=LAYOUTS) -> torch.Tensor:
    """``x`` in a drawn memory layout.

    ``contiguous``: a copy; ``permuted``: the values in storage of another dimension order (a
    transposed view); ``strided``: every other element of a larger buffer whose other elements hold
    ``garbage`` (NaN or an extreme id by default); ``expanded``: ``x`` made constant along one
    dimension of size >= 2 and returned as a stride-0 ``expand`` of its first slice (this changes the
    values: compute expectations from the result).
    """
    mode = draw(st.sampled_from(layouts))
    garbage = _garbage_for(x) if garbage is None else garbage
    if mode == "expanded":
        dims = [d for d in range(x.dim()) if x.shape[d] >= 2]
        if dims:
            d = draw(st.sampled_from(dims))
            return x.narrow(d, 0, 1).clone().expand(x.shape)
        mode = "contiguous"
    if mode == "permuted" and x.dim() >= 2:
        perm = draw(st.permutations(list(range(x.dim()))))
        inverse = [perm.index(d) for d in range(x.dim())]
        y = torch.empty([x.shape[p] for p in perm], dtype=x.dtype).permute(inverse)
        y.copy_(x)
        return y
    if mode == "strided" and x.dim() >= 1:
        d = draw(st.integers(0, x.dim() - 1))
        offset = draw(st.integers(0, 1))
        shape = list(x.shape)
        shape[d] = 2 * shape[d] + 1
        big = torch.full(shape, garbage, dtype=x.dtype)
        index = [slice(None)] * x.dim()
        index[d] = slice(offset, offset + 2 * x.shape[d], 2)
        y = big[tuple(index)]
        y.copy_(x)
        return y
    return x.clone()


def float_tensor(draw, shape, elements, dtype: torch.dtype) -> torch.Tensor:
    """A float64-drawn tensor of ``shape`` cast to ``dtype`` (values outside float32 become +-inf)."""
    count = math.prod(shape)
    values = draw(st.lists(elements, min_size=count, max_size=count))
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)


def scaled(factor: float) -> settings:
    """The loaded profile's settings with ``factor`` times its max_examples, for cheap properties
    (the profile is loaded before the test modules are imported, so ``thorough`` scales too)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))
