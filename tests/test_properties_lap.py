"""Property-based tests of the batched linear assignment: every drawn batch either gives, for each
problem, a valid assignment (distinct in-range columns, no +inf pair, -1 on padded rows) whose total
equals scipy.optimize.linear_sum_assignment's optimum (brute force over all permutations where scipy
cannot say), or raises the documented ValueError for the first failing problem: NaN or -inf in its
block ("contains NaN or -inf"), a finite entry above cost_magnitude_limit(rows, cols) ("has a finite
entry of magnitude"), no assignment avoiding +inf ("is infeasible"), more rows than columns, or
lengths out of range.

Drawn: batches of 0-4 problems up to 7 x 7 with ragged (and zero) row and column lengths, entries from
small integers (ties), ordinary floats, subnormals, signed zeros, +inf, the magnitude limit itself and
values just above it, NaN and -inf inside and outside the padding; float32 and float64; permuted,
strided and stride-0 layouts of the costs and lengths.  Runs in a child process (see
property_isolation.py).

Totals are compared with math.fsum (exactly rounded) to 1e-9 relative, widened by the problem's own
float64 resolution (a few (rows + cols)^2 ulps of its largest entry): an assignment of entries near
1e300 cannot be told from another by the 1e-300 entries beside them, by scipy or by anyone in float64.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment as scipy_lsa

from mple_metrics.ops import linear_sum_assignment
from mple_metrics.ops.lap import cost_magnitude_limit
from property_isolation import record_example
from property_strategies import DBL_MAX, DBL_TRUE_MIN, FLT_MAX, FLT_TRUE_MIN, arrange, index_tensor, scaled

INF, NAN = math.inf, math.nan
ULP = 2.0**-52


# ----------------------------------------------------------------------------- the independent model


def problem_status(block: np.ndarray, rows: int, cols: int, padded_rows: int, padded_cols: int) -> str:
    """What a problem must give, from its float64 values: "ok" or the error it must raise."""
    if not 0 <= rows <= padded_rows:
        return "bad_row_length"
    if not 0 <= cols <= padded_cols:
        return "bad_col_length"
    if rows > cols:
        return "more_rows"
    if np.isnan(block).any() or (block == -INF).any():
        return "invalid"
    finite = block[np.isfinite(block)]
    if finite.size and np.abs(finite).max() > cost_magnitude_limit(rows, cols):
        return "out_of_range"
    if rows:
        forbidden = np.where(np.isfinite(block), 0.0, 1.0)  # feasible iff some assignment costs 0 here
        if forbidden[scipy_lsa(forbidden)].sum() > 0:
            return "infeasible"
    return "ok"


ERROR_PATTERNS = {
    "bad_row_length": "row_lengths[{b}] = ",
    "bad_col_length": "col_lengths[{b}] = ",
    "more_rows": "problem {b} has more rows than columns",
    "invalid": "cost[{b}] contains NaN or -inf",
    "out_of_range": "cost[{b}] has a finite entry of magnitude",
    "infeasible": "cost[{b}] is infeasible",
}


def brute_force_total(block: np.ndarray) -> float:
    """The least exactly-rounded total over every injective map of the rows into the columns."""
    n, m = block.shape
    best = INF
    for cols in itertools.permutations(range(m), n):
        picked = block[np.arange(n), list(cols)]
        if np.isfinite(picked).all():
            best = min(best, math.fsum(picked))
    return best


def optimal_total(block: np.ndarray) -> tuple[float, str]:
    """scipy's optimal total (exactly rounded sum of its picks), or brute force where scipy fails."""
    try:
        r, c = scipy_lsa(block)
        total = math.fsum(block[r, c])
        if math.isfinite(total):
            return total, "scipy"
    except ValueError:
        pass
    assert block.shape[1] <= 7, "scipy failed on a problem too large for brute force"
    return brute_force_total(block), "brute force"


def tolerance(block: np.ndarray, expected: float) -> float:
    finite = np.abs(block[np.isfinite(block)])
    largest = float(finite.max()) if finite.size else 0.0
    n, m = block.shape
    return 1e-9 * (1.0 + abs(expected)) + 4.0 * (n + m + 1) ** 2 * ULP * largest


def check_solution(cost64: np.ndarray, rows, cols, got: torch.Tensor) -> None:
    assert got.dtype == torch.int64 and tuple(got.shape) == cost64.shape[:2]
    got = got.tolist()
    for b, (n, m) in enumerate(zip(rows, cols)):
        assert all(j == -1 for j in got[b][n:]), f"problem {b}: padded rows must be -1, got {got[b]}"
        picked = got[b][:n]
        assert all(0 <= j < m for j in picked) and len(set(picked)) == n, \
            f"problem {b} ({n}x{m}): not an assignment of distinct columns: {picked}"
        block = cost64[b, :n, :m]
        values = block[np.arange(n), picked] if n else np.zeros(0)
        assert np.isfinite(values).all(), f"problem {b}: assignment {picked} uses a +inf pair"
        total = math.fsum(values)
        expected, how = optimal_total(block) if n else (0.0, "empty")
        assert abs(total - expected) <= tolerance(block, expected), \
            f"problem {b} ({n}x{m}): total {total!r} of {picked}, {how} optimum {expected!r}"


