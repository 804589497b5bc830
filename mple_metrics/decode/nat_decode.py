"""NAT decoding: argmax at a predicted length, length beam (length-parallel decoding, LPD),
length factor λ and de-duplication of consecutive repeats.

All positions of a sentence are predicted in one decoder pass.  With ``length_beam = l > 1`` the
top-l lengths of the length predictor are decoded in parallel (B*l rows) and, per sentence, the
candidate with the highest mean token log-probability is kept (Gu et al. 2018; Wei et al. 2019).
Outputs drop special ids other than ``<unk>`` (pad, bos, eos, mask, blank).  Deterministic.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import BLANK_ID, BOS_ID, EOS_ID, MASK_ID, PAD_ID
from ..models import NATModel, padding_mask
from ..models.scoring import at_least_float32
from .at_search import Hypotheses

_DROPPED_IDS = (PAD_ID, BOS_ID, EOS_ID, MASK_ID, BLANK_ID)


def deduplicate(tokens: list[int]) -> list[int]:
    """Remove consecutive repeats: ``[a, a, b, a] -> [a, b, a]``."""
    return [t for i, t in enumerate(tokens) if i == 0 or t != tokens[i - 1]]


def clean_output(tokens: list[int], dedup: bool) -> list[int]:
    """Drop special ids (see module docstring), then de-duplicate if asked."""
    kept = [t for t in tokens if t not in _DROPPED_IDS]
    return deduplicate(kept) if dedup else kept


def argmax_in_chunks(model: NATModel, hidden: Tensor, rows_per_chunk: int = 256) -> tuple[Tensor, Tensor]:
    """Argmax token (N, T) and its log-probability (N, T) from decoder states (N, T, d), projecting
    ``rows_per_chunk`` positions at a time so that the (positions, V) scores stay cache-sized
    instead of materialising all (N, T, V) of them."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    best = torch.empty(flat.shape[0], dtype=torch.float64 if hidden.dtype == torch.float64 else torch.float32,
                       device=hidden.device)
    tokens = torch.empty(flat.shape[0], dtype=torch.long, device=hidden.device)
    for start in range(0, flat.shape[0], rows_per_chunk):
        logits = at_least_float32(model.output_logits(flat[start:start + rows_per_chunk]))
        top, index = logits.max(dim=-1)
        best[start:start + rows_per_chunk] = top - torch.logsumexp(logits, dim=-1)  # no full log_softmax
        tokens[start:start + rows_per_chunk] = index
    return best.view(hidden.shape[:2]), tokens.view(hidden.shape[:2])


@torch.no_grad()
def nat_argmax(model: NATModel, src: Tensor, src_lengths: Tensor, length_beam: int = 1,
               length_factor: float = 0.0, dedup: bool = False,
               tgt_lengths: Tensor | None = None, reranker=None) -> Hypotheses:
    """Argmax decoding of a batch src (B, S).

    Args:
        length_beam: number of predicted lengths decoded in parallel (LPD); 1 = plain argmax.
        length_factor: λ, predicted lengths become ``round(T̂ (1 + λ))``.
        dedup: remove consecutive repeated tokens from the outputs.
        tgt_lengths: decode at these lengths (B,) instead of predicted ones (e.g. gold lengths).
        reranker: an :class:`~mple_metrics.models.ATModel` that chooses among the length-beam
            candidates instead of their mean log-probability (noisy parallel decoding,
            :mod:`mple_metrics.decode.rerank`).

    Returns:
        :class:`Hypotheses` whose ``scores`` are the chosen candidates' mean token log-probs (nats).
    """
    if length_beam < 1:
        raise ValueError(f"length_beam must be >= 1, got {length_beam}")
    if length_factor <= -1.0:
        raise ValueError(f"length_factor must be > -1, got {length_factor}")
    batch = src.shape[0]
    enc = model.encode(src, src_lengths)
    if tgt_lengths is not None:
        if tgt_lengths.shape != (batch,):
            raise ValueError(f"tgt_lengths must be (B,) = ({batch},), got {tuple(tgt_lengths.shape)}")
        lengths = tgt_lengths.clamp(min=1).unsqueeze(1)
    else:
        lengths, _ = model.predict_lengths(enc, beam=length_beam, length_factor=length_factor)
    beams = lengths.shape[1]
    flat_lengths = lengths.reshape(-1)
    if beams > 1:
        enc = enc.index_select(torch.arange(batch, device=src.device).repeat_interleave(beams))
    hidden, pad = model.decode_hidden(enc, flat_lengths, int(flat_lengths.max()))
    best, tokens = argmax_in_chunks(model, hidden)
    mean = best.masked_fill(pad, 0.0).sum(1).double() / flat_lengths.double()
    if reranker is not None and beams > 1:
        from .rerank import at_rerank

        everything = [clean_output(row[:n], dedup) for row, n in zip(tokens.tolist(), flat_lengths.tolist())]
        choice = at_rerank(reranker, src, src_lengths,
                           [everything[b * beams:(b + 1) * beams] for b in range(batch)]).to(src.device)
    else:
        choice = mean.view(batch, beams).argmax(dim=-1)
    pick = torch.arange(batch, device=src.device) * beams + choice
    rows = tokens[pick].tolist()
    chosen_lengths = flat_lengths[pick].tolist()
    outputs = [clean_output(row[:n], dedup) for row, n in zip(rows, chosen_lengths)]
    return Hypotheses(outputs, mean[pick])


def nat_gold_length_argmax(model: NATModel, src: Tensor, src_lengths: Tensor, tgt_lengths: Tensor) -> Tensor:
    """(B, T) argmax tokens at the given lengths (PAD beyond them), without cleaning: the
    position-aligned output a frozen NAT provides to the input predictor."""
    with torch.no_grad():
        out = model(src, src_lengths, tgt_lengths)
        return out.logits.argmax(-1).masked_fill(padding_mask(tgt_lengths, out.logits.shape[1]), PAD_ID)
