"""The landscape's metrics on a split, tokenised and batched once and reused in every cell.

- ``nll``: the references' NLL in bits per target token, the model's own MLE objective without label
  smoothing (as :func:`mple_metrics.train.reference_nll`: an AT scores ``y_1..y_T </s>``, a NAT scores
  ``y_1..y_T`` at the gold length, its length term excluded).  Lower is better.
- ``bleu``: corpus BLEU (0-100) of default decoding on detokenized text with 13a against the
  references as written in the dataset (all of them: multi-reference), with its signature, as
  :func:`mple_metrics.train.bleu_scores` ``["bleu"]``.  A NAT decodes at its **predicted** length in
  every cell (argmax, or the ``length_beam`` best predicted lengths); an AT by greedy or beam search.
  Higher is better.
- ``l_nat``: a NAT's NLL of the proxy target T of a named proxy (L_NAT, Eq. 9) in bits per token,
  with that proxy's default options (:func:`mple_metrics.train.proxy_validation`).  Lower is better.

The batches are the ones ``reference_nll`` and ``translate_encoded`` build (same order, same padding,
same summation), so a checkpoint evaluated at its own weights gives what ``mple evaluate`` gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..data import BatchIterator, EncodedSplit, Split, TokenizerPair, pad_sequences, token_budget_batches
from ..decode import DecodeOptions, generate
from ..metrics import BLEU
from ..models import ATModel, NATModel, at_token_nll, score_targets
from ..proxies import make_target_proxy
from ..train import proxy_validation
from .grid import Metric

METRIC_NAMES: tuple[str, ...] = ("nll", "bleu", "l_nat")
#: Proxy targets L_NAT can be computed under without extra data: the dataset's targets are T
#: itself (``raw`` on a raw dataset, ``kd`` on a KD dataset; the other pairings are refused by
#: the command) or aligned to it (``axe``, ``oaxe``).
L_NAT_PROXIES: tuple[str, ...] = ("raw", "kd", "axe", "oaxe")


def parse_metrics(text: str) -> list[str]:
    """``"nll,bleu"`` -> ["nll", "bleu"] (known names, no repeats)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRIC_NAMES]
    if not names or unknown:
        raise ValueError(f"metrics must be a comma-separated list of {', '.join(METRIC_NAMES)}, got {text!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"metrics lists a name twice: {text!r}")
    return names


class EvaluationSet:
    """A split's first ``max_sentences`` sentences, tokenised and batched once on ``device``."""

    def __init__(self, split: Split, tokenizers: TokenizerPair, max_tokens: int, device: torch.device,
                 max_sentences: int = 0, options: DecodeOptions = DecodeOptions()) -> None:
        count = len(split) if max_sentences <= 0 else min(max_sentences, len(split))
        if count == 0:
            raise ValueError(f"split {split.name!r} has no sentences")
        self.encoded = EncodedSplit.encode(split, tokenizers)
        self.encoded = EncodedSplit(self.encoded.src[:count], self.encoded.tgt[:count])
        self.references = [list(row) for row in split.refs[:count]]
        self.tokenizers, self.max_tokens, self.device, self.options = tokenizers, max_tokens, device, options
        self.sentences = count
        empty = [i + 1 for i, s in enumerate(self.encoded.src) if not s]
        if empty:
            raise ValueError(f"split {split.name!r}: source sentence {empty[0]} is empty after tokenization")
        # reference_nll's batches
        self.nll_batches = [batch.to(device) for batch in BatchIterator(self.encoded, max_tokens=max_tokens,
                                                                       shuffle=False, drop_uneven=False)]
        # translate_encoded's batches
        widen = max(options.beam, options.length_beam)
        lengths = [max(len(s), 1) for s in self.encoded.src]
        self.decode_batches = []
        for indices in token_budget_batches(lengths, lengths, max(max_tokens // widen, max(lengths))):
            src, src_lengths = pad_sequences([self.encoded.src[i] for i in indices])
            self.decode_batches.append((list(indices), src.to(device), src_lengths.to(device),
                                        torch.tensor(indices, dtype=torch.long)))
        self.bleu = BLEU(tokenize="13a")

    def check_model(self, model: torch.nn.Module) -> None:
        limit = model.config.max_positions
        long = [i + 1 for i in range(self.sentences)
                if max(len(self.encoded.src[i]), len(self.encoded.tgt[i])) >= limit]
        if long:
            raise ValueError(f"sentence {long[0]} ({len(long)} in all) is longer than the model's "
                             f"max_positions={limit} - 1 tokens")

    @torch.no_grad()
    def nll_bits_per_token(self, model: ATModel | NATModel) -> float:
        """As ``reference_nll(...)["nll_bits_per_token"]`` (same batches, same summation order)."""
        total, positions = 0.0, 0
        is_at = isinstance(model, ATModel)
        for batch in self.nll_batches:
            positions += batch.num_tokens + (len(batch) if is_at else 0)
            if is_at:
                nll = at_token_nll(model, batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths).double()
                total += float(nll.sum()) / math.log(2.0)
            else:
                total += float(score_targets(model, batch).sum())
        return total / max(positions, 1)

    @torch.no_grad()
    def hypotheses(self, model: ATModel | NATModel) -> list[list[int]]:
        """Default decoding of every sentence, in input order (as ``translate_encoded``)."""
        outputs: list[list[int]] = [[] for _ in range(self.sentences)]
        for indices, src, src_lengths, numbers in self.decode_batches:
            hyps = generate(model, src, src_lengths, self.options, None, numbers)
            for i, tokens in zip(indices, hyps.tokens):
                outputs[i] = tokens
        return outputs

    def corpus_bleu(self, model: ATModel | NATModel):
        """The :class:`~mple_metrics.metrics.BLEUScore` of the decoded text (13a, all references)."""
        text = [self.tokenizers.tgt.decode(h) for h in self.hypotheses(model)]
        return self.bleu.corpus_score(text, self.references)


def landscape_metrics(names: Sequence[str], evaluation: EvaluationSet, model: ATModel | NATModel,
                      proxy: str = "raw", target_text: str = "") -> list[Metric]:
    """The :class:`Metric` objects ``names`` (of :data:`METRIC_NAMES`) on ``evaluation``;
    ``target_text`` says what l_nat's proxy target is built from (its description)."""
    evaluation.check_model(model)
    metrics = []
    for name in names:
        if name == "nll":
            metrics.append(Metric("nll", "bits/token", False, evaluation.nll_bits_per_token,
                                  "NLL of the references (MLE objective, no label smoothing"
                                  + (", NAT at the gold length, length term excluded)" if isinstance(model, NATModel)
                                     else ", with </s>)")))
        elif name == "bleu":
            signature = str(evaluation.bleu.signature(
                {len(r) for r in evaluation.references}.pop() if len({len(r) for r in evaluation.references}) == 1
                else "var", False))
            metrics.append(Metric("bleu", "0-100", True, lambda m: evaluation.corpus_bleu(m).score,
                                  "corpus BLEU of default decoding"
                                  + (" (NAT at its predicted length)" if isinstance(model, NATModel) else ""),
                                  signature))
        elif name == "l_nat":
            if not isinstance(model, NATModel):
                raise ValueError("metric l_nat is a NAT's NLL of a proxy target; this checkpoint is an AT")
            if proxy not in L_NAT_PROXIES:
                raise ValueError(f"L_NAT proxy must be one of {', '.join(L_NAT_PROXIES)} (dynamic KD needs its "
                                 f"candidates), got {proxy!r}")
            target = make_target_proxy(proxy, max_positions=model.config.max_positions)

            def l_nat(m, target=target):
                return proxy_validation(m, target, evaluation.encoded, evaluation.max_tokens,
                                        evaluation.device)["proxy_nll_bits_per_token"]

            metrics.append(Metric("l_nat", "bits/token", False, l_nat, f"L_NAT under proxy {proxy!r}"
                                  + (f" on {target_text}" if target_text else "")))
        else:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    return metrics
