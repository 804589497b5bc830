"""Per-sentence NLLs of given targets for the estimators, under one length convention for both models.

Ĉ subtracts an AT's NLL from a NAT's, sentence by sentence, so both must score the same event.  The
two conventions (``length_terms``):

- ``"include"`` (default): each model's full NLL of the target *and its length*: the AT's
  ``-log2 P(y_1..y_T </s> | X)`` (the end-of-sentence prediction is its length model) and the NAT's
  ``-log2 P(T | X) - sum_t log2 P(y_t | X, T)`` (its length predictor plus the tokens at the gold
  length T).  Both are log-likelihoods of the same outcome, so the difference estimates C of the
  target with its length.
- ``"exclude"``: no length term on either side: the AT's ``-sum_t log2 P(y_t | y_<t, X)`` without
  ``</s>`` and the NAT's tokens at the gold length.  The length information then cancels only
  approximately; useful to see how much of Ĉ the length terms carry.

Where the length is deterministic given the source (the known-C datasets), both length terms tend
to 0 and the conventions agree.  Tokens per sentence are the target's tokens T (no ``</s>``) in
both conventions, so per-token values of both models divide by the same count.

Anything that implements :class:`SentenceScorer` can stand in for our models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..data import BatchIterator, EncodedSplit, TokenizerPair
from ..models import ATModel, NATModel, score_targets
from .total_correlation import LENGTH_TERMS


def check_length_terms(length_terms: str) -> str:
    if length_terms not in LENGTH_TERMS:
        raise ValueError(f"length_terms must be one of {LENGTH_TERMS}, got {length_terms!r}")
    return length_terms


@runtime_checkable
class SentenceScorer(Protocol):
    """What the C estimator needs from a model: the NLL of each target given its source.

    ``sentence_nll_bits(sources, targets)`` returns a float64 array (N,) of per-sentence NLLs in
    bits (>= 0), in input order, under the convention named by ``length_terms``.
    ``token_counts(targets)`` returns the number of target tokens of each sentence (int64 (N,)),
    the unit of "per token"; both models of one estimate must count tokens the same way.
    """

    length_terms: str

    def sentence_nll_bits(self, sources: Sequence[str], targets: Sequence[str]) -> np.ndarray: ...

    def token_counts(self, targets: Sequence[str]) -> np.ndarray: ...


class ModelScorer:
    """:class:`SentenceScorer` for this package's AT and NAT models (and their tokenizers).

    Scores in eval mode under ``torch.no_grad`` in length-bucketed batches of at most
    ``max_tokens`` padded tokens on the model's device; deterministic.
    """

    def __init__(self, model: ATModel | NATModel, tokenizers: TokenizerPair, *,
                 length_terms: str = "include", max_tokens: int = 4096) -> None:
        if not isinstance(model, (ATModel, NATModel)):
            raise TypeError(f"model must be an ATModel or NATModel, got {type(model).__name__}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.model = model
        self.tokenizers = tokenizers
        self.length_terms = check_length_terms(length_terms)
        self.max_tokens = max_tokens

    def token_counts(self, targets: Sequence[str]) -> np.ndarray:
        return np.array([len(t) for t in self.tokenizers.tgt.encode_batch(list(targets))], dtype=np.int64)

    @torch.no_grad()
    def sentence_nll_bits(self, sources: Sequence[str], targets: Sequence[str]) -> np.ndarray:
        if len(sources) != len(targets):
            raise ValueError(f"sources holds {len(sources)} sentences but targets holds {len(targets)}")
        encoded = EncodedSplit(self.tokenizers.src.encode_batch(list(sources)),
                               self.tokenizers.tgt.encode_batch(list(targets)))
        return score_encoded(self.model, encoded, self.length_terms, self.max_tokens)


@torch.no_grad()
def score_encoded(model: ATModel | NATModel, encoded: EncodedSplit, length_terms: str = "include",
                  max_tokens: int = 4096) -> np.ndarray:
    """Per-sentence NLL in bits (float64 (N,), input order) of ``encoded.tgt`` given ``encoded.src``
    under ``length_terms`` (module docstring)."""
    check_length_terms(length_terms)
    include = length_terms == "include"
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros(len(encoded), dtype=np.float64)
    try:
        for batch in BatchIterator(encoded, max_tokens=max_tokens, shuffle=False, drop_uneven=False):
            batch = batch.to(device)
            if isinstance(model, ATModel):
                nll = score_targets(model, batch, include_eos=include)
            else:
                nll = score_targets(model, batch, include_length=include)
            out[batch.indices.cpu().numpy()] = nll.cpu().numpy()
    finally:
        model.train(was_training)
    return out
