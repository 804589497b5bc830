"""Validation: NLL of the references in bits per token and per sentence, and BLEU of decoded
outputs (on token ids with the batched kernels, multi-reference, with a signature; and on
detokenized text with sacrebleu's 13a tokenization through the same kernels).

NLL conventions: AT scores ``y_1..y_T </s>`` (T+1 positions per sentence); NAT scores ``y_1..y_T``
at the gold length T (length term reported separately), so ``nll_bits_per_token`` divides by T+1
for AT and T for NAT.  Deterministic (the model runs in eval mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..data import BatchIterator, EncodedSplit, TokenizerPair
from ..decode import DecodeOptions, translate_encoded
from ..metrics import BLEU
from ..models import ATModel, NATModel, nat_length_nll, score_targets


@torch.no_grad()
def reference_nll(model: ATModel | NATModel, encoded: EncodedSplit, max_tokens: int,
                  device: torch.device) -> dict[str, float]:
    """NLL of ``encoded.tgt`` given ``encoded.src`` (see module docstring), bits."""
    was_training = model.training
    model.eval()
    total, positions, length_total = 0.0, 0, 0.0
    is_at = isinstance(model, ATModel)
    for batch in BatchIterator(encoded, max_tokens=max_tokens, shuffle=False, drop_uneven=False):
        batch = batch.to(device)
        total += float(score_targets(model, batch).sum())
        positions += batch.num_tokens + (len(batch) if is_at else 0)
        if not is_at:
            length_total += float(nat_length_nll(model, batch.src, batch.src_lengths,
                                                 batch.tgt_lengths).double().sum()) / math.log(2.0)
    model.train(was_training)
    result = {"nll_bits_per_token": total / max(positions, 1),
              "nll_bits_per_sentence": total / max(len(encoded), 1),
              "scored_positions": positions, "sentences": len(encoded)}
    if not is_at:
        result["length_nll_bits_per_sentence"] = length_total / max(len(encoded), 1)
    return result


def bleu_scores(hypotheses: Sequence[Sequence[int]], references: Sequence[Sequence[Sequence[int]]],
                tokenizers: TokenizerPair) -> dict[str, Any]:
    """Corpus BLEU (0-100) on token ids and on detokenized text (13a), with signatures."""
    on_ids = BLEU(tokenize="ids").corpus_score(list(hypotheses), [list(r) for r in references])
    hyp_text = [tokenizers.tgt.decode(h) for h in hypotheses]
    ref_text = [[tokenizers.tgt.decode(r) for r in refs] for refs in references]
    on_text = BLEU(tokenize="13a").corpus_score(hyp_text, ref_text)
    return {"bleu": on_text.score, "bleu_signature": str(on_text.signature),
            "bleu_ids": on_ids.score, "bleu_ids_signature": str(on_ids.signature)}


def validate(model: ATModel | NATModel, encoded: EncodedSplit, references: Sequence[Sequence[Sequence[int]]],
             tokenizers: TokenizerPair, max_tokens: int, device: torch.device,
             options: DecodeOptions = DecodeOptions(), bleu_max_sentences: int = 0,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """NLL and BLEU on a split.  ``references[i]`` are the token-id references of sentence i
    (target first).  ``bleu_max_sentences`` > 0 decodes only the first that many sentences."""
    result: dict[str, Any] = reference_nll(model, encoded, max_tokens, device)
    count = len(encoded) if bleu_max_sentences <= 0 else min(bleu_max_sentences, len(encoded))
    hyps = translate_encoded(model, encoded.src[:count], options, max_tokens=max_tokens, device=device,
                             progress=progress)
    result.update(bleu_scores(hyps, references[:count], tokenizers))
    result["bleu_sentences"] = count
    return result
