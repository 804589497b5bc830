"""Validation: NLL of the references in bits per token and per sentence, and BLEU of decoded
outputs (on token ids with the batched kernels, multi-reference, with a signature; and on
detokenized text with sacrebleu's 13a tokenization through the same kernels).

Detokenized BLEU compares the decoded outputs with the references *as written in the dataset*,
never with ``decode(encode(reference))``: a tokenizer that cannot spell a reference word (the
``word`` tokenizer's ``<unk>``) must cost the hypothesis that word, as sacrebleu on the written
files would.  Only the id-level BLEU uses the tokenized references.

NLL conventions: AT scores ``y_1..y_T </s>`` (T+1 positions per sentence); NAT scores ``y_1..y_T``
at the gold length T (length term reported separately), so ``nll_bits_per_token`` divides by T+1
for AT and T for NAT.  ``length_nll_bits_per_sentence`` is each model's length term: the NAT's length
predictor -log2 P(T | X) (not in its NLL), the AT's end-of-sentence term (in its NLL).  Deterministic (the model runs in eval mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..data import BatchIterator, EncodedSplit, TokenizerPair
from ..decode import DecodeOptions, translate_encoded
from ..metrics import BLEU
from ..models import ATModel, NATModel, at_token_nll, nat_length_nll, score_targets
from ..proxies import InputProxy, TargetProxy, input_generator, sequence_nll


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
        positions += batch.num_tokens + (len(batch) if is_at else 0)
        if is_at:  # one forward pass: the tokens and the end-of-sentence term (the AT's length term)
            nll = at_token_nll(model, batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths).double()
            total += float(nll.sum()) / math.log(2.0)
            length_total += float(nll.gather(1, batch.tgt_lengths.unsqueeze(1)).sum()) / math.log(2.0)
        else:
            total += float(score_targets(model, batch).sum())
            length_total += float(nat_length_nll(model, batch.src, batch.src_lengths,
                                                 batch.tgt_lengths).double().sum()) / math.log(2.0)
    model.train(was_training)
    result = {"nll_bits_per_token": total / max(positions, 1),
              "nll_bits_per_sentence": total / max(len(encoded), 1),
              "scored_positions": positions, "sentences": len(encoded)}
    # The length term of each model: the NAT's length predictor (not in nll_bits_*), the AT's
    # end-of-sentence prediction (included in nll_bits_*).
    result["length_nll_bits_per_sentence"] = length_total / max(len(encoded), 1)
    return result


def _check_reference_text(references: Sequence[Sequence[str]], count: int) -> list[list[str]]:
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"references must be a sequence of per-sentence reference lists, got "
                        f"{type(references).__name__}")
    if len(references) != count:
        raise ValueError(f"references holds {len(references)} sentences but hypotheses holds {count}")
    rows = []
    for i, row in enumerate(references):
        if isinstance(row, str) or not isinstance(row, Sequence) or not all(isinstance(r, str) for r in row):
            raise TypeError(f"references[{i}] must be a list of reference strings as written in the "
                            f"dataset (e.g. Split.refs[{i}]), got {row!r:.80}")
        rows.append(list(row))
    return rows


def bleu_scores(hypotheses: Sequence[Sequence[int]], references: Sequence[Sequence[str]],
                tokenizers: TokenizerPair) -> dict[str, Any]:
    """Corpus BLEU (0-100) on detokenized text (13a) and on token ids, with signatures.

    ``hypotheses[i]``: the output ids of sentence i; ``references[i]``: its reference strings as
    written in the dataset (``Split.refs[i]``: the target, then the extra references).  The text
    BLEU scores ``tokenizers.tgt.decode(hypotheses[i])`` against those strings (what sacrebleu gives
    on the written outputs and reference files); the id BLEU scores the ids against
    ``tokenizers.tgt.encode`` of the references.  Deterministic.
    """
    rows = _check_reference_text(references, len(hypotheses))
    ref_ids = [[tokenizers.tgt.encode(r) for r in row] for row in rows]
    on_ids = BLEU(tokenize="ids").corpus_score([list(h) for h in hypotheses], ref_ids)
    hyp_text = [tokenizers.tgt.decode(h) for h in hypotheses]
    on_text = BLEU(tokenize="13a").corpus_score(hyp_text, rows)
    return {"bleu": on_text.score, "bleu_signature": str(on_text.signature),
            "bleu_ids": on_ids.score, "bleu_ids_signature": str(on_ids.signature)}


def validate(model: ATModel | NATModel, encoded: EncodedSplit, references: Sequence[Sequence[str]],
             tokenizers: TokenizerPair, max_tokens: int, device: torch.device,
             options: DecodeOptions = DecodeOptions(), bleu_max_sentences: int = 0,
             progress: Callable[[int], None] | None = None, bleu: bool = True) -> dict[str, Any]:
    """NLL and BLEU on a split.  ``references[i]`` are the reference strings of sentence i as
    written in the dataset (target first; see :func:`bleu_scores`).  ``bleu_max_sentences`` > 0
    decodes only the first that many sentences; ``bleu=False`` decodes nothing (NLL only)."""
    result: dict[str, Any] = reference_nll(model, encoded, max_tokens, device)
    if not bleu:
        return result
    count = len(encoded) if bleu_max_sentences <= 0 else min(bleu_max_sentences, len(encoded))
    hyps = translate_encoded(model, encoded.src[:count], options, max_tokens=max_tokens, device=device,
                             progress=progress)
    result.update(bleu_scores(hyps, references[:count], tokenizers))
    result["bleu_sentences"] = count
    return result


@torch.no_grad()
def proxy_validation(model: NATModel, proxy: TargetProxy, encoded: EncodedSplit, max_tokens: int,
                     device: torch.device, split: str = "valid", input_proxy: InputProxy | None = None,
                     seed: int = 0) -> dict[str, float]:
    """A NAT's proxy target on a split, in eval mode: ``proxy_loss_bits_per_token``, the method's
    training criterion without label smoothing (what ``select_metric="proxy"`` compares), and
    ``proxy_nll_bits_per_token``, the NLL of the proxy target T itself given the proxy input (L_NAT,
    per position of T, revealed positions counting with log-probability 0; blanks of AXE's T*
    included), both in bits per target token.  A proxy input is drawn with generators seeded from
    ``seed`` and the sentences (the same Z at every validation; the global RNG is not used)."""
    was_training = model.training
    model.eval()
    loss_total, nll_total, tokens, positions = 0.0, 0.0, 0, 0
    sampling = input_proxy is not None and input_proxy.name != "vanilla"
    for batch in BatchIterator(encoded, max_tokens=max_tokens, shuffle=False, drop_uneven=False):
        batch = proxy.prepare(model, batch.to(device), split)
        if sampling:
            batch = input_proxy.sample(model, batch, input_generator(seed, -1, batch.indices, device))
        loss, count, nll, scored = _proxy_batch(proxy, model, batch)
        loss_total, tokens, nll_total, positions = loss_total + loss, tokens + count, nll_total + nll, positions + scored
    model.train(was_training)
    return {"proxy_loss_bits_per_token": loss_total / max(tokens, 1) / math.log(2.0),
            "proxy_nll_bits_per_token": nll_total / max(positions, 1) / math.log(2.0),
            "proxy_positions": positions}


def _proxy_batch(proxy: TargetProxy, model: NATModel, batch) -> tuple[float, int, float, int]:
    """(loss, its tokens, NLL of T with revealed positions at 0, positions of T) of one batch."""
    outputs = proxy.forward(model, batch)
    loss, count = proxy.loss(batch, outputs, 0.0)
    target = proxy.proxy_target(batch, outputs)
    reveal = getattr(batch, "reveal", None)
    log_probs = outputs.log_probs
    if reveal is not None:  # the copy mechanism: a revealed position is right with probability 1
        log_probs = log_probs.masked_fill(reveal[:, :log_probs.shape[1]].unsqueeze(-1), 0.0)
    nll = float(sequence_nll(log_probs, target, outputs.pred_lengths).sum())
    return float(loss), int(count), nll, int(outputs.pred_lengths.sum())
