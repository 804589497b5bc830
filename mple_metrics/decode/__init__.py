"""Decoding: AT greedy and beam search (cached keys/values), NAT argmax with length beam (LPD),
length factor and de-duplication, batch translation of sentences, and sequence-level knowledge
distillation (:mod:`mple_metrics.decode.distill`)."""

from __future__ import annotations

from .at_search import Hypotheses, beam_search, greedy_search, max_output_length, output_limits
from .generate import DECODE_STRATEGIES, DecodeOptions, generate, translate_encoded
from .input_sampling import InputSamplingResult, decoding_confidence, nat_input_sampling
from .nat_decode import clean_output, deduplicate, nat_argmax, nat_gold_length_argmax

__all__ = [
    "DECODE_STRATEGIES", "DecodeOptions", "InputSamplingResult", "decoding_confidence", "nat_input_sampling", "Hypotheses", "beam_search", "clean_output", "deduplicate", "generate",
    "greedy_search", "max_output_length", "output_limits", "nat_argmax", "nat_gold_length_argmax", "translate_encoded",
]