def check_against_model(cost: torch.Tensor, row_lengths, col_lengths) -> torch.Tensor | None:
    """Runs the op and checks it against the model; returns the assignment when it succeeded."""
    cost64 = cost.double().numpy()
    batch, padded_rows, padded_cols = cost.shape
    rows = [padded_rows] * batch if row_lengths is None else row_lengths.tolist()
    cols = [padded_cols] * batch if col_lengths is None else col_lengths.tolist()
    record_example(cost=cost, row_lengths=row_lengths, col_lengths=col_lengths)
    if row_lengths is None and col_lengths is None and padded_rows > padded_cols:
        with pytest.raises(ValueError, match="cost has more rows than columns"):
            linear_sum_assignment(cost, row_lengths, col_lengths)
        return None
    statuses = []
    for b in range(batch):
        n, m = rows[b], cols[b]
        block = cost64[b, :max(n, 0), :max(m, 0)]
        statuses.append(problem_status(block, n, m, padded_rows, padded_cols))
    failing = [b for b, s in enumerate(statuses) if s != "ok"]
    event(f"outcome: {statuses[failing[0]] if failing else 'solved'}")
    if failing:
        b = failing[0]
        with pytest.raises(ValueError) as raised:
            linear_sum_assignment(cost, row_lengths, col_lengths)
        expected = ERROR_PATTERNS[statuses[b]].format(b=b)
        assert str(raised.value).startswith(expected), f"expected {expected!r}..., got {raised.value}"
        return None
    got = linear_sum_assignment(cost, row_lengths, col_lengths)
    check_solution(cost64, rows, cols, got)
    return got


# ----------------------------------------------------------------------------- strategies


ORDINARY_64 = st.one_of(st.integers(-3, 3).map(float), st.floats(-1e3, 1e3),
                        st.sampled_from([0.0, -0.0, DBL_TRUE_MIN, -DBL_TRUE_MIN, 2.2250738585072014e-308,
                                         1e-300, -1e-300, INF]))
ORDINARY_32 = st.one_of(st.integers(-3, 3).map(float), st.floats(-1e3, 1e3, width=32),
                        st.sampled_from([0.0, -0.0, FLT_TRUE_MIN, -FLT_TRUE_MIN, 1e-40, FLT_MAX, -FLT_MAX,
                                         1e38, INF]))
INVALID = st.sampled_from([NAN, -INF])


def limit_entries(rows: int, cols: int, over: bool):
    """Entries at the magnitude limit of a rows x cols problem (and, with ``over``, just above it)."""
    limit = cost_magnitude_limit(rows, cols)
    values = [limit, -limit, limit / 2, -limit / 2, np.nextafter(limit, 0.0), 1.0, -1.0, DBL_TRUE_MIN,
              -DBL_TRUE_MIN, 1e-300, 0.0, INF]
    if over:
        values += [np.nextafter(limit, INF), -np.nextafter(limit, INF), 1e308, -DBL_MAX]
    return st.sampled_from([float(v) for v in values])


@st.composite
def lap_batches(draw, max_size=7):
    """(cost, row_lengths, col_lengths) of a random padded batch; lengths may be None (full)."""
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    batch = draw(st.integers(0, 4))
    shapes = []
    for _ in range(batch):
        m = draw(st.integers(0, max_size))
        n = draw(st.integers(0, m)) if draw(st.integers(0, 9)) else draw(st.integers(0, max_size))
        shapes.append((n, m))
    padded_rows = max([n for n, _ in shapes] + [0]) + draw(st.integers(0, 1))
    padded_cols = max([m for _, m in shapes] + [0]) + draw(st.integers(0, 1))
    if draw(st.integers(0, 4)) == 0:  # all problems full size (lengths may then be omitted)
        padded_rows = min(padded_rows, padded_cols) if draw(st.integers(0, 9)) else padded_rows
        shapes = [(padded_rows, padded_cols)] * batch
    cost = torch.empty(batch, padded_rows, padded_cols, dtype=torch.float64)
    garbage = draw(st.sampled_from([NAN, -INF, INF, 1e308, 0.0]))
    cost.fill_(garbage)
    for b, (n, m) in enumerate(shapes):
        mode = draw(st.sampled_from(["ordinary"] * 3 + ["forbidden", "limit", "over_limit", "invalid"]))
        if mode == "forbidden":  # half the pairs +inf: infeasible problems and long augmenting paths
            elements = st.one_of(st.just(INF), ORDINARY_32 if dtype == torch.float32 else ORDINARY_64)
        elif dtype == torch.float32 or mode == "ordinary":
            elements = ORDINARY_32 if dtype == torch.float32 else ORDINARY_64
        elif mode == "invalid":
            elements = st.one_of(ORDINARY_64, INVALID)
        else:
            elements = limit_entries(min(n, m), m, over=mode == "over_limit")
        if dtype == torch.float32 and mode == "invalid":
            elements = st.one_of(ORDINARY_32, INVALID)
        values = draw(st.lists(elements, min_size=n * m, max_size=n * m))
        if n * m:
            cost[b, :n, :m] = torch.tensor(values, dtype=torch.float64).reshape(n, m)
    cost = arrange(draw, cost.to(dtype), garbage=draw(st.sampled_from([NAN, -INF, 0.0])))
    if all(s == (padded_rows, padded_cols) for s in shapes) and draw(st.booleans()):
        return cost, None, None
    row_lengths = arrange(draw, index_tensor(draw, [n for n, _ in shapes], 0, 255).reshape(batch))
    col_lengths = arrange(draw, index_tensor(draw, [m for _, m in shapes], 0, 255).reshape(batch))
    return cost, row_lengths, col_lengths


