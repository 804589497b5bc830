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


@torch.no_grad()
def nat_argmax(model: NATModel, src: Tensor, src_lengths: Tensor, length_beam: int = 1,
               length_factor: float = 0.0, dedup: bool = False,
               tgt_lengths: Tensor | None = None) -> Hypotheses:
    """Argmax decoding of a batch src (B, S).

    Args:
        length_beam: number of predicted lengths decoded in parallel (LPD); 1 = plain argmax.
        length_factor: λ, predicted lengths become ``round(T̂ (1 + λ))``.
        dedup: remove consecutive repeated tokens from the outputs.
        tgt_lengths: decode at these lengths (B,) instead of predicted ones (e.g. gold lengths).

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
    out = model.decode(enc, flat_lengths)
    logits = at_least_float32(out.logits)
    best, tokens = logits.max(dim=-1)
    best = best - torch.logsumexp(logits, dim=-1)  # log-prob of the argmax, no full log_softmax
    mean = best.masked_fill(out.pad, 0.0).sum(1).double() / flat_lengths.double()
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
