"""Noisy parallel decoding (NPD; Gu et al. 2018; the paper's Table 4): an AT scores the NAT's
candidates (length beam, or Input Sampling's samples) and the best one is kept.

The score is the AT's log-probability of the candidate followed by ``</s>``, per position (length
normalised, so that short candidates are not favoured); empty candidates score -inf.  One batched
teacher-forced AT pass over all candidates.  Deterministic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data import pad_sequences
from ..models import ATModel, at_token_nll


@torch.no_grad()
def at_rerank(at: ATModel, src: Tensor, src_lengths: Tensor, candidates: list[list[list[int]]]) -> Tensor:
    """(B,) index of the best candidate of each sentence under ``at``; ``candidates[b]`` lists
    sentence b's K candidate token-id lists (K may differ between sentences)."""
    rows, owners = [], []
    for b, cands in enumerate(candidates):
        for c in cands:
            rows.append(c)
            owners.append(b)
    if not rows:
        return torch.zeros(len(candidates), dtype=torch.long)
    owner = torch.tensor(owners, device=src.device)
    tgt, lengths = pad_sequences(rows)
    tgt, lengths = tgt.to(src.device), lengths.to(src.device)
    was_training = at.training
    at.eval()
    try:
        nll = at_token_nll(at, src[owner], src_lengths[owner], tgt, lengths).double().sum(1)
    finally:
        at.train(was_training)
    score = (-nll / (lengths.double() + 1)).masked_fill(lengths == 0, -math.inf).cpu()
    best, start = [], 0
    for cands in candidates:
        k = len(cands)
        best.append(int(score[start:start + k].argmax()) if k else 0)
        start += k
    return torch.tensor(best, dtype=torch.long)
