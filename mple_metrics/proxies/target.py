"""The proxy-target interface: how a NAT training method chooses the target T it maximises the
likelihood of (the paper's Sec. 3: every method is MLE on a proxy distribution Q(T|Z, X)).

A method is one :class:`TargetProxy` subclass in its own module.  The trainer calls, per
micro-batch::

    batch = proxy.prepare(model, batch, split)      # no gradient: e.g. dynamic KD picks T
    outputs = proxy.forward(model, batch)           # the NAT's decoder pass (with gradient)
    loss, tokens = proxy.loss(batch, outputs, label_smoothing)
    T = proxy.proxy_target(batch, outputs)          # (B, Lp) ids: the T the loss was taken on

and the estimators evaluate L_NAT on exactly that T.  ``loss`` is summed over the batch (nats);
the trainer divides by the token count summed over micro-batches and processes, so gradient
accumulation and DDP normalise exactly as for MLE.  ``tokens`` equals ``batch.num_tokens`` (the
reference's tokens) for every method, so the trainer can count before the forward pass.

Label smoothing ε (where a method supports it) is applied as fairseq does for MLE:
``(1 − ε) · L_method + ε · Σ_positions mean_v(−log p_v)`` over the predicted positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from ..data import PAD_ID, Batch, pad_sequences
from ..models import NATModel, padding_mask
from ..models.scoring import at_least_float32


@dataclass
class ProxyOutputs:
    """A NAT decoder pass for a proxy: ``log_probs`` (B, Lp, V) natural-log probabilities (float32
    or float64) at the prediction lengths ``pred_lengths`` (B,); ``length_logits`` (B, C) of the
    length predictor, trained towards ``pred_lengths``."""

    log_probs: Tensor
    pred_lengths: Tensor
    length_logits: Tensor
    mask_logits: Tensor | None = None


class TargetProxy:
    """Base class: MLE on the batch's own target (``batch.tgt``) at its length."""

    name: ClassVar[str] = "raw"
    #: Whether T may contain the blank token ε (removed after decoding).
    uses_blank: ClassVar[bool] = False

    def __init__(self) -> None:
        self.update = 0  # the optimizer update being computed (set by the trainer)

    # -- the four steps ----------------------------------------------------------------------
    def prepare(self, model: NATModel, batch: Batch, split: str = "train") -> Batch:
        """The batch the loss is computed on (default: unchanged).  Runs without gradient."""
        return batch

    def pred_lengths(self, batch: Batch) -> Tensor:
        """(B,) prediction lengths: the target lengths by default."""
        return batch.tgt_lengths

    def forward(self, model: NATModel, batch: Batch) -> ProxyOutputs:
        """The decoder pass at the prediction lengths; a batch with a proxy input
        (:class:`~mple_metrics.proxies.inputs.InputBatch`) feeds its Z to the decoder, and its
        vanilla-pass states to the "is masked" head."""
        lengths = self.pred_lengths(batch)
        input_tokens, reveal = batch.decoder_input() if hasattr(batch, "decoder_input") else (None, None)
        features = getattr(batch, "mask_features", None)
        out = model(batch.src, batch.src_lengths, lengths, input_tokens=input_tokens, reveal=reveal,
                    mask_features=features)
        return ProxyOutputs(F.log_softmax(at_least_float32(out.logits), dim=-1), lengths, out.length_logits,
                            out.mask_logits)

    def loss(self, batch: Batch, outputs: ProxyOutputs, label_smoothing: float = 0.0) -> tuple[Tensor, int]:
        """(summed loss in nats, tokens it is taken on) of the batch; MLE of ``batch.tgt`` by
        default, on the hidden positions only when the batch has a proxy input."""
        target, lengths = batch.tgt, batch.tgt_lengths
        if getattr(batch, "reveal", None) is not None:
            target = target.masked_fill(batch.reveal, PAD_ID)  # revealed: copied, log-prob 0
        return self.mle_loss(outputs.log_probs, target, lengths, label_smoothing), batch.loss_tokens

    def proxy_target(self, batch: Batch, outputs: ProxyOutputs) -> Tensor:
        """(B, Lp) int64 ids of T (``PAD_ID`` beyond ``outputs.pred_lengths``)."""
        width = outputs.log_probs.shape[1]
        return batch.tgt[:, :width].masked_fill(padding_mask(outputs.pred_lengths, width), PAD_ID)

    # -- shared pieces -----------------------------------------------------------------------
    @staticmethod
    def mle_loss(log_probs: Tensor, target: Tensor, lengths: Tensor, label_smoothing: float) -> Tensor:
        """Summed (label-smoothed) NLL of ``target`` (B, L) at positions < ``lengths`` that are not
        ``PAD_ID``, nats."""
        width = log_probs.shape[1]
        target = target[:, :width].masked_fill(padding_mask(lengths, width), PAD_ID)
        nll = F.nll_loss(log_probs.flatten(0, 1), target.flatten(), ignore_index=PAD_ID, reduction="sum")
        if not label_smoothing:
            return nll
        return (1.0 - label_smoothing) * nll + label_smoothing * smoothing_term(log_probs, lengths, target != PAD_ID)

    def take_counts(self) -> list[float] | None:
        """Counts the method keeps about its choices since the last call (dynamic KD: how often each
        candidate was chosen in training), then reset; None for methods without any."""
        return None

    def settings(self) -> dict[str, Any]:
        """The method's settings (recorded in outputs)."""
        return {"target": self.name}


def smoothing_term(log_probs: Tensor, lengths: Tensor, keep: Tensor | None = None) -> Tensor:
    """Σ over positions < ``lengths`` (and where ``keep``, if given) of ``mean_v(−log p_v)`` (the
    uniform part of label smoothing), nats."""
    inside = ~padding_mask(lengths, log_probs.shape[1])
    if keep is not None:
        inside = inside & keep
    return (-log_probs.mean(dim=-1)).masked_fill(~inside, 0.0).sum()


def sequence_nll(log_probs: Tensor, target: Tensor, lengths: Tensor) -> Tensor:
    """(B,) float64 summed NLL (nats) of ``target`` (B, Lp) at positions < ``lengths``."""
    width = log_probs.shape[1]
    nll = -log_probs.gather(-1, target[:, :width].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return nll.masked_fill(padding_mask(lengths, width), 0.0).double().sum(1)


def replace_targets(batch: Batch, targets: list[list[int]]) -> Batch:
    """``batch`` with its targets replaced by ``targets`` (one id list per sentence), padded."""
    tgt, lengths = pad_sequences(targets)
    return Batch(batch.src, batch.src_lengths, tgt.to(batch.src.device), lengths.to(batch.src.device),
                 batch.indices)
