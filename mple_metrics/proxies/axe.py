"""``axe``: aligned cross entropy (Ghazvininejad et al. 2020; the paper's Appendix E.3).

Q(T|X) is a point mass at T* = argmin over the subsequences of the reference R with blanks ε
inserted (a monotonic alignment of R to the predictions) of the NAT's NLL, where aligning more than
one reference token to one prediction ("skip target") is charged ``skip_penalty`` δ times (Eq. 20;
the paper's τ).  The loss is the alignment cost A[Ly, Lp] of :func:`mple_metrics.ops.axe_loss`;
T* is :func:`mple_metrics.ops.axe_align` (the first reference token aligned to each prediction, ε
for a skipped prediction).  ε is ``BLANK_ID``, part of every target vocabulary, and removed from
outputs after decoding.

The prediction length is the target length by default; ``pred_length_scale`` s >= 1 predicts
``round(s · Ly)`` positions (capped at the model's ``max_positions``), as CTC-style methods do, and
the length predictor learns that length, so decoding needs no extra setting.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data import BLANK_ID, PAD_ID, Batch
from ..models import padding_mask
from ..ops import axe_align, axe_loss
from .target import ProxyOutputs, TargetProxy, smoothing_term


class AXETarget(TargetProxy):
    """AXE with skip penalty δ (``skip_penalty``) and prediction-length scale s."""

    name = "axe"
    uses_blank = True

    def __init__(self, skip_penalty: float = 1.0, pred_length_scale: float = 1.0,
                 max_positions: int | None = None) -> None:
        super().__init__()
        if isinstance(skip_penalty, bool) or not isinstance(skip_penalty, (int, float)) \
                or not math.isfinite(skip_penalty) or skip_penalty < 0:
            raise ValueError(f"--skip-penalty must be a finite number >= 0, got {skip_penalty!r}")
        if isinstance(pred_length_scale, bool) or not isinstance(pred_length_scale, (int, float)) \
                or not math.isfinite(pred_length_scale) or pred_length_scale < 1:
            raise ValueError(f"--pred-length-scale must be a finite number >= 1, got {pred_length_scale!r}")
        self.skip_penalty = float(skip_penalty)
        self.pred_length_scale = float(pred_length_scale)
        self.max_positions = max_positions

    def pred_lengths(self, batch: Batch) -> Tensor:
        if self.pred_length_scale == 1.0:
            return batch.tgt_lengths
        lengths = torch.round(batch.tgt_lengths.double() * self.pred_length_scale).long()
        return lengths.clamp(max=self.max_positions) if self.max_positions else lengths

    def loss(self, batch: Batch, outputs: ProxyOutputs, label_smoothing: float = 0.0) -> tuple[Tensor, int]:
        cost = axe_loss(outputs.log_probs, batch.tgt, outputs.pred_lengths, batch.tgt_lengths,
                        blank=BLANK_ID, skip_penalty=self.skip_penalty, reduction="sum")
        if label_smoothing:
            cost = (1.0 - label_smoothing) * cost + label_smoothing * smoothing_term(
                outputs.log_probs, outputs.pred_lengths)
        return cost, batch.num_tokens

    def proxy_target(self, batch: Batch, outputs: ProxyOutputs) -> Tensor:
        with torch.no_grad():
            target = axe_align(outputs.log_probs.detach(), batch.tgt, outputs.pred_lengths, batch.tgt_lengths,
                               blank=BLANK_ID, skip_penalty=self.skip_penalty)
        return target.masked_fill(padding_mask(outputs.pred_lengths, target.shape[1]), PAD_ID)

    def settings(self) -> dict:
        return {"target": self.name, "skip_penalty": self.skip_penalty,
                "pred_length_scale": self.pred_length_scale}


