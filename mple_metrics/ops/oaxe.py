"""The OaXE loss (order-agnostic cross entropy; Du et al. 2021; paper Appendix E.4) and its proxy target.

For sentence b with length L_b, predictions j and target tokens Y_i (i, j < L_b), the cost of giving
prediction j the token Y_i is C[j, i] = -log P_j(Y_i).  OaXE picks the permutation sigma of the target
that the model predicts best, sigma = argmin_sigma sum_j C[j, sigma(j)] (a linear assignment solved by
:func:`mple_metrics.ops.linear_sum_assignment` for the whole batch in one call on the tensor's
device), and the loss is sum_j C[j, sigma(j)].  The assignment is treated as a constant: the gradient
is that of the selected log-probabilities only (-1 on log P_j(Y_sigma(j)), scaled by the reduction),
which is the subgradient of the min over permutations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .arguments import check_data_device, check_fits_in_memory, check_same_device
from .lap import LAP_COST_OUT_OF_RANGE, LAP_INFEASIBLE, LAP_OK, cost_magnitude_limit

_REDUCTIONS = ("mean", "sum", "none")


def _check_oaxe_args(log_probs: Tensor, targets: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Validates the arguments; returns (targets, lengths) as int64.  One host sync on CUDA."""
    if not isinstance(log_probs, Tensor):
        raise TypeError(f"log_probs must be a torch.Tensor (B, L, V), got {type(log_probs).__name__}")
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor (B, L), got {type(targets).__name__}")
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths must be a torch.Tensor (B,), got {type(lengths).__name__}")
    if not log_probs.is_floating_point():
        raise TypeError(f"log_probs must be a floating tensor (B, L, V), got {log_probs.dtype}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor (B, L), got {targets.dtype}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor (B,), got {lengths.dtype}")
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must have shape (B, L, V), got shape {tuple(log_probs.shape)}")
    check_data_device(log_probs, "log_probs")
    batch, width, vocab = log_probs.shape
    if targets.dim() != 2 or tuple(targets.shape) != (batch, width):
        raise ValueError(f"targets must have shape (B, L) = ({batch}, {width}) like log_probs, "
                         f"got {tuple(targets.shape)}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape (B,) = ({batch},), got {tuple(lengths.shape)}")
    for name, t in (("targets", targets), ("lengths", lengths)):
        check_same_device(t, log_probs, name, "log_probs")
    targets = targets.long()
    lengths = lengths.long()
    valid = torch.arange(width, device=targets.device) < lengths[:, None]
    bad_lengths = (lengths < 0) | (lengths > width)
    bad_targets = valid & ((targets < 0) | (targets >= vocab))
    flags = torch.stack([bad_lengths.any(), bad_targets.any()]).tolist()
    if flags[0]:
        b = int(bad_lengths.nonzero()[0, 0])
        raise ValueError(f"lengths[{b}] = {int(lengths[b])} is outside [0, L = {width}]")
    if flags[1]:
        b, j = (int(x) for x in bad_targets.nonzero()[0])
        raise ValueError(f"targets[{b}, {j}] = {int(targets[b, j])} is not a token id in "
                         f"[0, V = {vocab})")
    return targets, lengths


