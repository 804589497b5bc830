"""AXE: aligned cross entropy (Ghazvininejad et al. 2020; paper Appendix E.3), exact and batched.

The loss of a sequence is the cost A[Ly, Lp] of the cheapest monotonic alignment between its Ly
target tokens and its Lp predictions (DESIGN.md §3).  With G[i,j] = -log P_j(Y_i) and
E[j] = -log P_j(blank)::

    A[0,0] = 0
    A[0,j] = A[0,j-1] + E[j]
    A[i,0] = A[i-1,0] + delta * G[i,1]
    A[i,j] = min(A[i-1,j-1] + G[i,j],       # align Y_i with prediction j
                 A[i,j-1]   + E[j],         # skip prediction j (it predicts blank)
                 A[i-1,j]   + delta * G[i,j])  # skip target Y_i, charged delta times

Ties go to the earlier move in that order, so results are deterministic.  The loss is in nats of
the given log-probabilities.  One call runs the whole batch: a C++ DP per sequence (parallel over the
batch) on the CPU, one kernel launch (one block per sequence) on CUDA.

Edge cases: zero-length targets and predictions are legal.  A sequence with Ly = 0 costs the sum of
its blank costs; Lp = Ly = 0 costs 0; Lp = 0 < Ly has no alignment (every target token must be
charged to some prediction) and costs +inf with a zero gradient.  A -inf log-prob that the DP reads
gives +inf costs (a +inf loss if no path avoids it), never NaN; NaN (or +inf) log-probs that the DP
reads are an error.  Padding positions (beyond ``pred_lengths`` / ``target_lengths``) are never read.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from .. import _extension  # noqa: F401  (registers torch.ops.mple)
from .arguments import check_data_device, check_index_tensor, check_same_device, first_index

_LOG_PROB_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
REDUCTIONS = ("none", "sum", "mean")


def _loss_dtype(log_probs_dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if log_probs_dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------- op registration


@torch.library.register_fake("mple::axe_forward")
def _axe_forward_fake(log_probs, targets, pred_lengths, target_lengths, blank, skip_penalty):
    batch, pred_width, _ = log_probs.shape
    loss = log_probs.new_empty((batch,), dtype=_loss_dtype(log_probs.dtype))
    choices = log_probs.new_empty((batch, pred_width + 1, targets.shape[1] + 1), dtype=torch.uint8)
    return loss, choices


@torch.library.register_fake("mple::axe_backward")
def _axe_backward_fake(grad_loss, log_probs, targets, pred_lengths, target_lengths, choices, blank,
                       skip_penalty):
    return torch.empty_like(log_probs, memory_format=torch.contiguous_format)


@torch.library.register_fake("mple::axe_proxy_targets")
def _axe_proxy_targets_fake(choices, targets, pred_lengths, target_lengths, blank):
    return targets.new_empty((choices.shape[0], choices.shape[1] - 1))


def _axe_setup_context(ctx, inputs, output):
    log_probs, targets, pred_lengths, target_lengths, blank, skip_penalty = inputs
    _, choices = output
    ctx.save_for_backward(log_probs, targets, pred_lengths, target_lengths, choices)
    ctx.blank = blank
    ctx.skip_penalty = skip_penalty


def _axe_backward(ctx, grad_loss, grad_choices):
    log_probs, targets, pred_lengths, target_lengths, choices = ctx.saved_tensors
    grad_log_probs = None
    if ctx.needs_input_grad[0]:
        grad_log_probs = torch.ops.mple.axe_backward(
            grad_loss, log_probs, targets, pred_lengths, target_lengths, choices,
            ctx.blank, ctx.skip_penalty)
    return grad_log_probs, None, None, None, None, None


torch.library.register_autograd("mple::axe_forward", _axe_backward, setup_context=_axe_setup_context)


# ----------------------------------------------------------------------------- input handling


def prepare_axe_batch(
    log_probs: Tensor,
    targets: Tensor,
    pred_lengths: Tensor | None,
    target_lengths: Tensor | None,
    blank: int,
    skip_penalty: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, int, float]:
    """Validates the arguments of :func:`axe_loss` / :func:`axe_align` and returns the kernel's.

    Returns ``log_probs`` unchanged (B, Lp, V), ``targets`` (B, Ly), ``pred_lengths`` (B,) and
    ``target_lengths`` (B,) as int64 on the device of ``log_probs``, ``blank`` as int and
    ``skip_penalty`` as float.  Omitted lengths mean the full padded width.  On CUDA the value checks
    (lengths, token ids) read one stacked flag tensor: one device-to-host synchronisation.
    """
    if not isinstance(log_probs, Tensor):
        raise TypeError(f"log_probs must be a torch.Tensor (B, Lp, V), got {type(log_probs).__name__}")
    if log_probs.dtype not in _LOG_PROB_DTYPES:
        raise TypeError(f"log_probs must be float32, float64, float16 or bfloat16, got {log_probs.dtype}")
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must have shape (B, Lp, V), got shape {tuple(log_probs.shape)}")
    check_data_device(log_probs, "log_probs")
    batch, pred_width, vocab = log_probs.shape
    device = log_probs.device
    targets_t = check_index_tensor(targets, "targets", 2, "(B, Ly)")
    if pred_lengths is None:
        pred_lengths = torch.full((batch,), pred_width, dtype=torch.int64, device=device)
    if target_lengths is None:
        target_lengths = torch.full((batch,), targets_t.shape[1], dtype=torch.int64, device=targets_t.device)
    pred_len_t = check_index_tensor(pred_lengths, "pred_lengths", 1, "(B,)")
    target_len_t = check_index_tensor(target_lengths, "target_lengths", 1, "(B,)")
    for name, t in (("targets", targets_t), ("pred_lengths", pred_len_t),
                    ("target_lengths", target_len_t)):
        check_same_device(t, log_probs, name, "log_probs")
        if t.shape[0] != batch:
            raise ValueError(f"{name} holds {t.shape[0]} rows but log_probs holds {batch} (batch size B)")
    if isinstance(blank, bool) or not isinstance(blank, numbers.Integral):
        raise TypeError(f"blank must be an int token id, got {type(blank).__name__}")
    blank = int(blank)
    if not 0 <= blank < vocab:
        raise ValueError(f"blank must be a token id in [0, V = {vocab}), got {blank}")
    if isinstance(skip_penalty, bool) or not isinstance(skip_penalty, numbers.Real):
        raise TypeError(f"skip_penalty must be a float, got {type(skip_penalty).__name__}")
    skip_penalty = float(skip_penalty)
    if not (math.isfinite(skip_penalty) and skip_penalty >= 0):
        raise ValueError(f"skip_penalty (delta) must be finite and >= 0, got {skip_penalty}")

    # All value checks in one stacked flag tensor: one device-to-host synchronisation on CUDA (the
    # error path may read more to name the offender).
    target_width = targets_t.shape[1]
    bad_pred = (pred_len_t < 0) | (pred_len_t > pred_width)
    bad_target_len = (target_len_t < 0) | (target_len_t > target_width)
    inside = torch.arange(target_width, device=device) < target_len_t[:, None]
    bad_ids = inside & ((targets_t < 0) | (targets_t >= vocab))
    flags = torch.stack([bad_pred.any(), bad_target_len.any(), bad_ids.any()]).tolist()
    for flag, name, lengths, bad, width, width_name in (
        (flags[0], "pred_lengths", pred_len_t, bad_pred, pred_width, "log_probs.size(1)"),
        (flags[1], "target_lengths", target_len_t, bad_target_len, target_width, "targets.size(1)"),
    ):
        if flag:
            (row,) = first_index(bad)
            raise ValueError(f"{name} must lie in [0, {width_name} = {width}], "
                             f"got {int(lengths[row])} at index {row}")
    if flags[2]:
        row, col = first_index(bad_ids)
        raise ValueError(f"targets must hold token ids in [0, V = {vocab}) within target_lengths, "
                         f"got {int(targets_t[row, col])} at index ({row}, {col})")
    return log_probs, targets_t, pred_len_t, target_len_t, blank, skip_penalty


def _raise_on_invalid(loss: Tensor) -> None:
    # The kernels return NaN exactly for the sequences whose read log-probs hold NaN or +inf.
    bad = torch.isnan(loss)
    if bool(bad.any()):
        (row,) = first_index(bad)
        raise ValueError(f"log_probs holds NaN or +inf at entries the AXE DP reads (sequence {row}), or "
                         "values so large that the DP's sums overflow; "
                         "log-probabilities must be finite or -inf")


# ----------------------------------------------------------------------------- public ops


def axe_loss(
    log_probs: Tensor,
    targets: Tensor,
    pred_lengths: Tensor | None = None,
    target_lengths: Tensor | None = None,
    *,
    blank: int,
    skip_penalty: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """AXE loss of a padded batch, differentiable with respect to ``log_probs``.

    Args:
        log_probs: (B, Lp, V) log-probabilities of the Lp predictions over V tokens, float32 or
            float64 (float16/bfloat16 are read as is and the DP runs in float32).  Any strides.
        targets: (B, Ly) integer token ids; entries past ``target_lengths`` are ignored.
        pred_lengths: (B,) integer, 0 <= Lp_b <= Lp (None: all Lp).
        target_lengths: (B,) integer, 0 <= Ly_b <= Ly (None: all Ly).
        blank: the empty token id (epsilon), 0 <= blank < V.
        skip_penalty: delta >= 0, the weight of a skipped target's cost.
        reduction: ``"none"``: the per-sequence costs A[Ly_b, Lp_b], shape (B,); ``"sum"``: their
            sum; ``"mean"``: their sum divided by the total number of target tokens sum_b Ly_b
            (per-token loss; a batch without target tokens divides by 1).

    Returns:
        The loss in nats, float64 for float64 ``log_probs`` and float32 otherwise.  Its gradient is
        the subgradient of the chosen alignment path: -1 on every aligned token's and every skipped
        prediction's blank log-prob, -delta on every skipped target's log-prob, summed where an
        entry is used twice; zero elsewhere.  Deterministic on both devices.

    Raises:
        TypeError / ValueError naming the argument for bad shapes, dtypes, devices, lengths, token
        ids, blank, skip_penalty or reduction, and for NaN (or +inf) log-probs the DP reads.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    args = prepare_axe_batch(log_probs, targets, pred_lengths, target_lengths, blank, skip_penalty)
    loss, _ = torch.ops.mple.axe_forward(*args)
    _raise_on_invalid(loss.detach())
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    return total / args[3].sum().clamp_min(1).to(total.dtype)


