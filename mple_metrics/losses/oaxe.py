"""``OaXELoss``: the OaXE loss (order-agnostic cross entropy; paper Appendix E.4) as a
``torch.nn.Module``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops import oaxe_align, oaxe_loss
from .arguments import check_optional_probability, check_reduction


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

    Units: nats.  Deterministic; one device-to-host synchronisation for the argument checks and one
    for the assignment's status.  A sentence whose every permutation meets a zero probability
    (cost +inf) and NaN log-probs raise ``ValueError`` naming the sentence; bad shapes, dtypes,
    devices, lengths or ids raise ``TypeError``/``ValueError`` naming the argument.

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
        return oaxe_loss(log_probs, targets, lengths, truncate=self.truncate, reduction=self.reduction)

    def align(self, log_probs: Tensor, targets: Tensor, lengths: Tensor) -> Tensor:
        """The proxy target T* (Eq. 20): T*[b, j] = Y_sigma(j), int64 (B, L) on the device of
        ``log_probs``.

        For j < ``lengths[b]`` a permutation of ``targets[b, :lengths[b]]`` minimising
        sum_j -log P_j(T*_j) (the assignment :meth:`forward` scores; ``truncate`` does not change
        it); positions j >= ``lengths[b]`` keep ``targets[b, j]``.  Not differentiable;
        deterministic (among equally good permutations the choice is fixed).
        """
        return oaxe_align(log_probs, targets, lengths)

    def extra_repr(self) -> str:
        return f"truncate={self.truncate}, reduction={self.reduction!r}"
