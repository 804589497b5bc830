"""``oaxe``: order-agnostic cross entropy (Du et al. 2021; the paper's Appendix E.4).

Q(T|X) is a point mass at T* = the permutation of the reference that the NAT predicts best (a
linear assignment per sentence, :func:`mple_metrics.ops.oaxe_align`); the loss is its NLL
(:func:`mple_metrics.ops.oaxe_loss`).  Without a monotonic constraint T* can be far from any real
translation, so OaXE starts from an MLE NAT: ``--init-from CKPT`` (the paper fine-tunes a trained
vanilla NAT at a fixed learning rate, Appendix G: add ``--lr-schedule constant``), or
``pretrain_steps`` updates of MLE inside the same run before switching to OaXE.

Truncation ``truncate`` p drops assigned terms whose probability is below p (log base stated: the
comparison is ``log P < ln p``, the loss's own base).  ``truncate_base="public-code"`` reproduces
the public OaXE implementation, which compares a natural-log NLL with ``−log2 p`` (mixing bases):
its ``p`` equals ours ``p ** (1 / ln 2)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data import PAD_ID, Batch
from ..models import padding_mask
from ..ops import oaxe_align, oaxe_loss
from .target import ProxyOutputs, TargetProxy, smoothing_term

TRUNCATE_BASES: tuple[str, ...] = ("loss", "public-code")


class OaXETarget(TargetProxy):
    """OaXE after ``pretrain_steps`` updates of MLE, with optional truncation."""

    name = "oaxe"

    def __init__(self, pretrain_steps: int = 0, truncate: float | None = None,
                 truncate_base: str = "loss") -> None:
        super().__init__()
        if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) or pretrain_steps < 0:
            raise ValueError(f"--oaxe-pretrain-steps must be an integer >= 0, got {pretrain_steps!r}")
        if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, (int, float))
                                     or not 0.0 < truncate <= 1.0):
            raise ValueError(f"--oaxe-truncate must be a probability in (0, 1], got {truncate!r}")
        if truncate_base not in TRUNCATE_BASES:
            raise ValueError(f"--oaxe-truncate-base must be one of {TRUNCATE_BASES}, got {truncate_base!r}")
        self.pretrain_steps = pretrain_steps
        self.truncate = truncate
        self.truncate_base = truncate_base

    @property
    def pretraining(self) -> bool:
        """Whether the current update is one of the MLE pre-training updates."""
        return self.update < self.pretrain_steps

    def effective_truncate(self) -> float | None:
        """The threshold in the loss's own base (what :func:`oaxe_loss` compares)."""
        if self.truncate is None or self.truncate_base == "loss":
            return self.truncate
        return self.truncate ** (1.0 / math.log(2.0))

    def loss(self, batch: Batch, outputs: ProxyOutputs, label_smoothing: float = 0.0) -> tuple[Tensor, int]:
        if self.pretraining:
            return super().loss(batch, outputs, label_smoothing)
        width = outputs.log_probs.shape[1]
        cost = oaxe_loss(outputs.log_probs, batch.tgt[:, :width], batch.tgt_lengths,
                         truncate=self.effective_truncate(), reduction="sum")
        if label_smoothing:
            cost = (1.0 - label_smoothing) * cost + label_smoothing * smoothing_term(
                outputs.log_probs, batch.tgt_lengths)
        return cost, batch.num_tokens

    def proxy_target(self, batch: Batch, outputs: ProxyOutputs) -> Tensor:
        if self.pretraining:
            return super().proxy_target(batch, outputs)
        width = outputs.log_probs.shape[1]
        with torch.no_grad():
            target = oaxe_align(outputs.log_probs.detach(), batch.tgt[:, :width], batch.tgt_lengths)
        return target.masked_fill(padding_mask(batch.tgt_lengths, width), PAD_ID)

    def settings(self) -> dict:
        return {"target": self.name, "pretrain_steps": self.pretrain_steps, "truncate": self.truncate,
                "truncate_base": self.truncate_base}
