"""Paired bootstrap over sentences for ratio statistics ``sum(a - b) / sum(weights)``.

Sentences are the resampling unit: one resample draws ``n`` sentence indices with replacement and
uses the *same* indices for ``a``, ``b`` and ``weights`` (paired), so what is shared by ``a`` and
``b`` (a sentence's difficulty, say) cancels instead of widening the interval.  With the default
weights (one per sentence) the statistic is the mean difference per sentence; with token counts as
weights it is the per-token value ``sum(a - b) / sum(n_tokens)`` (a ratio estimator).

Intervals:

- ``"percentile"`` (default): the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of
  the resampled statistics (Efron & Tibshirani 1993, §13.3; ``numpy.quantile``'s linear method).
- ``"basic"``: the percentile interval reflected about the estimate, ``2θ̂ - q_hi, 2θ̂ - q_lo``
  (Davison & Hinkley 1997, §5.2).

How many: every command asks for at least :data:`MIN_RESAMPLES` resamples (:func:`check_resamples`):
with fewer, the interval's end points are quantiles of a handful of values (with one resample both
are that resample, which need not even contain the estimate).  How few sentences: with one, every
resample is that sentence and the "interval" has width 0, so none is reported; below
:data:`MIN_RELIABLE_UNITS` the resamples take few distinct values and the percentile interval is
too narrow (it covers the truth less often than it says).  :func:`interval_warning` words both
cases the same way for every estimator.

Determinism: for given inputs, ``n_resamples`` and ``seed`` the result is the same on every run and
machine (``numpy.random.Generator(PCG64(seed))``; indices are drawn in chunks whose size depends on
the number of sentences only).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP_METHODS: tuple[str, ...] = ("percentile", "basic")
#: Fewest bootstrap resamples a command accepts (``--resamples``, ``--bootstrap``).
MIN_RESAMPLES = 100
#: Fewest resampling units (sentences, methods) for which a 95% bootstrap interval is worth reading.
MIN_RELIABLE_UNITS = 10
#: Upper bound on the number of resampled indices held at once (chunk rows x sentences): about
#: 32 MiB of int64 indices plus as much for the gathered values.
_MAX_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class BootstrapInterval:
    """A bootstrap confidence interval, in the unit of the inputs (per unit of weight).

    ``estimate`` is the statistic on the full data, ``low``/``high`` the interval at ``confidence``,
    ``standard_error`` the standard deviation of the resampled statistics (ddof = 1; 0 when
    ``n_resamples`` = 1).
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    seed: int
    method: str
    standard_error: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_resamples(n_resamples: object, option: str = "n_resamples") -> int:
    """``n_resamples`` as an int >= :data:`MIN_RESAMPLES`, else a ValueError/TypeError naming ``option``."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral):
        raise TypeError(f"{option} must be an integer >= {MIN_RESAMPLES}, got {n_resamples!r}")
    if n_resamples < MIN_RESAMPLES:
        raise ValueError(f"{option} must be >= {MIN_RESAMPLES} bootstrap resamples (fewer do not make a 95% "
                         f"interval: its ends would be quantiles of a handful of values), got {n_resamples}")
    return int(n_resamples)


def has_interval(n_units: int) -> bool:
    """Whether a bootstrap interval exists over ``n_units`` resampling units (at least 2: with one,
    every resample is the same unit and the interval has width 0)."""
    return n_units >= 2


def interval_warning(n_units: int, units: str = "sentences") -> str | None:
    """The warning a bootstrap interval over ``n_units`` ``units`` needs, or None (module docstring)."""
    if not has_interval(n_units):
        return (f"only {n_units} {units}: a bootstrap interval needs at least 2 (every resample is the same), "
                f"so no interval is reported (null)")
    if n_units < MIN_RELIABLE_UNITS:
        return (f"only {n_units} {units}: the bootstrap 95% interval is unreliable below {MIN_RELIABLE_UNITS} "
                f"{units} (the resamples take few distinct values, so it is too narrow)")
    return None


def as_per_sentence(value: object, name: str) -> np.ndarray:
    """``value`` as a fresh (n,) finite float64 array, n >= 1, one value per sentence.

    Raises TypeError (non-numeric, bool) or ValueError (not 1-D, empty, non-finite) naming ``name``.
    """
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged nested sequences, objects numpy cannot convert
        raise TypeError(f"{name} must be a 1-D sequence of real numbers ({error})") from None
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sentence), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one sentence is needed")
    array = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} must be finite; index {int(bad[0])} is {array[bad[0]]}")
    return array


def _check_settings(n_resamples: object, confidence: object, seed: object, method: object) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral):
        raise TypeError(f"n_resamples must be an int, got {type(n_resamples).__name__}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"confidence must be a number in (0, 1), got {type(confidence).__name__}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method must be one of {BOOTSTRAP_METHODS}, got {method!r}")


def resampled_ratios(values: np.ndarray, weights: np.ndarray, n_resamples: int,
                     seed: int) -> np.ndarray:
    """``sum(values[idx]) / sum(weights[idx])`` for ``n_resamples`` index draws ``idx`` of size n.

    ``values``, ``weights``: (n,) float64 (weights > 0).  Returns (n_resamples,) float64.  Indices
    are drawn chunk by chunk from one ``Generator(PCG64(seed))`` stream.
    """
    n = values.shape[0]
    rng = np.random.Generator(np.random.PCG64(seed))
    chunk = max(1, min(n_resamples, _MAX_CHUNK_ELEMENTS // n))
    unit_weights = bool(np.all(weights == 1.0))
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(rows, n))
        numerator = values[idx].sum(axis=1)
        denominator = float(n) if unit_weights else weights[idx].sum(axis=1)
        out[start:start + rows] = numerator / denominator
    return out


def paired_bootstrap(a: object, b: object | None = None, weights: object | None = None, *,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     method: str = "percentile") -> BootstrapInterval:
    """Bootstrap interval of ``sum(a - b) / sum(weights)`` with sentences as the resampling unit.

    Args:
        a: (n,) per-sentence values (any real unit, e.g. bits per sentence).
        b: (n,) values paired with ``a`` (same sentences, same order), or ``None`` for 0.
        weights: (n,) positive weights (e.g. tokens per sentence), or ``None`` for 1 per sentence
            (the statistic is then the mean of ``a - b``).
        n_resamples: number of bootstrap resamples (>= 1).
        confidence: coverage of the interval, in (0, 1).
        seed: seed of ``numpy.random.Generator(PCG64(seed))`` (>= 0).
        method: ``"percentile"`` or ``"basic"`` (see the module docstring).

    Returns:
        :class:`BootstrapInterval`; ``estimate`` is the statistic on the full data.

    Raises:
        TypeError / ValueError naming the argument: non-numeric or non-1-D inputs, empty inputs,
        lengths that differ, non-finite values, weights <= 0, out-of-range settings.
    """
    _check_settings(n_resamples, confidence, seed, method)
    values = as_per_sentence(a, "a")
    if b is not None:
        other = as_per_sentence(b, "b")
        if other.shape != values.shape:
            raise ValueError(f"b must have one value per sentence like a ({values.shape[0]}), "
                             f"got {other.shape[0]}")
        values = values - other
    if weights is None:
        w = np.ones_like(values)
    else:
        w = as_per_sentence(weights, "weights")
        if w.shape != values.shape:
            raise ValueError(f"weights must have one value per sentence ({values.shape[0]}), got "
                             f"{w.shape[0]}")
        bad = np.flatnonzero(w <= 0)
        if bad.size:
            raise ValueError(f"weights must be > 0; index {int(bad[0])} is {w[bad[0]]}")
    estimate = float(values.sum() / w.sum())
    stats = resampled_ratios(values, w, int(n_resamples), int(seed))
    alpha = 1.0 - float(confidence)
    q_low, q_high = (float(q) for q in np.quantile(stats, [alpha / 2, 1.0 - alpha / 2]))
    if method == "basic":
        q_low, q_high = 2.0 * estimate - q_high, 2.0 * estimate - q_low
    std = float(stats.std(ddof=1)) if stats.size > 1 else 0.0
    if not math.isfinite(std):
        std = 0.0
    return BootstrapInterval(estimate=estimate, low=q_low, high=q_high,
                             confidence=float(confidence), n_resamples=int(n_resamples),
                             seed=int(seed), method=method, standard_error=std)
