"""Batched linear assignment against scipy.optimize.linear_sum_assignment and brute force.

Random problems are drawn fresh on every run; each assertion message carries the seed that
reproduces it (``fresh_generator``).
"""

from __future__ import annotations

import itertools
import math
import secrets
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mple_metrics.ops import linear_sum_assignment
from mple_metrics.ops.lap import (LAP_INFEASIBLE, LAP_INVALID_ENTRY, LAP_MORE_ROWS_THAN_COLS, LAP_OK,
                                  cost_magnitude_limit)
from mple_metrics.ops.reference.lap import assignment_cost, linear_sum_assignment_reference
from mple_metrics.testing import FLOAT_DTYPES, cuda_usable, devices

KINDS = ("uniform", "integer_ties", "neg_log_softmax", "rectangular", "ragged", "inf_entries")


def fresh_generator() -> tuple[torch.Generator, int]:
    seed = secrets.randbits(48)
    return torch.Generator().manual_seed(seed), seed


def random_batch(kind: str, batch: int, max_size: int, gen: torch.Generator, dtype=torch.float64):
    """A padded batch (B, N, M) of `kind` problems with lengths; padding holds NaN (must be ignored)."""
    sizes = torch.randint(1, max_size + 1, (batch,), generator=gen)
    if kind == "rectangular":
        rows = torch.stack([torch.randint(1, int(m) + 1, (1,), generator=gen)[0] for m in sizes])
        cols = sizes
    elif kind == "ragged":
        extra = torch.randint(0, 4, (batch,), generator=gen)
        rows, cols = sizes, sizes + extra * (torch.rand(batch, generator=gen) < 0.5)
    else:
        rows, cols = sizes, sizes
    n_pad, m_pad = int(rows.max()), int(cols.max())
    if kind == "integer_ties":
        cost = torch.randint(0, 4, (batch, n_pad, m_pad), generator=gen).to(torch.float64)
    elif kind == "neg_log_softmax":
        logits = 3.0 * torch.randn(batch, n_pad, 2 * m_pad, generator=gen, dtype=torch.float64)
        cost = -torch.log_softmax(logits, dim=-1)[:, :, :m_pad]
    else:
        cost = torch.rand(batch, n_pad, m_pad, generator=gen, dtype=torch.float64) * 10.0 - 2.0
    if kind == "inf_entries":
        forbidden = torch.rand(cost.shape, generator=gen) < 0.3
        for b in range(batch):  # keep one random assignment allowed so the problem stays feasible
            perm = torch.randperm(int(cols[b]), generator=gen)[: int(rows[b])]
            forbidden[b, torch.arange(int(rows[b])), perm] = False
        cost = cost.masked_fill(forbidden, math.inf)
    cost = cost.to(dtype)
    pad = (torch.arange(n_pad)[None, :, None] >= rows[:, None, None]) | (
        torch.arange(m_pad)[None, None, :] >= cols[:, None, None])
    return cost.masked_fill(pad, math.nan), rows, cols


def check_assignment(cost, rows, cols, got, context: str) -> None:
    """`got` is a valid assignment: distinct in-range allowed columns, -1 on padded rows."""
    got = got.cpu()
    for b in range(cost.shape[0]):
        n, m = int(rows[b]), int(cols[b])
        assert torch.all(got[b, n:] == -1), f"{context}: padded rows of problem {b} not -1"
        picked = got[b, :n]
        assert torch.all((picked >= 0) & (picked < m)), f"{context}: problem {b} column out of range"
        assert len(set(picked.tolist())) == n, f"{context}: problem {b} reuses a column"
        assert torch.isfinite(cost[b, torch.arange(n), picked].cpu()).all(), \
            f"{context}: problem {b} uses a forbidden (+inf) pair"


def assert_same_totals(cost, rows, cols, got, context: str) -> None:
    check_assignment(cost, rows, cols, got, context)
    expected = assignment_cost(cost, linear_sum_assignment_reference(cost, rows, cols))
    actual = assignment_cost(cost, got)
    scale = 1.0 + expected.abs()
    bad = ((actual - expected).abs() > 1e-9 * scale).nonzero().flatten().tolist()
    assert not bad, (f"{context}: total cost differs from scipy on problems {bad[:5]}: "
                     f"{actual[bad[:5]].tolist()} vs {expected[bad[:5]].tolist()}")


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("kind", KINDS)
def test_matches_scipy_on_random_problems(device, kind):
    # 6 kinds x (200 + 8) problems per device: > 1,000 fresh problems, sizes 1..48 and up to 256.
    for dtype in FLOAT_DTYPES:
        gen, seed = fresh_generator()
        batch_size = 100
        for max_size in (8, 48):
            cost, rows, cols = random_batch(kind, batch_size, max_size, gen, dtype)
            got = linear_sum_assignment(cost.to(device), rows.to(device), cols.to(device))
            assert got.dtype == torch.int64 and got.shape == cost.shape[:2]
            assert_same_totals(cost, rows, cols, got,
                               f"{kind} {dtype} max_size={max_size} seed={seed}")
    gen, seed = fresh_generator()
    cost, rows, cols = random_batch(kind, 8, 256, gen)
    got = linear_sum_assignment(cost.to(device), rows.to(device), cols.to(device))
    assert_same_totals(cost, rows, cols, got, f"{kind} large seed={seed}")


