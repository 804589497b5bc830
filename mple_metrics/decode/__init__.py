"""Decoding: AT greedy and beam search (cached keys/values), NAT argmax with length beam (LPD),
length factor and de-duplication, batch translation of sentences, and sequence-level knowledge
distillation (:mod:`mple_metrics.decode.distill`)."""

from __future__ import annotations

from .at_search import Hypotheses, beam_search, greedy_search, max_output_length, output_limits
from .generate import DecodeOptions, generate, translate_encoded
from .nat_decode import clean_output, deduplicate, nat_argmax, nat_gold_length_argmax

__all__ = [
    "DecodeOptions", "Hypotheses", "beam_search", "clean_output", "deduplicate", "generate",
    "greedy_search", "max_output_length", "output_limits", "nat_argmax", "nat_gold_length_argmax", "translate_encoded",
]