# ----------------------------------------------------------------------------- properties


@scaled(5)
@given(lap_batches())
def test_equals_scipy_or_raises_for_the_first_failing_problem(problem):
    cost, row_lengths, col_lengths = problem
    got = check_against_model(cost, row_lengths, col_lengths)
    if got is None:
        return
    # Deterministic, and independent of the layout and of the other problems in the batch.
    assert torch.equal(linear_sum_assignment(cost.contiguous(), row_lengths, col_lengths), got)
    for b in range(cost.shape[0]):
        rows = None if row_lengths is None else row_lengths[b:b + 1]
        cols = None if col_lengths is None else col_lengths[b:b + 1]
        assert torch.equal(linear_sum_assignment(cost[b:b + 1], rows, cols), got[b:b + 1]), f"problem {b} alone"


@st.composite
def larger_problems(draw):
    """Problems up to 24 x 24 (the JV initialisation on square ones, long augmenting paths), values
    from a drawn NumPy seed: ordinary, integer ties, mostly forbidden, or spanning the allowed range."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    modes = ["uniform", "ties", "forbidden"] + (["huge_range"] if dtype == torch.float64 else [])
    batch = draw(st.integers(1, 3))
    shapes = []
    for _ in range(batch):
        m = draw(st.integers(8, 24))
        shapes.append((m if draw(st.booleans()) else draw(st.integers(1, m)), m))
    padded_rows, padded_cols = max(n for n, _ in shapes), max(m for _, m in shapes)
    cost = np.full((batch, padded_rows, padded_cols), NAN)
    for b, (n, m) in enumerate(shapes):
        mode = draw(st.sampled_from(modes))
        if mode == "uniform":
            block = rng.uniform(-1e3, 1e3, (n, m))
        elif mode == "ties":
            block = rng.integers(0, 3, (n, m)).astype(np.float64)
        elif mode == "forbidden":
            block = np.where(rng.random((n, m)) < draw(st.sampled_from([0.5, 0.8, 0.95])), INF,
                             rng.uniform(0, 10, (n, m)))
        else:
            limit = cost_magnitude_limit(n, m)
            block = rng.choice([limit, -limit, limit / 3, -limit / 7, 1.0, -1.0, 1e-300, DBL_TRUE_MIN, 0.0],
                               (n, m))
        cost[b, :n, :m] = block
    cost_t = arrange(draw, torch.from_numpy(cost).to(dtype))
    rows = torch.tensor([n for n, _ in shapes])
    cols = torch.tensor([m for _, m in shapes])
    return cost_t, rows, cols


@given(larger_problems())
def test_larger_problems_equal_scipy(problem):
    check_against_model(*problem)


@st.composite
def huge_range_problems(draw):
    """One problem up to 5 x 6 whose entries mix +-limit, limit/2, tiny and subnormal values: all
    within cost_magnitude_limit, spanning ~600 orders of magnitude."""
    m = draw(st.integers(1, 6))
    n = draw(st.integers(1, min(m, 5)))
    values = draw(st.lists(limit_entries(n, m, over=False), min_size=n * m, max_size=n * m))
    cost = torch.tensor(values, dtype=torch.float64).reshape(1, n, m)
    return arrange(draw, cost)


@scaled(5)
@given(huge_range_problems())
def test_costs_spanning_the_whole_allowed_range_are_solved_optimally(cost):
    got = check_against_model(cost, None, None)
    if got is not None:
        block = cost[0].numpy()
        picked = block[np.arange(block.shape[0]), got[0].numpy()]
        brute = brute_force_total(block)
        assert abs(math.fsum(picked) - brute) <= tolerance(block, brute), \
            f"total {math.fsum(picked)!r}, brute force {brute!r}"


@given(st.data())
def test_lengths_out_of_range_are_refused_naming_the_problem(data):
    draw = data.draw
    batch = draw(st.integers(1, 4))
    padded_rows, padded_cols = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    cost = torch.zeros(batch, padded_rows, padded_cols, dtype=torch.float64)
    rows = draw(st.lists(st.integers(-3, padded_rows + 2), min_size=batch, max_size=batch))
    cols = draw(st.lists(st.integers(-3, padded_cols + 2), min_size=batch, max_size=batch))
    check_against_model(cost, torch.tensor(rows), torch.tensor(cols))


def test_meta_costs_are_refused_by_name():
    with pytest.raises(ValueError, match="cost is on the meta device"):
        linear_sum_assignment(torch.zeros(1, 2, 2, device="meta"))