def all_assignment_costs(cost: np.ndarray) -> np.ndarray:
    """Total cost of every injective map of the rows into the columns (brute force)."""
    n, m = cost.shape
    maps = np.array(list(itertools.permutations(range(m), n)), dtype=np.int64).reshape(-1, n)
    return cost[np.arange(n)[None, :], maps].sum(axis=1)


@pytest.mark.parametrize("device", devices())
def test_brute_force_small_problems(device):
    gen, seed = fresh_generator()
    for n, m in [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (2, 5), (3, 6), (4, 7)]:
        for kind in ("uniform", "integer_ties", "neg_log_softmax"):
            if kind == "integer_ties":
                cost = torch.randint(0, 3, (6, n, m), generator=gen).to(torch.float64)
            elif kind == "neg_log_softmax":
                cost = -torch.log_softmax(torch.randn(6, n, m, generator=gen, dtype=torch.float64), -1)
            else:
                cost = torch.rand(6, n, m, generator=gen, dtype=torch.float64)
            got = linear_sum_assignment(cost.to(device)).cpu()
            for b in range(cost.shape[0]):
                best = all_assignment_costs(cost[b].numpy()).min()
                total = float(cost[b, torch.arange(n), got[b]].sum())
                assert sorted(set(got[b].tolist())) == sorted(got[b].tolist())
                assert abs(total - best) <= 1e-12 * (1 + abs(best)), \
                    f"{kind} {n}x{m} seed={seed} problem {b}: {total} vs brute force {best}"


@pytest.mark.parametrize("device", devices())
def test_deterministic_and_independent_of_strides(device):
    gen, seed = fresh_generator()
    cost, rows, cols = random_batch("integer_ties", 64, 20, gen)
    cost, rows, cols = cost.to(device), rows.to(device), cols.to(device)
    first = linear_sum_assignment(cost, rows, cols)
    assert torch.equal(first, linear_sum_assignment(cost, rows, cols)), f"seed={seed}"
    # The same problems stored transposed (non-contiguous view of the same values).
    strided = cost.transpose(1, 2).contiguous().transpose(1, 2)
    assert not strided.is_contiguous()
    assert torch.equal(first, linear_sum_assignment(strided, rows, cols)), f"seed={seed}"


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="no GPU with the CUDA kernels")
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_equals_cpu_exactly(kind):
    """Both backends run the same steps in float64 with the same tie rule: identical output."""
    for dtype in FLOAT_DTYPES:
        gen, seed = fresh_generator()
        for max_size in (8, 64, 256):
            cost, rows, cols = random_batch(kind, 64 if max_size < 256 else 8, max_size, gen, dtype)
            on_cpu = linear_sum_assignment(cost, rows, cols)
            on_gpu = linear_sum_assignment(cost.cuda(), rows.cuda(), cols.cuda())
            assert on_gpu.device.type == "cuda"
            assert torch.equal(on_cpu, on_gpu.cpu()), f"{kind} {dtype} {max_size} seed={seed}"


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="no GPU with the CUDA kernels")
@pytest.mark.parametrize("size", [300, 400, 600, 1200])
def test_cuda_equals_cpu_on_every_shared_memory_layout(size):
    """N = 300, 400, 600: 3, 2 and 1 problems per block in shared memory; N = 1200: the global
    workspace.  Square problems, 5 of them (a partial last block), bit for bit."""
    gen, seed = fresh_generator()
    cost = -torch.log_softmax(3 * torch.randn(5, size, size, generator=gen, dtype=torch.float64), -1)
    rows = torch.tensor([size, size - 3, size, size - 1, size])
    cols = torch.tensor([size, size, size - 2, size, size])
    rows = torch.minimum(rows, cols)
    on_cpu = linear_sum_assignment(cost, rows, cols)
    on_gpu = linear_sum_assignment(cost.cuda(), rows.cuda(), cols.cuda())
    assert torch.equal(on_cpu, on_gpu.cpu()), f"N={size} seed={seed}"


