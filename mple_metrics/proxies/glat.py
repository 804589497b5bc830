"""``glat`` and its variants: glancing sampling (Qian et al. 2021; the paper's Sec. 4.3, Appendix E.6).

Per batch, a first decoder pass with the vanilla (copy) input runs without gradient, in training
mode with dropout, and with the same dropout masks as the second pass (its random numbers are
replayed: :func:`torch.random.fork_rng`).  From its argmax output Ŷ:

* ``glat``:   l = floor(λ · Hamming(T, Ŷ)) positions revealed, chosen uniformly at random;
* ``glat-lev``:    the same with the Levenshtein distance instead of the Hamming distance;
* ``glat-pref``:   the Hamming l, positions chosen with probability ∝ P_θ(t_i | X) of the first pass;
* ``glat-1-pref``: the Hamming l, positions chosen with probability ∝ 1 − P_θ(t_i | X).

Weighted choices are conditional Poisson sampling: a set S of size l has probability
Π_{i∈S} w_i / e_l(w), so log Q(Z|T, X) is exact (:mod:`mple_metrics.proxies.masking`); weights are
clamped to at least 1e-12 so that every set of size l stays possible.  Revealed positions take the
target embedding (replacement), the others the copy input.  λ is annealed linearly from 0.5 to 0.3
over ``anneal_steps`` updates (0: the whole run), as the GLAT paper does.

The positions are drawn with the given generator (the trainer's :func:`~mple_metrics.proxies.inputs.
input_generator`); the dropout masks come from the global torch RNG, saved in checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..data import Batch
from ..models import NATModel, padding_mask
from ..models.scoring import at_least_float32
from .inputs import InputBatch, InputProxy, with_input
from .masking import fixed_size_subset_log_prob, hamming_distance, levenshtein_distance, sample_fixed_size_subsets

#: variant -> (distance that sets the glancing number, weights of the revealed positions)
GLAT_VARIANTS: dict[str, tuple[str, str]] = {
    "glat": ("hamming", "uniform"), "glat-lev": ("levenshtein", "uniform"),
    "glat-pref": ("hamming", "p"), "glat-1-pref": ("hamming", "1-p"),
}
MIN_WEIGHT = 1e-12


class GLATInput(InputProxy):
    """Glancing sampling; ``variant`` is one of :data:`GLAT_VARIANTS`."""

    def __init__(self, variant: str = "glat", ratio_start: float = 0.5, ratio_end: float = 0.3,
                 anneal_steps: int = 0, train_mask_head: bool = False) -> None:
        super().__init__(train_mask_head)
        if variant not in GLAT_VARIANTS:
            raise ValueError(f"--input must be one of {tuple(GLAT_VARIANTS)} for glancing, got {variant!r}")
        for name, value in (("ratio_start", ratio_start), ("ratio_end", ratio_end)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        if anneal_steps < 0:
            raise ValueError(f"--glat-anneal-steps must be >= 0, got {anneal_steps!r}")
        self.name = variant  # type: ignore[misc]  (one class, four named methods)
        self.distance, self.weighting = GLAT_VARIANTS[variant]
        self.ratio_start, self.ratio_end = float(ratio_start), float(ratio_end)
        self.anneal_steps = anneal_steps

    def ratio(self) -> float:
        """λ at the current update: linear from ``ratio_start`` to ``ratio_end``."""
        span = self.anneal_steps or self.total_updates
        if span <= 0:
            return self.ratio_start
        progress = min(self.update / span, 1.0)
        return self.ratio_start + (self.ratio_end - self.ratio_start) * progress

    def first_pass(self, model: NATModel, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """The vanilla pass, without gradient: decoder states (B, L, d), argmax Ŷ (B, L) and
        P_θ(t_i | X) of the target tokens (B, L) float64.  Its random numbers (dropout) are handed
        back, so the second pass draws the same masks."""
        devices = [batch.src.device] if batch.src.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            enc = model.encode(batch.src, batch.src_lengths)
            hidden, _ = model.decode_hidden(enc, batch.tgt_lengths, batch.tgt.shape[1])
            predicted, p_target = self._first_pass_outputs(model, hidden, batch.tgt)
        return hidden, predicted, p_target

    def _first_pass_outputs(self, model: NATModel, hidden: Tensor, target: Tensor,
                            rows_per_chunk: int = 256) -> tuple[Tensor, Tensor | None]:
        """Argmax (B, L) and, for the pref variants, P(t_i | X) (B, L) float64, projecting a chunk of
        positions at a time: no (B, L, V) tensor (the output projection dominates this pass)."""
        flat, flat_target = hidden.reshape(-1, hidden.shape[-1]), target.reshape(-1)
        predicted = torch.empty(flat.shape[0], dtype=torch.long, device=hidden.device)
        p_target = None if self.weighting == "uniform" else torch.empty(flat.shape[0], dtype=torch.float64,
                                                                        device=hidden.device)
        for start in range(0, flat.shape[0], rows_per_chunk):
            logits = at_least_float32(model.output_logits(flat[start:start + rows_per_chunk]))
            predicted[start:start + rows_per_chunk] = logits.argmax(dim=-1)
            if p_target is not None:
                chosen = logits.gather(-1, flat_target[start:start + rows_per_chunk].unsqueeze(-1)).squeeze(-1)
                p_target[start:start + rows_per_chunk] = (chosen - torch.logsumexp(logits, dim=-1)).double().exp()
        shape = hidden.shape[:2]
        return predicted.view(shape), None if p_target is None else p_target.view(shape)

    def glancing(self, batch: Batch, predicted: Tensor, p_target: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(counts (B,), weights (B, L)) of the reveal draw, given the first pass's argmax Ŷ and
        (pref variants) P_θ(t_i | X)."""
        lengths, width = batch.tgt_lengths, batch.tgt.shape[1]
        if self.distance == "hamming":
            distance = hamming_distance(predicted, batch.tgt, lengths)
        else:
            distance = levenshtein_distance(predicted, batch.tgt, a_lengths=lengths, b_lengths=lengths)
        counts = torch.floor(self.ratio() * distance.double()).long().clamp(max=lengths)
        if self.weighting == "uniform":
            weights = torch.ones(batch.tgt.shape, dtype=torch.float64, device=batch.tgt.device)
        else:
            if p_target is None:
                raise ValueError(f"{self.name} weights positions by P(t_i | X): pass p_target")
            weights = (p_target if self.weighting == "p" else 1.0 - p_target).clamp(min=MIN_WEIGHT)
        return counts, weights.masked_fill(padding_mask(lengths, width), 1.0)

    def sample(self, model: NATModel, batch: Batch, generator: torch.Generator | None = None) -> InputBatch:
        if generator is None:  # seeded before the first pass: the draw must not use the replayed numbers
            generator = torch.Generator(device=batch.tgt.device).manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
        hidden, predicted, p_target = self.first_pass(model, batch)
        counts, weights = self.glancing(batch, predicted, p_target)
        reveal = sample_fixed_size_subsets(weights, counts, batch.tgt_lengths, generator)
        log_q = self.log_prob(reveal, batch.tgt_lengths, counts, weights)
        return with_input(batch, reveal, log_q, hidden if self.train_mask_head else None)

    def log_prob(self, reveal: Tensor, lengths: Tensor, counts: Tensor | None = None,
                 weights: Tensor | None = None) -> Tensor:
        """(B,) float64 log Q(Z|T, X): the draw's ``counts`` are fixed by the first pass (-inf for
        another count); ``weights`` (B, L) those of the draw (uniform if None)."""
        if counts is None:
            raise ValueError("GLAT's log Q needs the glancing counts of the first pass")
        if weights is None:
            weights = torch.ones(reveal.shape, dtype=torch.float64, device=reveal.device)
        value = fixed_size_subset_log_prob(weights, reveal, lengths)
        return value.masked_fill(reveal.sum(1) != counts, float("-inf"))

    def settings(self) -> dict[str, Any]:
        return {"input": self.name, "ratio_start": self.ratio_start, "ratio_end": self.ratio_end,
                "anneal_steps": self.anneal_steps}
