"""Constructor-argument checks shared by the loss modules: each raises ``ValueError`` naming the
argument, so a bad hyper-parameter is reported when the module is built, not at the first batch."""

from __future__ import annotations

import math
import numbers

#: The reductions every loss module accepts, as ``torch.nn`` losses name them.
REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean")


def check_reduction(reduction: object) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    return reduction


def check_token_id(value: object, name: str) -> int:
    """A non-negative int token id (bools refused); the upper bound V is checked per batch."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative int token id, got {value!r}")
    return int(value)


def check_non_negative_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_optional_probability(value: object, name: str) -> float | None:
    """None, or a probability in (0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be None or a probability in (0, 1], got {value!r}")
    return float(value)