@pytest.mark.parametrize("device", devices())
def test_empty_problems(device):
    empty_batch = linear_sum_assignment(torch.zeros(0, 3, 4, device=device))
    assert empty_batch.shape == (0, 3)
    no_rows = linear_sum_assignment(torch.zeros(2, 0, 4, device=device))
    assert no_rows.shape == (2, 0)
    cost = torch.rand(3, 4, 4, device=device)
    lengths = torch.tensor([0, 2, 4], device=device)
    got = linear_sum_assignment(cost, lengths, lengths).cpu()
    assert torch.all(got[0] == -1) and torch.all(got[1, 2:] == -1)
    check_assignment(cost.cpu(), lengths.cpu(), lengths.cpu(), got, "zero lengths")
    # No rows but some columns, and a zero-width batch: both legal.
    got = linear_sum_assignment(cost, torch.tensor([0, 0, 0], device=device))
    assert torch.all(got == -1)


@pytest.mark.parametrize("device", devices())
def test_raw_op_reports_status_per_problem(device):
    cost = torch.rand(4, 3, 3, dtype=torch.float64)
    cost[1, 0, 2] = math.nan
    cost[2, :, 0] = math.inf
    cost[2, :, 1] = math.inf  # three rows, one usable column
    lengths = torch.tensor([3, 3, 3, 3])
    col_lengths = torch.tensor([3, 3, 3, 2])
    assignment, status = torch.ops.mple.linear_sum_assignment(
        cost.to(device), lengths.to(device), col_lengths.to(device))
    assert status.cpu().tolist() == [LAP_OK, LAP_INVALID_ENTRY, LAP_INFEASIBLE, LAP_MORE_ROWS_THAN_COLS]
    assert torch.all(assignment[1:].cpu() == -1)
    check_assignment(cost[:1], lengths[:1], col_lengths[:1], assignment[:1], "status")


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    gen, _ = fresh_generator()
    for kind in ("uniform", "ragged", "inf_entries"):
        cost, rows, cols = random_batch(kind, 5, 6, gen)
        torch.library.opcheck(torch.ops.mple.linear_sum_assignment,
                              (cost.to(device), rows.to(device), cols.to(device)))


@pytest.mark.parametrize("device", devices())
def test_bad_values_name_the_problem(device):
    cost = torch.rand(4, 3, 3, device=device)
    with_nan = cost.clone()
    with_nan[2, 1, 1] = math.nan
    with pytest.raises(ValueError, match=r"cost\[2\] contains NaN"):
        linear_sum_assignment(with_nan)
    with_neg_inf = cost.clone()
    with_neg_inf[1, 0, 0] = -math.inf
    with pytest.raises(ValueError, match=r"cost\[1\] contains NaN or -inf"):
        linear_sum_assignment(with_neg_inf)
    infeasible = cost.clone()
    infeasible[3, 0, :2] = math.inf
    infeasible[3, 1, :2] = math.inf  # rows 0 and 1 both need column 2
    with pytest.raises(ValueError, match=r"cost\[3\] is infeasible"):
        linear_sum_assignment(infeasible)
    all_forbidden_row = cost.clone()
    all_forbidden_row[0, 2, :] = math.inf
    with pytest.raises(ValueError, match=r"cost\[0\] is infeasible"):
        linear_sum_assignment(all_forbidden_row)
    # NaN in the padding is ignored.
    padded = cost.clone()
    padded[:, 2, :] = math.nan
    linear_sum_assignment(padded, torch.full((4,), 2, device=device))


