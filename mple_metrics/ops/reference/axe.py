"""Float64 pure-PyTorch reference of the AXE dynamic programme (DESIGN.md §3).

The recurrence is written out cell by cell as the definition states it, vectorised over the batch
and over one anti-diagonal of the table at a time (cells (i, j) with i + j = d depend only on the
two previous anti-diagonals).  The minimum and its tie-breaking (align, then skip prediction, then
skip target) are explicit ``torch.where`` selections, and the gradient is autograd's through them,
so it is the chosen path's subgradient by construction.  Slow (a Python loop over Ly + Lp + 1
diagonals) but independent of the C++/CUDA kernels, which the tests and benchmarks compare with it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ALIGN, SKIP_PREDICTION, SKIP_TARGET = 0, 1, 2


def _axe_diagonals(log_probs: Tensor, targets: Tensor, pred_lengths: Tensor, target_lengths: Tensor,
                   blank: int, skip_penalty: float) -> tuple[Tensor, Tensor]:
    """All anti-diagonals of the table: values (B, Ly + Lp + 1, Ly + 1) float64 with
    values[b, d, i] = A[i, d - i] (+inf off the table), and the moves (same shape, int64)."""
    lp = log_probs.double()
    batch, pred_width, _ = lp.shape
    target_width = targets.shape[1]
    device = lp.device
    targets = targets.long().to(device)
    pred_lengths = pred_lengths.long().to(device)
    target_lengths = target_lengths.long().to(device)
    inf = torch.full((batch, target_width + 1), math.inf, dtype=torch.float64, device=device)

    target_valid = torch.arange(target_width, device=device) < target_lengths[:, None]  # (B, Ly)
    pred_valid = torch.arange(pred_width, device=device) < pred_lengths[:, None]  # (B, Lp)
    safe_targets = torch.where(target_valid, targets, 0)
    # g[b, j, i] = G[i+1, j+1] = -log P_{j+1}(Y_{i+1}); zero outside each sequence's block so that
    # padding (whatever it holds) never enters the arithmetic.
    g = -lp.gather(2, safe_targets[:, None, :].expand(batch, pred_width, target_width))
    g = torch.where(pred_valid[:, :, None] & target_valid[:, None, :], g, 0.0)
    e = torch.where(pred_valid, -lp[:, :, blank], 0.0)  # (B, Lp): E[j+1]
    # delta = 0 makes skipping a target free even where G = +inf (0 * inf would be NaN).
    s = torch.zeros_like(g) if skip_penalty == 0 else skip_penalty * g

    # Borders.  Row i = 0: A[0, j] = sum of E[1..j].  Column j = 0: A[i, 0] = delta * sum of G[1..i, 1],
    # which needs a first prediction; without one no alignment exists (+inf).
    top = F.pad(e.cumsum(1), (1, 0))  # (B, Lp + 1)
    if pred_width > 0:
        left = F.pad(s[:, 0, :].cumsum(1), (1, 0))  # (B, Ly + 1)
        has_prediction = (pred_lengths > 0)[:, None] | (torch.arange(target_width + 1, device=device) == 0)
        left = torch.where(has_prediction, left, math.inf)
    else:
        left = torch.cat([torch.zeros_like(inf[:, :1]), inf[:, 1:]], 1)

    rows = torch.arange(target_width + 1, device=device)
    prev2, prev = inf, inf
    values, moves = [], []
    for d in range(target_width + pred_width + 1):
        cols = d - rows
        in_table = (cols >= 0) & (cols <= pred_width)
        value = inf
        move = torch.full((batch, target_width + 1), ALIGN, dtype=torch.int64, device=device)
        if pred_width > 0 and target_width > 0:
            interior = in_table & (rows >= 1) & (cols >= 1)
            j0 = (cols - 1).clamp(0, pred_width - 1)  # 0-based prediction of column j
            i0 = (rows - 1).clamp(0, target_width - 1)  # 0-based target of row i
            shift = lambda x: torch.cat([inf[:, :1], x[:, :-1]], 1)  # noqa: E731  x[i-1] at i
            align = shift(prev2) + g[:, j0, i0]  # A[i-1, j-1] + G[i, j]
            skip_prediction = prev + e[:, j0]  # A[i, j-1] + E[j]
            skip_target = shift(prev) + s[:, j0, i0]  # A[i-1, j] + delta * G[i, j]
            best = align
            take = skip_prediction < best
            best = torch.where(take, skip_prediction, best)
            move = torch.where(take, SKIP_PREDICTION, move)
            take = skip_target < best
            best = torch.where(take, skip_target, best)
            move = torch.where(take, SKIP_TARGET, move)
            value = torch.where(interior, best, value)
        if d <= pred_width:  # cell (0, d) of the top row
            value = torch.cat([top[:, d:d + 1], value[:, 1:]], 1)
            move = torch.cat([torch.full_like(move[:, :1], SKIP_PREDICTION), move[:, 1:]], 1)
        if 1 <= d <= target_width:  # cell (d, 0) of the left column
            value = torch.cat([value[:, :d], left[:, d:d + 1], value[:, d + 1:]], 1)
            move[:, d] = SKIP_TARGET
        values.append(value)
        moves.append(move)
        prev2, prev = prev, value
    return torch.stack(values, 1), torch.stack(moves, 1)


def axe_loss_reference(log_probs: Tensor, targets: Tensor, pred_lengths: Tensor,
                       target_lengths: Tensor, *, blank: int, skip_penalty: float = 1.0) -> Tensor:
    """Per-sequence AXE loss A[Ly_b, Lp_b], float64 (B,), differentiable by autograd.

    Same arguments and edge cases as :func:`mple_metrics.ops.axe_loss` with ``reduction="none"``
    (lengths are required here and not validated).
    """
    values, _ = _axe_diagonals(log_probs, targets, pred_lengths, target_lengths, blank, skip_penalty)
    pred_lengths = pred_lengths.long().to(values.device)
    target_lengths = target_lengths.long().to(values.device)
    batch = torch.arange(values.shape[0], device=values.device)
    return values[batch, target_lengths + pred_lengths, target_lengths]


def axe_path_reference(log_probs: Tensor, targets: Tensor, pred_lengths: Tensor,
                       target_lengths: Tensor, *, blank: int,
                       skip_penalty: float = 1.0) -> list[list[tuple[int, int, int]]]:
    """The chosen path of each sequence as a list of moves (move, i, j) into cell (i, j), from
    (Ly_b, Lp_b) back to (0, 0); empty when Lp_b = 0 < Ly_b (no alignment exists)."""
    with torch.no_grad():
        _, moves = _axe_diagonals(log_probs, targets, pred_lengths, target_lengths, blank, skip_penalty)
    moves_list = moves.tolist()
    paths = []
    for b, (plen, tlen) in enumerate(zip(pred_lengths.tolist(), target_lengths.tolist())):
        path: list[tuple[int, int, int]] = []
        if plen == 0 and tlen > 0:
            paths.append(path)
            continue
        i, j = tlen, plen
        while i > 0 or j > 0:
            move = moves_list[b][i + j][i]
            path.append((move, i, j))
            if move == ALIGN:
                i, j = i - 1, j - 1
            elif move == SKIP_PREDICTION:
                j -= 1
            else:
                i -= 1
        paths.append(path)
    return paths


def axe_align_reference(log_probs: Tensor, targets: Tensor, pred_lengths: Tensor,
                        target_lengths: Tensor, *, blank: int, skip_penalty: float = 1.0) -> Tensor:
    """Proxy target T* (B, Lp) int64: Y_i at prediction j for every align move into (i, j), else
    ``blank``; as :func:`mple_metrics.ops.axe_align`."""
    paths = axe_path_reference(log_probs, targets, pred_lengths, target_lengths, blank=blank,
                               skip_penalty=skip_penalty)
    out = torch.full(log_probs.shape[:2], blank, dtype=torch.int64)
    targets_list = targets.tolist()
    for b, path in enumerate(paths):
        for move, i, j in path:
            if move == ALIGN:
                out[b, j - 1] = targets_list[b][i - 1]
    return out.to(log_probs.device)
