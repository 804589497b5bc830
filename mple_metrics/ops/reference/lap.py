"""Reference linear assignment and OaXE: scipy.optimize.linear_sum_assignment, one problem at a time.

The straightforward way, for tests and benchmarks: each problem is sliced to its unpadded block,
copied to float64 NumPy and handed to scipy.  Slow (a Python loop) but obviously right.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment as scipy_linear_sum_assignment
from torch import Tensor


def linear_sum_assignment_reference(
    cost: Tensor,
    row_lengths: Tensor | None = None,
    col_lengths: Tensor | None = None,
) -> Tensor:
    """scipy's assignment of each problem: int64 (B, N) column per row, -1 for padded rows.

    ``cost`` (B, N, M), lengths (B,) as for :func:`mple_metrics.ops.linear_sum_assignment`.  Raises
    ValueError naming the batch index where scipy rejects a problem (NaN, -inf, infeasible).
    """
    batch, rows_pad, cols_pad = cost.shape
    costs = cost.detach().to("cpu", torch.float64).numpy()
    rows = [rows_pad] * batch if row_lengths is None else [int(n) for n in row_lengths]
    cols = [cols_pad] * batch if col_lengths is None else [int(m) for m in col_lengths]
    out = torch.full((batch, rows_pad), -1, dtype=torch.int64)
    for b in range(batch):
        if rows[b] > cols[b]:
            raise ValueError(f"problem {b} has more rows ({rows[b]}) than columns ({cols[b]})")
        block = costs[b, : rows[b], : cols[b]]
        if block.size == 0:
            continue
        try:
            row_ind, col_ind = scipy_linear_sum_assignment(block)
        except ValueError as error:
            raise ValueError(f"cost[{b}]: {error}") from None
        out[b, torch.from_numpy(row_ind)] = torch.from_numpy(col_ind)
    return out


def assignment_cost(cost: Tensor, assignment: Tensor) -> Tensor:
    """Total cost per problem, float64 (B,), of an assignment (B, N) with -1 for unused rows."""
    cost64 = cost.detach().to("cpu", torch.float64)
    assignment = assignment.to("cpu")
    picked = cost64.gather(2, assignment.clamp(min=0)[..., None]).squeeze(2)
    return torch.where(assignment >= 0, picked, torch.zeros_like(picked)).sum(dim=1)


def oaxe_align_reference(log_probs: Tensor, targets: Tensor, lengths: Tensor) -> Tensor:
    """T*[b, j] = Y_sigma(j) from scipy on C[j, i] = -log P_j(Y_i); padding copied from targets."""
    lp = log_probs.detach().to("cpu", torch.float64).numpy()
    tgt = targets.to("cpu").long()
    out = tgt.clone()
    for b in range(lp.shape[0]):
        n = int(lengths[b])
        y = tgt[b, :n].numpy()
        cost = -lp[b, :n][:, y]  # cost[j, i] = -log P_j(Y_i)
        rows, cols = scipy_linear_sum_assignment(cost)
        out[b, torch.from_numpy(rows)] = torch.from_numpy(y[cols])
    return out


def oaxe_loss_reference(
    log_probs: Tensor,
    targets: Tensor,
    lengths: Tensor,
    *,
    truncate: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The OaXE loss in float64 from scipy's assignments (no gradient): see oaxe_loss."""
    lp = log_probs.detach().to("cpu", torch.float64).numpy()
    tgt = targets.to("cpu").long().numpy()
    per_sentence = []
    for b in range(lp.shape[0]):
        n = int(lengths[b])
        cost = -lp[b, :n][:, tgt[b, :n]]
        rows, cols = scipy_linear_sum_assignment(cost)
        terms = cost[rows, cols]
        if truncate is not None:
            terms = np.where(-terms >= math.log(truncate), terms, 0.0)
        per_sentence.append(float(terms.sum()))
    losses = torch.tensor(per_sentence, dtype=torch.float64)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / max(int(lengths.sum()), 1)
