"""AT decoding: greedy and batched beam search with cached keys/values.

Both search all B sentences at once (beam search as B*K rows), one decoder step per output token,
and are deterministic.  Outputs are token ids without bos/eos.  Hypotheses stop at ``</s>`` or
after ``floor(max_len_a * S + max_len_b)`` tokens for their own source length S (capped by the
model's positions), whichever is first.

Beam search keeps finished hypotheses in their beam slot (they extend with padding at log-prob 0),
so the K slots always hold the K best hypotheses by total log-probability; the final choice among
them divides by ``length ** length_penalty`` (length counts ``</s>``), as fairseq does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import BOS_ID, EOS_ID, PAD_ID
from ..models import ATModel, EncoderOut
from ..models.scoring import at_least_float32


@dataclass
class Hypotheses:
    """Decoded outputs: ``tokens`` list of B id lists (no bos/eos); ``scores`` (B,) float64 total
    log-probability in nats of each output including its ``</s>`` (when it ended with one)."""

    tokens: list[list[int]]
    scores: Tensor


def output_limits(model: ATModel, src_lengths: Tensor, max_len_a: float, max_len_b: int) -> Tensor:
    """(B,) int64 most output tokens per sentence: ``floor(max_len_a * S + max_len_b)``, at least 1
    and at most the model's positions minus one."""
    if max_len_a < 0 or max_len_b < 0:
        raise ValueError(f"max_len_a and max_len_b must be >= 0, got {max_len_a}, {max_len_b}")
    limits = torch.floor(src_lengths.double() * max_len_a + max_len_b).long()
    return limits.clamp(min=1, max=model.config.max_positions - 1)


def max_output_length(model: ATModel, src_lengths: Tensor, max_len_a: float, max_len_b: int) -> int:
    """Longest output of the batch (the number of decoder steps)."""
    limits = output_limits(model, src_lengths, max_len_a, max_len_b)
    return int(limits.max()) if limits.numel() else 0


def _trim(rows: Tensor, lengths: Tensor) -> list[list[int]]:
    return [row[:n] for row, n in zip(rows.tolist(), lengths.tolist())]


@torch.no_grad()
def greedy_search(model: ATModel, src: Tensor, src_lengths: Tensor, max_len_a: float = 1.5,
                  max_len_b: int = 10, enc: EncoderOut | None = None) -> Hypotheses:
    """Greedy decoding of a batch src (B, S), src_lengths (B,)."""
    enc = model.encode(src, src_lengths) if enc is None else enc
    batch = src.shape[0]
    limits = output_limits(model, src_lengths, max_len_a, max_len_b)
    steps = int(limits.max()) if batch else 0
    caches = model.new_caches()
    token = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    out = torch.full((batch, steps), PAD_ID, dtype=torch.long, device=src.device)
    lengths = torch.zeros(batch, dtype=torch.long, device=src.device)
    scores = torch.zeros(batch, dtype=torch.float64, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    for step in range(steps):
        finished |= limits <= step  # reached its length limit without </s>
        if bool(finished.all()):
            break
        logits = at_least_float32(model.decode_step(token, step, enc, caches))
        best, token = logits.max(dim=-1)
        best = best - torch.logsumexp(logits, dim=-1)  # log-prob of the argmax, no full log_softmax
        scores += best.double().masked_fill(finished, 0.0)
        ended = token == EOS_ID
        out[:, step] = token.masked_fill(finished | ended, PAD_ID)
        lengths += (~finished & ~ended).long()
        finished |= ended
        if bool(finished.all()):
            break
    return Hypotheses(_trim(out, lengths), scores)


@torch.no_grad()
def beam_search(model: ATModel, src: Tensor, src_lengths: Tensor, beam: int = 5,
                length_penalty: float = 1.0, max_len_a: float = 1.5, max_len_b: int = 10) -> Hypotheses:
    """Batched beam search of width ``beam``; ``beam=1`` equals :func:`greedy_search`."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    device = src.device
    batch = src.shape[0]
    rows = batch * beam
    expand = torch.arange(batch, device=device).repeat_interleave(beam)
    limits = output_limits(model, src_lengths, max_len_a, max_len_b).index_select(0, expand)
    steps = int(limits.max()) if batch else 0
    enc = model.encode(src, src_lengths).index_select(expand)
    caches = model.new_caches()
    token = torch.full((rows,), BOS_ID, dtype=torch.long, device=device)
    out = torch.full((rows, steps), PAD_ID, dtype=torch.long, device=device)
    lengths = torch.zeros(rows, dtype=torch.long, device=device)      # tokens before </s>
    ended_with_eos = torch.zeros(rows, dtype=torch.bool, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    # Only the first slot of each beam is live at the start (the others would duplicate it).
    scores = torch.full((batch, beam), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0
    base = (torch.arange(batch, device=device) * beam).unsqueeze(1)
    for step in range(steps):
        finished |= limits <= step  # reached its length limit without </s>
        if bool(finished.all()):
            break
        logp = F.log_softmax(at_least_float32(model.decode_step(token, step, enc, caches)), dim=-1)
        vocab = logp.shape[-1]
        # A finished hypothesis extends only with padding, at no cost.
        logp = logp.masked_fill(finished.unsqueeze(1), float("-inf"))
        logp[:, PAD_ID] = logp[:, PAD_ID].masked_fill(finished, 0.0)
        # Rank in the scores' precision (float32 for a float32 model), keep totals in float64.
        candidates = (scores.to(logp.dtype).unsqueeze(-1) + logp.view(batch, beam, vocab)).view(batch, -1)
        flat = candidates.topk(beam, dim=-1).indices
        origin = (base + flat // vocab).view(-1)
        token = (flat % vocab).view(-1)
        scores = (scores.view(-1)[origin] + logp[origin, token].double()).view(batch, beam)
        for cache in caches:
            cache.reorder(origin)
        out = out.index_select(0, origin)
        lengths = lengths.index_select(0, origin)
        was_finished = finished.index_select(0, origin)
        ended_with_eos = ended_with_eos.index_select(0, origin)
        ended = ~was_finished & (token == EOS_ID)
        out[:, step] = token.masked_fill(was_finished | ended, PAD_ID)
        lengths += (~was_finished & ~ended).long()
        ended_with_eos |= ended
        finished = was_finished | ended
        if bool(finished.all()):
            break
    normaliser = (lengths + ended_with_eos.long()).clamp(min=1).double() ** length_penalty
    choice = (scores.view(-1) / normaliser).view(batch, beam).argmax(dim=-1)
    pick = base.squeeze(1) + choice
    return Hypotheses(_trim(out[pick], lengths[pick]), scores.view(-1)[pick])
