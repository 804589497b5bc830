"""Scores of given targets under trained models: what the estimators (C, L_NAT, L_input) need.

All functions run the model in whatever mode it is in (call ``model.eval()`` for deterministic
scores) under ``torch.no_grad`` unless ``grad=True``.  NLLs are per sentence, summed over target
tokens, in ``unit`` = ``"bits"`` (default) or ``"nats"``, float64.  Targets are bare token ids
(no bos/eos), as in :class:`mple_metrics.data.Batch`.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .at import ATModel, teacher_forcing
from .nat import NATModel
from .transformer import padding_mask

UNITS: tuple[str, ...] = ("bits", "nats")


def unit_divisor(unit: str) -> float:
    """Divide a natural-log quantity by this to express it in ``unit``."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    return math.log(2.0) if unit == "bits" else 1.0


def at_least_float32(x: Tensor) -> Tensor:
    """Half-precision scores are normalised in float32; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _grad_context(grad: bool):
    return contextlib.nullcontext() if grad else torch.no_grad()


def at_token_nll(model: ATModel, src: Tensor, src_lengths: Tensor, tgt: Tensor, tgt_lengths: Tensor,
                 grad: bool = False) -> Tensor:
    """Per-token NLL in nats (B, T+1) of ``y_1..y_T </s>`` (0 at padding), float32."""
    with _grad_context(grad):
        logits = model(src, src_lengths, tgt, tgt_lengths)
        _, outputs = teacher_forcing(tgt, tgt_lengths)
        # (B*T, V) rows: a transposed (B, V, T) input would make the softmax reduce over strided memory.
        flat = at_least_float32(logits).reshape(-1, logits.shape[-1])
        nll = F.cross_entropy(flat, outputs.reshape(-1), reduction="none").view(outputs.shape)
        return nll.masked_fill(padding_mask(tgt_lengths + 1, outputs.shape[1]), 0.0)


def nat_log_probs(model: NATModel, src: Tensor, src_lengths: Tensor, tgt_lengths: Tensor,
                  input_tokens: Tensor | None = None, reveal: Tensor | None = None,
                  grad: bool = False) -> Tensor:
    """NAT log-probabilities (natural log) (B, T, V), float32 (float64 for a float64 model), given target lengths (B,) and an
    optional decoder input: ``input_tokens`` (B, T) with ``MASK_ID`` at hidden positions (CMLM), plus
    ``reveal`` (B, T) bool to mix revealed target embeddings into the copy input (GLAT).  Padded
    positions hold garbage; mask them with ``tgt_lengths``."""
    with _grad_context(grad):
        out = model(src, src_lengths, tgt_lengths, input_tokens=input_tokens, reveal=reveal)
        return F.log_softmax(at_least_float32(out.logits), dim=-1)


def nat_length_nll(model: NATModel, src: Tensor, src_lengths: Tensor, tgt_lengths: Tensor,
                   grad: bool = False) -> Tensor:
    """NLL in nats (B,) of the target lengths under the length predictor (clipped offsets)."""
    with _grad_context(grad):
        logits = model.length_logits(model.encode(src, src_lengths))
        return F.cross_entropy(at_least_float32(logits), model.length_targets(src_lengths, tgt_lengths), reduction="none")


def score_targets(model: ATModel | NATModel, batch, unit: str = "bits", include_eos: bool = True,
                  include_length: bool = False, count_positions: Tensor | None = None,
                  input_tokens: Tensor | None = None, reveal: Tensor | None = None,
                  grad: bool = False) -> Tensor:
    """Per-sentence NLL (B,) float64 of ``batch.tgt`` given ``batch.src``.

    AT: sum of ``-log P(y_t | y_<t, X)`` plus the end-of-sentence term when ``include_eos``.
    NAT: sum of ``-log P(y_t | X, T)`` at the gold length T (with optional ``input_tokens``/
    ``reveal``), plus the length predictor's ``-log P(T | X)`` when ``include_length``.
    ``count_positions`` (B, T) bool, NAT only: count only these positions (e.g. the masked ones of
    CMLM/GLAT, whose revealed positions count with log-probability 0).

    Args:
        batch: anything with ``src``, ``src_lengths``, ``tgt``, ``tgt_lengths`` ((B, L) and (B,)
            int64 tensors on the model's device), e.g. :class:`mple_metrics.data.Batch`.
    """
    divisor = unit_divisor(unit)
    src, src_lengths, tgt, tgt_lengths = batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths
    if isinstance(model, ATModel):
        if include_length or count_positions is not None or input_tokens is not None or reveal is not None:
            raise ValueError("include_length, count_positions, input_tokens and reveal apply to NAT models only")
        nll = at_token_nll(model, src, src_lengths, tgt, tgt_lengths, grad)
        if not include_eos:
            nll = nll.scatter(1, tgt_lengths.unsqueeze(1), 0.0)
        return nll.double().sum(1) / divisor
    if not isinstance(model, NATModel):
        raise TypeError(f"model must be an ATModel or NATModel, got {type(model).__name__}")
    logp = nat_log_probs(model, src, src_lengths, tgt_lengths, input_tokens, reveal, grad)
    width = logp.shape[1]
    target = tgt[:, :width]
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    keep = ~padding_mask(tgt_lengths, width)
    if count_positions is not None:
        if count_positions.shape != keep.shape:
            raise ValueError(f"count_positions must be (B, T) = {tuple(keep.shape)}, got "
                             f"{tuple(count_positions.shape)}")
        keep = keep & count_positions
    total = nll.masked_fill(~keep, 0.0).double().sum(1)
    if include_length:
        total = total + nat_length_nll(model, src, src_lengths, tgt_lengths, grad).double()
    return total / divisor
