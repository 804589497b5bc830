"""The batch check shared by the loss modules: ``log_probs`` must hold log-probabilities.

AXE and OaXE are costs -log P >= 0 summed along an alignment; given logits or other unnormalised
scores (positive values), they return negative "losses" that train towards nothing.  Values above
0 (beyond a rounding tolerance) are refused, cheaply: one maximum over the valid positions and one
device-to-host synchronisation per batch.  That each row sums to 1 in probability is not checked:
it would cost a log-sum-exp over the vocabulary at every position, as much as the ``log_softmax``
that made the input.  Scores <= 0 that are not normalised give a non-negative loss that is not a
cross entropy.
"""

from __future__ import annotations

import torch
from torch import Tensor


def log_prob_tolerance(dtype: torch.dtype) -> float:
    """How far above 0 a log-probability may round: 1e-3, or 8 ulps of 1 in a coarser dtype
    (``x - logsumexp(x)`` computed in bfloat16 can land a few ulps above 0)."""
    return max(1e-3, 8 * torch.finfo(dtype).eps)


def check_log_probs(log_probs: object, lengths: object) -> None:
    """Raise ``ValueError`` naming ``log_probs`` when a prediction ``j < lengths[b]`` (all of them
    when ``lengths`` is None) has a value above 0 + :func:`log_prob_tolerance`.  Arguments of the
    wrong type or shape are left to the op, which names them."""
    if not isinstance(log_probs, Tensor) or not log_probs.is_floating_point() or log_probs.dim() != 3 \
            or log_probs.numel() == 0:
        return
    batch, width, _ = log_probs.shape
    with torch.no_grad():
        highest = log_probs.detach().amax(dim=2)  # (B, L); NaN stays NaN and is the op's to name
        if lengths is not None:
            if not isinstance(lengths, Tensor) or lengths.shape != (batch,) or lengths.is_floating_point() \
                    or lengths.device != log_probs.device:
                return
            valid = torch.arange(width, device=log_probs.device) < lengths[:, None]
            highest = highest.masked_fill(~valid, 0.0)
        tolerance = log_prob_tolerance(log_probs.dtype)
        bad = highest > tolerance
        if not bool(bad.any()):
            return
        b, j = (int(x) for x in bad.nonzero()[0])
        v = int(log_probs[b, j].detach().argmax())
    raise ValueError(f"log_probs must be log-probabilities (<= 0): log_probs[{b}, {j}, {v}] = "
                     f"{float(log_probs[b, j, v]):.6g} (sentence {b}, prediction {j}); pass "
                     f"log_softmax(logits, dim=-1), not logits or other unnormalised scores")