@pytest.mark.parametrize("device", devices())
def test_bad_shapes_dtypes_and_lengths(device):
    cost = torch.rand(2, 3, 4, device=device)
    with pytest.raises(ValueError, match="more rows than columns"):
        linear_sum_assignment(cost.transpose(1, 2))
    with pytest.raises(ValueError, match=r"problem 1 has more rows than columns"):
        linear_sum_assignment(cost, torch.tensor([3, 3], device=device), torch.tensor([4, 2], device=device))
    with pytest.raises(ValueError, match=r"cost must have shape \(B, N, M\)"):
        linear_sum_assignment(cost[0])
    with pytest.raises(TypeError, match="cost must be float32 or float64"):
        linear_sum_assignment(cost.half())
    with pytest.raises(TypeError, match="cost must be float32 or float64"):
        linear_sum_assignment(cost.long())
    with pytest.raises(TypeError, match="cost must be a torch.Tensor"):
        linear_sum_assignment(cost.cpu().numpy())
    with pytest.raises(ValueError, match=r"row_lengths\[1\] = 4 is outside \[0, cost.size\(1\) = 3\]"):
        linear_sum_assignment(cost, torch.tensor([3, 4], device=device))
    with pytest.raises(ValueError, match=r"row_lengths\[0\] = -1"):
        linear_sum_assignment(cost, torch.tensor([-1, 2], device=device))
    with pytest.raises(ValueError, match=r"col_lengths\[0\] = 5 is outside"):
        linear_sum_assignment(cost, None, torch.tensor([5, 4], device=device))
    with pytest.raises(ValueError, match=r"row_lengths must have shape \(B,\)"):
        linear_sum_assignment(cost, torch.tensor([3, 3, 3], device=device))
    with pytest.raises(TypeError, match="row_lengths must be an integer tensor"):
        linear_sum_assignment(cost, torch.tensor([3.0, 3.0], device=device))
    other = "cpu" if torch.device(device).type == "cuda" else ("cuda" if cuda_usable() else None)
    if other is not None:
        with pytest.raises(ValueError, match="col_lengths is on"):
            linear_sum_assignment(cost, None, torch.tensor([4, 4], device=other))
    # The raw op checks ranks, dtypes and shapes itself.
    with pytest.raises(RuntimeError, match="row_lengths must have dtype Long"):
        torch.ops.mple.linear_sum_assignment(cost, torch.tensor([3, 3], dtype=torch.int32, device=device),
                                             torch.tensor([4, 4], device=device))


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter, so a crash (SIGABRT, SIGSEGV) fails one test, not the run."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_costs_beyond_the_float64_range_are_refused_without_crashing():
    # Finite costs whose spread exceeds DBL_MAX once corrupted the heap (free(): invalid pointer):
    # reduced costs overflowed to inf and a column index from a failed search was written through.
    result = _run_isolated(textwrap.dedent("""
        import torch
        from mple_metrics.ops import linear_sum_assignment
        cases = [torch.tensor([[[-1e308, -1e308], [1e308, 1e308]]], dtype=torch.float64)]
        gen = torch.Generator().manual_seed(0)
        signs = (torch.randint(0, 2, (1024, 3, 3), generator=gen) * 2 - 1).double()
        cases += list((signs * 1e308 * torch.rand(1024, 3, 3, generator=gen, dtype=torch.float64))
                      .split(1))
        refused = 0
        for cost in cases:
            try:
                linear_sum_assignment(cost)
            except ValueError as error:
                assert "above the" in str(error) and "cost[0]" in str(error), error
                refused += 1
        print(refused, len(cases))
    """))
    assert result.returncode == 0, f"crashed or failed (rc {result.returncode}): {result.stderr[-2000:]}"
    refused, total = map(int, result.stdout.split())
    assert refused == total


@pytest.mark.parametrize("device", devices())
def test_cost_magnitude_limit_is_the_boundary(device):
    # Entries at the limit are solved (and equal scipy); entries just above are refused by name.
    gen, seed = fresh_generator()
    for n, m in ((1, 1), (2, 2), (3, 5), (6, 6)):
        limit = cost_magnitude_limit(n, m)
        cost = (torch.rand(2, n, m, generator=gen, dtype=torch.float64) * 2 - 1) * limit
        cost[0, 0, 0] = -limit
        rows, cols = torch.full((2,), n), torch.full((2,), m)
        got = linear_sum_assignment(cost.to(device))
        assert_same_totals(cost, rows, cols, got, f"seed {seed}, {n}x{m} at the limit")
        over = cost.clone()
        over[1, n - 1, m - 1] = -math.nextafter(limit, math.inf)
        with pytest.raises(ValueError, match=r"cost\[1\] has a finite entry of magnitude"):
            linear_sum_assignment(over.to(device))
        # +inf (forbidden) is not a magnitude; a problem needing only allowed pairs is still solved.
        allowed = cost.clone()
        if m > n:
            allowed[:, :, -1] = math.inf
            assert_same_totals(allowed, rows, cols, linear_sum_assignment(allowed.to(device)),
                               f"seed {seed}, {n}x{m} with a forbidden column")


def test_huge_problems_are_refused_before_allocating():
    # A 60000 x 60000 float32 problem needs a float64 copy (27 GiB) per solving thread; a stride-0
    # view keeps the test's own memory small.  Refused with the need stated, not a bad_alloc.
    cost = torch.zeros(1, 1, 1).expand(1, 60000, 60000)
    with pytest.raises(ValueError, match=r"linear_sum_assignment: a batch of 1 problems of 60000 x 60000 "
                                         r"would need \d+\.\d+ GiB, more than the"):
        linear_sum_assignment(cost)


def test_meta_tensors_are_refused_by_name():
    with pytest.raises(ValueError, match="cost is on the meta device"):
        linear_sum_assignment(torch.zeros(1, 2, 2, device="meta"))
