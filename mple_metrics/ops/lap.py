"""Batched linear assignment (minimum-cost bipartite matching) on the tensor's own device.

:func:`linear_sum_assignment` solves B independent problems in one call: for each batch element b, it
assigns each of the first ``row_lengths[b]`` rows a distinct column among the first
``col_lengths[b]`` columns so that the summed cost is minimal, as
``scipy.optimize.linear_sum_assignment`` does for one matrix.  ``+inf`` marks a forbidden pair.

Algorithm: an exact shortest-augmenting-path solver (Jonker-Volgenant dual updates, Crouse's
rectangular variant, the algorithm scipy uses) with the Jonker-Volgenant initialisation on square
problems without ``+inf`` entries.  All arithmetic is float64, also for float32 input (widened on
load, as scipy does), so the total cost matches scipy's to rounding.  The CPU kernel solves the
problems in parallel (``at::parallel_for``); the CUDA kernel gives each problem one warp, all in one
launch.  Both choose among equal-cost alternatives by the same fixed rule, so the result is
deterministic and identical on CPU and CUDA; on exact ties it may be another optimal permutation than
scipy's.

Errors.  Problems with NaN or ``-inf`` entries, with no assignment avoiding ``+inf``, or with bad
lengths are not raised from inside the op: the op returns a per-problem status code, and this wrapper
reads it once (one device-to-host synchronisation on CUDA) and raises a ValueError naming the first
failing batch index.  Shape, dtype and device errors are raised before anything runs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _extension  # noqa: F401  (registers torch.ops.mple)
from .arguments import INDEX_DTYPES, check_data_device, check_same_device

# Status codes of mple::linear_sum_assignment; keep in sync with csrc/include/mple/lap.h.
LAP_OK = 0
LAP_INVALID_ENTRY = 1
LAP_INFEASIBLE = 2
LAP_BAD_ROW_LENGTH = 3
LAP_BAD_COL_LENGTH = 4
LAP_MORE_ROWS_THAN_COLS = 5
LAP_COST_OUT_OF_RANGE = 6


def cost_magnitude_limit(rows: int, cols: int) -> float:
    """The largest finite ``|cost|`` a rows x cols problem may hold: DBL_MAX / (16 (rows + cols + 1)^2).

    Beyond it the float64 dual variables could overflow to inf (1e308 - (-1e308) is inf), so such
    problems are refused, never solved wrongly; about 4.5e300 for 1000 x 1000.  Same value as
    ``lap_cost_magnitude_limit`` in csrc/include/mple/lap.h.
    """
    span = float(rows + cols + 1)
    return 1.79769313486231570815e308 / (16.0 * span * span)


@torch.library.register_fake("mple::linear_sum_assignment")
def _linear_sum_assignment_fake(cost, row_lengths, col_lengths):
    batch, rows = cost.shape[0], cost.shape[1]
    return (cost.new_empty((batch, rows), dtype=torch.int64),
            cost.new_empty((batch,), dtype=torch.int32))


def _check_lengths_arg(lengths: Tensor | None, name: str, cost: Tensor, full: int) -> Tensor:
    batch = cost.shape[0]
    if lengths is None:
        return torch.full((batch,), full, dtype=torch.int64, device=cost.device)
    if not isinstance(lengths, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B,) or None, got {type(lengths).__name__}")
    if lengths.dtype not in INDEX_DTYPES:
        raise TypeError(f"{name} must be an integer tensor (B,), got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"{name} must have shape (B,) = ({batch},), got {tuple(lengths.shape)}")
    check_same_device(lengths, cost, name, "cost")
    return lengths.long()


def _raise_for_status(status: Tensor, cost: Tensor, row_lengths: Tensor,
                      col_lengths: Tensor) -> None:
    """Raises a ValueError for the first problem whose status is not LAP_OK (one host sync)."""
    failed = status.ne(LAP_OK)
    if not bool(failed.any()):
        return
    b = int(failed.nonzero()[0, 0])
    code = int(status[b])
    rows, cols = int(row_lengths[b]), int(col_lengths[b])
    if code == LAP_INVALID_ENTRY:
        raise ValueError(f"cost[{b}] contains NaN or -inf in its unpadded {rows}x{cols} block; "
                         "use +inf for forbidden pairs")
    if code == LAP_COST_OUT_OF_RANGE:
        block = cost[b, :rows, :cols].detach().double()
        finite = block[torch.isfinite(block)].abs()
        largest = float(finite.max()) if finite.numel() else float("nan")
        raise ValueError(f"cost[{b}] has a finite entry of magnitude {largest:.4g}, above the "
                         f"{cost_magnitude_limit(rows, cols):.4g} a {rows}x{cols} problem allows "
                         "(float64 dual variables could overflow); shift or rescale the costs")
    if code == LAP_INFEASIBLE:
        raise ValueError(f"cost[{b}] is infeasible: no assignment of its {rows} rows to distinct "
                         f"columns among {cols} avoids every +inf entry")
    if code == LAP_BAD_ROW_LENGTH:
        raise ValueError(f"row_lengths[{b}] = {rows} is outside [0, cost.size(1) = {cost.shape[1]}]")
    if code == LAP_BAD_COL_LENGTH:
        raise ValueError(f"col_lengths[{b}] = {cols} is outside [0, cost.size(2) = {cost.shape[2]}]")
    if code == LAP_MORE_ROWS_THAN_COLS:
        raise ValueError(f"problem {b} has more rows than columns (row_lengths[{b}] = {rows} > "
                         f"col_lengths[{b}] = {cols}); every row must get a column (N <= M); "
                         "transpose the cost matrix")
    raise RuntimeError(f"mple::linear_sum_assignment returned unknown status {code} for problem {b}")


def linear_sum_assignment(
    cost: Tensor,
    row_lengths: Tensor | None = None,
    col_lengths: Tensor | None = None,
) -> Tensor:
    """Minimum-cost assignment of rows to distinct columns, for a batch of cost matrices.

    Args:
        cost: float32 or float64 tensor (B, N, M) on CPU or CUDA; any strides.  ``+inf`` forbids a
            pair; NaN and ``-inf`` are errors.  Entries beyond the lengths are ignored.
        row_lengths: integer tensor (B,) of valid rows per problem, each in [0, N]; default N.
        col_lengths: integer tensor (B,) of valid columns per problem, each in [0, M]; default M.
            Each problem needs ``row_lengths[b] <= col_lengths[b]``.

    Returns:
        int64 tensor (B, N) on ``cost.device``: entry [b, i] is the column assigned to row i of
        problem b, for i < row_lengths[b], and -1 for padded rows.  Row i of problem b is matched to
        column ``result[b, i]``; the total ``cost[b].gather(1, result[b, :n, None]).sum()`` equals
        scipy's optimum.  Deterministic.  Not differentiable (the assignment is piecewise constant).

    Raises:
        TypeError / ValueError: wrong type, rank, dtype, device or shape; and, naming the batch
        index, NaN or ``-inf`` entries, a finite entry above :func:`cost_magnitude_limit`, an
        infeasible problem, lengths out of range, or more rows than columns.
    """
    if not isinstance(cost, Tensor):
        raise TypeError(f"cost must be a torch.Tensor (B, N, M), got {type(cost).__name__}")
    if cost.dim() != 3:
        raise ValueError(f"cost must have shape (B, N, M), got shape {tuple(cost.shape)}")
    if cost.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"cost must be float32 or float64, got {cost.dtype}")
    check_data_device(cost, "cost")
    rows_t = _check_lengths_arg(row_lengths, "row_lengths", cost, cost.shape[1])
    cols_t = _check_lengths_arg(col_lengths, "col_lengths", cost, cost.shape[2])
    if row_lengths is None and col_lengths is None and cost.shape[1] > cost.shape[2]:
        raise ValueError(f"cost has more rows than columns (N = {cost.shape[1]} > M = "
                         f"{cost.shape[2]}); every row must get a column (N <= M); transpose it")
    assignment, status = torch.ops.mple.linear_sum_assignment(cost.detach(), rows_t, cols_t)
    _raise_for_status(status, cost, rows_t, cols_t)
    return assignment
