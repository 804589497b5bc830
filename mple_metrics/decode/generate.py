"""One entry point for decoding either model kind, on tensors or on sentences.

:class:`DecodeOptions` holds every decoding setting; :func:`generate` decodes a padded batch;
:func:`translate_encoded` decodes many sentences in length-sorted token-budget batches and returns
outputs in input order (with an optional progress bar).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..data import pad_sequences, token_budget_batches
from ..models import ATModel, NATModel
from .at_search import Hypotheses, beam_search, greedy_search
from .input_sampling import nat_input_sampling
from .nat_decode import clean_output, nat_argmax


DECODE_STRATEGIES: tuple[str, ...] = ("default", "input-sampling")
#: Settings whose value before they existed was their default (older KD chunks compare equal).
LATER_DEFAULTS: dict[str, object] = {"strategy": "default", "samples": 1, "seed": 0}


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings.

    AT: ``beam`` (1 = greedy), ``length_penalty`` (exponent on the length when choosing among the
    final beams), ``max_len_a``/``max_len_b`` (output length limit ``a * S + b``).
    NAT: ``length_beam`` (LPD candidates), ``length_factor`` λ, ``dedup``; ``strategy``
    ``"default"`` (the vanilla input) or ``"input-sampling"`` (Z drawn from the input predictor,
    :mod:`mple_metrics.decode.input_sampling`; needs the frozen predictor NAT) with ``samples``
    candidates per sentence and the draws' ``seed``.
    """

    beam: int = 1
    length_penalty: float = 1.0
    max_len_a: float = 1.5
    max_len_b: int = 10
    length_beam: int = 1
    length_factor: float = 0.0
    dedup: bool = False
    strategy: str = "default"
    samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in DECODE_STRATEGIES:
            raise ValueError(f"strategy must be one of {DECODE_STRATEGIES}, got {self.strategy!r}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.strategy == "input-sampling" and self.length_beam != 1:
            raise ValueError("input sampling decodes at the predicted length: use --samples, not --length-beam")
        if self.beam < 1:
            raise ValueError(f"beam must be >= 1, got {self.beam}")
        if self.length_beam < 1:
            raise ValueError(f"length_beam must be >= 1, got {self.length_beam}")
        if self.length_factor <= -1.0:
            raise ValueError(f"length_factor must be > -1, got {self.length_factor}")

    def to_dict(self) -> dict:
        return asdict(self)


def generate(model: ATModel | NATModel, src: Tensor, src_lengths: Tensor,
             options: DecodeOptions = DecodeOptions(), input_predictor: NATModel | None = None,
             indices: Tensor | None = None, reranker: ATModel | None = None) -> Hypotheses:
    """Decode a batch src (B, S) with ``options``; outputs are cleaned token id lists.
    ``input_predictor``: the frozen vanilla NAT of Input Sampling; ``indices`` (B,) the sentences'
    numbers, which seed its draws; ``reranker``: an AT that picks a NAT's candidate (NPD)."""
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, ATModel):
            if options.strategy != "default":
                raise ValueError(f"decoding strategy {options.strategy!r} is for a NAT; an AT decodes by search")
            if options.beam == 1:
                hyps = greedy_search(model, src, src_lengths, options.max_len_a, options.max_len_b)
            else:
                hyps = beam_search(model, src, src_lengths, options.beam, options.length_penalty,
                                   options.max_len_a, options.max_len_b)
            return Hypotheses([clean_output(t, dedup=options.dedup) for t in hyps.tokens], hyps.scores)
        if isinstance(model, NATModel) and options.strategy == "input-sampling":
            if input_predictor is None:
                raise ValueError("input sampling needs the input predictor's frozen NAT (--input-predictor-nat)")
            return nat_input_sampling(model, input_predictor.eval(), src, src_lengths, options.samples,
                                      options.length_factor, options.dedup, options.seed, indices,
                                      reranker=reranker).hypotheses
        if isinstance(model, NATModel):
            return nat_argmax(model, src, src_lengths, options.length_beam, options.length_factor,
                              options.dedup, reranker=reranker)
        raise TypeError(f"model must be an ATModel or NATModel, got {type(model).__name__}")
    finally:
        model.train(was_training)


def translate_encoded(model: ATModel | NATModel, sources: Sequence[Sequence[int]],
                      options: DecodeOptions = DecodeOptions(), max_tokens: int = 4096,
                      device: torch.device | str | None = None,
                      progress: Callable[[int], None] | None = None,
                      input_predictor: NATModel | None = None,
                      reranker: ATModel | None = None) -> list[list[int]]:
    """Decode source id sequences in length-sorted batches of at most ``max_tokens`` padded source
    tokens x max(beam, length_beam); outputs in input order.  ``progress(n)`` is called with the
    number of sentences done after each batch."""
    if device is None:
        device = next(model.parameters()).device
    if not len(sources):
        return []
    widen = max(options.beam, options.length_beam)
    lengths = [max(len(s), 1) for s in sources]
    batches = token_budget_batches(lengths, lengths, max(max_tokens // widen, max(lengths)))
    outputs: list[list[int]] = [[] for _ in sources]
    for indices in batches:
        if any(len(sources[i]) == 0 for i in indices):
            raise ValueError(f"source sentence {next(i for i in indices if len(sources[i]) == 0)} is "
                             f"empty after tokenization")
        src, src_lengths = pad_sequences([sources[i] for i in indices])
        hyps = generate(model, src.to(device), src_lengths.to(device), options, input_predictor,
                        torch.tensor(indices, dtype=torch.long), reranker)
        for i, tokens in zip(indices, hyps.tokens):
            outputs[i] = tokens
        if progress is not None:
            progress(len(indices))
    return outputs
