"""``AXELoss``: the AXE loss (aligned cross entropy; paper Appendix E.3) as a ``torch.nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data import BLANK_ID
from ..ops import axe_align, axe_loss
from .arguments import check_non_negative_real, check_reduction, check_token_id
from .log_probs import check_log_probs


class AXELoss(torch.nn.Module):
    r"""Aligned cross entropy (Ghazvininejad et al. 2020): the cost of the cheapest monotonic
    alignment between the target tokens and the NAT's predictions (DESIGN.md §3).

    With G[i, j] = -log P_j(Y_i) and E[j] = -log P_j(blank), the loss of a sequence is A[Ly, Lp] of

    .. code-block:: text

        A[0,0] = 0;  A[0,j] = A[0,j-1] + E[j];  A[i,0] = A[i-1,0] + delta * G[i,1]
        A[i,j] = min(A[i-1,j-1] + G[i,j]  (align),  A[i,j-1] + E[j]  (skip prediction),
                     A[i-1,j] + delta * G[i,j]  (skip target))

    ties going to the earlier move, computed exactly for the whole batch in one call of
    :func:`mple_metrics.ops.axe_loss` (C++ on the CPU, one CUDA launch on the GPU).

    Args:
        blank: the empty token id epsilon that unaligned predictions are trained to emit
            (default :data:`mple_metrics.data.BLANK_ID`, the package tokenizers' ``<blank>``);
            must be below the vocabulary size V of the batches.
        skip_penalty: delta >= 0, the weight of a skipped target token's cost (the "skip penalty";
            0 makes skipping targets free).
        reduction: ``"none"``: the per-sequence losses A[Ly_b, Lp_b], shape (B,); ``"sum"``: their
            sum; ``"mean"`` (default): their sum divided by the number of target tokens in the
            batch, sum_b Ly_b (1 when the batch has none) — a loss per target token, the op's
            convention.  Unlike ``torch.nn.CTCLoss(reduction="mean")``, sequences are not averaged
            per sequence first, so every target token weighs the same whatever its sentence length.

    Shape:
        - ``log_probs``: (B, Lp, V) log-probabilities (e.g. ``log_softmax`` output) of the Lp
          predictions of each sequence, batch first; float32 or float64 (float16/bfloat16 are read
          as they are and the DP runs in float32); any strides; CPU or CUDA.
        - ``targets``: (B, Ly) integer token ids; entries past ``target_lengths`` are padding and
          never read.
        - ``pred_lengths``: (B,) integer, 0 <= Lp_b <= Lp; None means Lp for every sequence.
        - ``target_lengths``: (B,) integer, 0 <= Ly_b <= Ly; None means Ly for every sequence.
        - output: a scalar, or (B,) for ``reduction="none"``; float64 for float64 ``log_probs``,
          float32 otherwise.

    Units: nats (natural log of the given log-probabilities).  The gradient with respect to
    ``log_probs`` is the subgradient of the chosen path (-1 on aligned tokens' and skipped
    predictions' blank log-probs, -delta on skipped targets', summed where an entry is used twice),
    scaled by the reduction.  Deterministic on both devices.  A sequence with no alignment of finite
    cost (Lp_b = 0 < Ly_b, or a target token with log-prob -inf at every prediction) costs +inf and
    contributes no gradient, as in :class:`OaXELoss`.
    Bad inputs raise ``TypeError``/``ValueError`` naming the argument, and so do log-probs above 0
    (logits passed by mistake; :mod:`mple_metrics.losses.log_probs`: one max over the batch and one
    device-to-host synchronisation).

    Example::

        >>> criterion = AXELoss(blank=5, skip_penalty=5.0)              # nats per target token
        >>> log_probs = torch.randn(2, 6, 12).log_softmax(-1).requires_grad_()   # (B, Lp, V)
        >>> targets, lengths = torch.tensor([[7, 8, 9, 10], [7, 7, 0, 0]]), torch.tensor([4, 2])
        >>> criterion(log_probs, targets, torch.tensor([6, 4]), lengths).backward()
        >>> proxy = criterion.align(log_probs, targets, torch.tensor([6, 4]), lengths)  # T*, (B, Lp)
    """

    def __init__(self, blank: int = BLANK_ID, skip_penalty: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.blank = check_token_id(blank, "blank")
        self.skip_penalty = check_non_negative_real(skip_penalty, "skip_penalty")
        self.reduction = check_reduction(reduction)

    def forward(self, log_probs: Tensor, targets: Tensor, pred_lengths: Tensor | None = None,
                target_lengths: Tensor | None = None) -> Tensor:
        """The AXE loss of the batch (see the class docstring for shapes, units and reduction)."""
        check_log_probs(log_probs, pred_lengths)
        per_sequence = axe_loss(log_probs, targets, pred_lengths, target_lengths, blank=self.blank,
                                skip_penalty=self.skip_penalty, reduction="none")
        # A sequence no alignment can score costs +inf with no gradient (the op would pass on the
        # subgradient of an arbitrary infinite path), as OaXELoss has it.
        per_sequence = per_sequence.masked_fill(torch.isinf(per_sequence.detach()), math.inf)
        if self.reduction == "none":
            return per_sequence
        total = per_sequence.sum()
        if self.reduction == "sum":
            return total
        tokens = targets.shape[0] * targets.shape[1] if target_lengths is None else target_lengths.sum()
        return total / torch.as_tensor(tokens, device=total.device).clamp_min(1).to(total.dtype)

    def align(self, log_probs: Tensor, targets: Tensor, pred_lengths: Tensor | None = None,
              target_lengths: Tensor | None = None) -> Tensor:
        """The proxy target T* (Eq. 20) of the alignment the loss chooses: int64 (B, Lp) on the
        device of ``log_probs``.

        Position j holds the target token aligned to prediction j (the first one, if the path
        also skips targets there), else ``blank``; positions past ``pred_lengths`` are ``blank``.
        The non-blank entries of a row are a subsequence of its target.  Same path and tie-breaking
        as :meth:`forward`, so with ``skip_penalty=0`` the NLL of T* equals the per-sequence loss.
        Not differentiable (computed without autograd); deterministic.
        """
        check_log_probs(log_probs, pred_lengths)
        return axe_align(log_probs, targets, pred_lengths, target_lengths, blank=self.blank,
                         skip_penalty=self.skip_penalty)

    def extra_repr(self) -> str:
        return f"blank={self.blank}, skip_penalty={self.skip_penalty}, reduction={self.reduction!r}"
