"""``OaXELoss``: the OaXE loss (order-agnostic cross entropy; paper Appendix E.4) as a
``torch.nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..ops import oaxe_align, oaxe_loss
from ..ops.lap import LAP_INFEASIBLE
from .arguments import check_optional_probability, check_reduction
from .log_probs import check_log_probs


class OaXELoss(torch.nn.Module):
    r"""Order-agnostic cross entropy (Du et al. 2021): the cross entropy of the target reordered to
    the permutation the model predicts best.

    For sentence b of length L_b, with cost C[j, i] = -log P_j(Y_i) for prediction j and target token
    i (i, j < L_b), sigma = argmin over permutations of sum_j C[j, sigma(j)] (an exact linear
    assignment, solved for the whole batch in one call of :func:`mple_metrics.ops.oaxe_loss`), and
    the loss is sum_j C[j, sigma(j)].  The assignment is a constant for autograd: the gradient is
    -1 (scaled by the reduction) on the chosen log-probs log P_j(Y_sigma(j)) only.

    Args:
        truncate: None (default: no truncation, as the paper uses OaXE), or a probability p in
            (0, 1]: chosen terms with P_j(Y_sigma(j)) < p contribute 0 and no gradient (Du et al.'s
            skip of unlearnable tokens), compared in the loss's log base (log P < ln p).  The
            assignment is computed on the untruncated costs.  Du et al.'s public code compares a
            natural-log NLL with -log2(p), so its ``skip=p`` is ``truncate=p ** (1 / ln 2)`` here.
        reduction: ``"none"``: per-sentence sums, shape (B,); ``"sum"``: their sum; ``"mean"``
            (default): their sum divided by the number of target tokens sum_b L_b (truncated
            positions included), 0 for a batch without tokens — a loss per target token, the op's
            convention.

    Shape:
        - ``log_probs``: (B, L, V) log-probabilities of the L predictions of each sentence, batch
          first, any floating dtype, CPU or CUDA.
        - ``targets``: (B, L) integer token ids; positions j >= ``lengths[b]`` are ignored.
        - ``lengths``: (B,) integer in [0, L]; prediction and target share the length.
        - output: a scalar, or (B,) for ``reduction="none"``, of the dtype of ``log_probs``.

    Units: nats.  Deterministic; one device-to-host synchronisation for the argument checks, one for
    the log-probs check and one for the assignment's status.  A sentence whose every permutation
    meets a zero probability (a target token with log-prob -inf at every prediction) costs +inf and
    contributes no gradient, as in :class:`AXELoss` (the op :func:`mple_metrics.ops.oaxe_loss`
    refuses it; the module then solves that batch again without it).  NaN log-probs raise
    ``ValueError`` naming the position, log-probs above 0 (logits passed by mistake;
    :mod:`mple_metrics.losses.log_probs`) naming ``log_probs``; bad shapes, dtypes, devices,
    lengths or ids raise ``TypeError``/``ValueError`` naming the argument.

    Example::

        >>> criterion = OaXELoss()                                     # nats per target token
        >>> log_probs = torch.randn(2, 4, 12).log_softmax(-1).requires_grad_()    # (B, L, V)
        >>> targets, lengths = torch.tensor([[7, 8, 9, 10], [7, 7, 8, 0]]), torch.tensor([4, 3])
        >>> criterion(log_probs, targets, lengths).backward()
        >>> proxy = criterion.align(log_probs, targets, lengths)        # T*, a permutation per row
    """

    def __init__(self, truncate: float | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.truncate = check_optional_probability(truncate, "truncate")
        self.reduction = check_reduction(reduction)

    def forward(self, log_probs: Tensor, targets: Tensor, lengths: Tensor) -> Tensor:
        """The OaXE loss of the batch (see the class docstring for shapes, units and reduction)."""
        check_log_probs(log_probs, lengths)
        try:
            return oaxe_loss(log_probs, targets, lengths, truncate=self.truncate, reduction=self.reduction)
        except ValueError:
            infeasible = _infeasible_sentences(log_probs, targets, lengths)
            if infeasible is None:
                raise
        # The op refuses a sentence that no ordering can score; here it costs +inf with no gradient,
        # as in AXELoss (and torch.nn.CTCLoss).  The others are scored as usual.
        per_sentence = oaxe_loss(log_probs, targets, lengths.masked_fill(infeasible, 0), truncate=self.truncate,
                                 reduction="none").masked_fill(infeasible, math.inf)
        if self.reduction == "none":
            return per_sentence
        total = per_sentence.sum()
        if self.reduction == "sum":
            return total
        return total / lengths.sum().clamp(min=1).to(total.dtype)

    def align(self, log_probs: Tensor, targets: Tensor, lengths: Tensor) -> Tensor:
        """The proxy target T* (Eq. 20): T*[b, j] = Y_sigma(j), int64 (B, L) on the device of
        ``log_probs``.

        For j < ``lengths[b]`` a permutation of ``targets[b, :lengths[b]]`` minimising
        sum_j -log P_j(T*_j) (the assignment :meth:`forward` scores; ``truncate`` does not change
        it); positions j >= ``lengths[b]`` keep ``targets[b, j]``.  Not differentiable;
        deterministic (among equally good permutations the choice is fixed).  A sentence that no
        ordering can score (every one meets a zero probability) keeps its targets in order.
        """
        check_log_probs(log_probs, lengths)
        try:
            return oaxe_align(log_probs, targets, lengths)
        except ValueError:
            infeasible = _infeasible_sentences(log_probs, targets, lengths)
            if infeasible is None:
                raise
        return oaxe_align(log_probs, targets, lengths.masked_fill(infeasible, 0))  # length 0: kept as given

    def extra_repr(self) -> str:
        return f"truncate={self.truncate}, reduction={self.reduction!r}"


def _infeasible_sentences(log_probs: Tensor, targets: Tensor, lengths: Tensor) -> Tensor | None:
    """(B,) bool: the sentences whose every ordering gives some prediction a zero probability (no
    perfect matching among the pairs of log-prob > -inf), or None when there is none or the
    arguments are malformed (the op's error then stands).  Only called after the op refused."""
    try:
        batch, width, _ = log_probs.shape
        lengths = lengths.long()
        valid = torch.arange(width, device=log_probs.device) < lengths[:, None]
        safe = targets.long().masked_fill(~valid, 0)
        with torch.no_grad():
            selected = log_probs.detach().gather(2, safe[:, None, :].expand(batch, width, width))
            # 0 where P_j(Y_i) > 0 (NaN too: its error is the op's), +inf where it is 0.
            cost = torch.zeros(selected.shape, dtype=torch.float64, device=selected.device)
            cost = cost.masked_fill(selected == -math.inf, math.inf)
            _, status = torch.ops.mple.linear_sum_assignment(cost, lengths, lengths)
        infeasible = status == LAP_INFEASIBLE
    except Exception:  # noqa: BLE001  (malformed arguments: the op's own error is raised instead)
        return None
    return infeasible if bool(infeasible.any()) else None