def axe_align(
    log_probs: Tensor,
    targets: Tensor,
    pred_lengths: Tensor | None = None,
    target_lengths: Tensor | None = None,
    *,
    blank: int,
    skip_penalty: float = 1.0,
) -> Tensor:
    """The AXE proxy target T* (Eq. 20): int64 (B, Lp) on the device of ``log_probs``.

    Position j holds the target token that the chosen alignment aligns to prediction j (an align
    move into (i, j)), else ``blank`` (a skipped prediction); positions past ``pred_lengths`` are
    ``blank``.  The non-blank entries of a row are a subsequence of its target.  Arguments as in
    :func:`axe_loss`; the path and its tie-breaking are the loss's, so with ``skip_penalty=0`` the
    NLL of T* under ``log_probs`` (its first Lp_b positions) equals the per-sequence loss.
    Not differentiable; deterministic.
    """
    args = prepare_axe_batch(log_probs, targets, pred_lengths, target_lengths, blank, skip_penalty)
    with torch.no_grad():
        loss, choices = torch.ops.mple.axe_forward(*args)
    _raise_on_invalid(loss)
    _, targets_t, pred_len_t, target_len_t, blank_id, _ = args
    return torch.ops.mple.axe_proxy_targets(choices, targets_t, pred_len_t, target_len_t, blank_id)