def _assigned_targets(log_probs: Tensor, targets: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Returns (T*, valid): T*[b, j] = Y_sigma(j) for j < lengths[b] (0 beyond), valid (B, L) bool."""
    batch, width, _ = log_probs.shape
    valid = torch.arange(width, device=targets.device) < lengths[:, None]
    safe_targets = targets.masked_fill(~valid, 0)
    if log_probs.shape[2] == 0:  # V = 0: the target check left only empty sentences
        return safe_targets, valid
    check_fits_in_memory(batch * width * width * 8, log_probs.device, "oaxe",
                         f"the cost matrices (B, L, L) = ({batch}, {width}, {width})")
    with torch.no_grad():
        # cost[b, j, i] = -log P_j(Y_i); the assignment is a constant for autograd.
        lp = log_probs.detach()
        if lp.dtype not in (torch.float32, torch.float64):
            lp = lp.float()
        selected = lp.gather(2, safe_targets[:, None, :].expand(batch, width, width))
        sigma, status = torch.ops.mple.linear_sum_assignment(-selected, lengths, lengths)
        # One host sync on success; a NaN or +inf log-prob (a NaN or -inf cost) is then named.
        if bool(status.ne(LAP_OK).any()):
            _check_selected_log_probs(selected, valid, safe_targets)
            _raise_for_oaxe_status(status, lengths)
    proxy = safe_targets.gather(1, sigma.clamp(min=0))
    return proxy.masked_fill(~valid, 0), valid


def _check_selected_log_probs(selected: Tensor, valid: Tensor, targets: Tensor) -> None:
    """NaN or +inf among the log-probs the assignment reads, named by position (one host sync)."""
    block = valid[:, :, None] & valid[:, None, :]
    bad = block & (torch.isnan(selected) | (selected == math.inf))
    if bool(bad.any()):
        b, j, i = (int(x) for x in bad.nonzero()[0])
        raise ValueError(f"log_probs[{b}, {j}, {int(targets[b, i])}] = {float(selected[b, j, i])} "
                         f"(sentence {b}, prediction {j}, its target token {i}): log-probabilities "
                         "must be finite or -inf")


def _raise_for_oaxe_status(status: Tensor, lengths: Tensor) -> None:
    """The assignment's per-sentence status in the loss's terms (lengths were checked before)."""
    failed = status.ne(LAP_OK)
    if not bool(failed.any()):
        return
    b = int(failed.nonzero()[0, 0])
    code, length = int(status[b]), int(lengths[b])
    if code == LAP_INFEASIBLE:
        raise ValueError(f"sentence {b}: every ordering of its {length} target tokens gives some "
                         "prediction a zero probability (log_probs = -inf), so the OaXE loss is +inf")
    if code == LAP_COST_OUT_OF_RANGE:
        raise ValueError(f"sentence {b}: log_probs holds a finite value of magnitude above "
                         f"{cost_magnitude_limit(length, length):.4g}, beyond the range the exact "
                         "assignment handles; these are not log-probabilities")
    raise RuntimeError(f"mple::linear_sum_assignment returned status {code} for sentence {b}")


def oaxe_loss(
    log_probs: Tensor,
    targets: Tensor,
    lengths: Tensor,
    *,
    truncate: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Order-agnostic cross entropy of a batch of NAT outputs against their targets.

    Args:
        log_probs: (B, L, V) log-probabilities (e.g. ``log_softmax`` output) of the L predictions of
            each sentence, any floating dtype, CPU or CUDA.  Natural log; the loss is in the same
            unit (nats).  Differentiable.
        targets: (B, L) integer token ids; positions ``j >= lengths[b]`` are ignored.
        lengths: (B,) integer sentence lengths in [0, L]; prediction and target share the length.
        truncate: optional probability p in (0, 1].  Assigned terms whose probability
            P_j(Y_sigma(j)) is below p contribute 0 (and no gradient): Du et al.'s "skip" of
            unlearnable tokens.  The threshold is compared in the same log base as the loss
            (log P < ln p).  Note: the public OaXE implementation compares natural-log NLL with
            ``-log2(p)``, mixing bases, so its ``skip=p`` equals our ``truncate=p ** (1 / ln 2)``.
            The assignment itself is computed on the untruncated costs, as in the public code.
        reduction: ``"mean"`` (sum over all valid tokens divided by their number, 0 when there are
            none), ``"sum"``, or ``"none"`` (per-sentence sums, shape (B,)).

    Returns:
        The loss: a 0-dim tensor, or (B,) for ``reduction="none"``, dtype of ``log_probs``.
        Deterministic.  One device-to-host synchronisation for argument checks and one for the
        assignment's status.

    Raises:
        TypeError / ValueError: bad types, shapes, devices, lengths or token ids; NaN log-probs, or a
        sentence whose every permutation meets a zero probability (cost +inf), naming the sentence.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if truncate is not None:
        if isinstance(truncate, bool) or not isinstance(truncate, (int, float)) or not 0.0 < truncate <= 1.0:
            raise ValueError(f"truncate must be a probability in (0, 1] or None, got {truncate!r}")
    targets, lengths = _check_oaxe_args(log_probs, targets, lengths)
    proxy, valid = _assigned_targets(log_probs, targets, lengths)
    if log_probs.shape[2] == 0:  # V = 0: only empty sentences, nothing to gather
        # Sums over the empty vocabulary: zeros that keep the graph (backward gives zero gradients).
        per_sentence = log_probs.sum(dim=(1, 2))
        return per_sentence if reduction == "none" else per_sentence.sum()
    selected = log_probs.gather(2, proxy[..., None]).squeeze(2)  # log P_j(Y_sigma(j)), (B, L)
    keep = valid
    if truncate is not None:
        # In float64: a float32 comparison would round ln p itself (float32(ln 0.5) < ln 0.5).
        keep = keep & (selected.detach().double() >= math.log(truncate))
    nll = torch.where(keep, -selected, torch.zeros_like(selected))
    per_sentence = nll.sum(dim=1)
    if reduction == "none":
        return per_sentence
    total = per_sentence.sum()
    if reduction == "sum":
        return total
    return total / lengths.sum().clamp(min=1).to(total.dtype)


def oaxe_align(log_probs: Tensor, targets: Tensor, lengths: Tensor) -> Tensor:
    """The OaXE proxy target (Eq. 20): T*[b, j] = Y_sigma(j), the target reordered to the predictions.

    Args as :func:`oaxe_loss`.  Returns an int64 tensor (B, L) on the device of ``log_probs``; for
    ``j < lengths[b]`` it is a permutation of ``targets[b, :lengths[b]]`` minimising
    sum_j -log P_j(T*_j); positions ``j >= lengths[b]`` keep ``targets[b, j]`` (the caller's padding).
    Deterministic; among equally good permutations the choice is fixed but may differ from scipy's.
    """
    targets, lengths = _check_oaxe_args(log_probs, targets, lengths)
    proxy, valid = _assigned_targets(log_probs, targets, lengths)
    return torch.where(valid, proxy, targets)
