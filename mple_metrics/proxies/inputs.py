"""The proxy-input interface and the inputs that need no model: ``vanilla``, ``cmlm``, ``cmlm-fixed``
(the paper's Sec. 3.3, Appendix E.5, E.6).

A proxy input Z reveals part of the target T to the decoder.  A method samples Z from Q(Z|T, X) and
gives log Q(Z|T, X) exactly (the estimators need it for L_input).  Z is represented by ``reveal``
(B, L) bool, True where the target token is shown; the loss is taken on the hidden positions only,
which is the paper's copy mechanism (a revealed position counts with log-probability 0).

How Z enters the decoder (:class:`mple_metrics.models.NATModel`):

* ``vanilla``: the model's vanilla input, Q a point mass (Z = the full mask), log Q = 0.
* the others: the target embedding at revealed positions, the vanilla input elsewhere.  The
  vanilla input of a CMLM model is the ``<mask>`` embedding (``nat_input="mask"``, the trainer's
  default for the CMLM inputs), so Z is the target with ``<mask>`` at hidden positions; a GLAT
  model's is the copy of the source embeddings (:mod:`mple_metrics.proxies.glat`).

Randomness: Z is drawn with a generator seeded from (run seed, update, the batch's sentence
indices) (:func:`input_generator`), so it is a function of the data and the update alone: a resumed
run draws the same Z, and N processes draw what one process with N-fold gradient accumulation
draws (exact DDP parity).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import Batch
from ..models import NATModel, padding_mask
from .masking import log_binomial

#: How CMLM draws the number of hidden tokens: ``fairseq`` (the public code's ``_random_mask``:
#: hidden uniform on {1, ..., L}) or ``paper`` (Appendix E.6: l = round(λL) revealed, λ ~ U(0, 1)).
CMLM_COUNTS: tuple[str, ...] = ("fairseq", "paper")


@dataclass(frozen=True)
class InputBatch(Batch):
    """A :class:`Batch` with a sampled proxy input.

    ``reveal`` (B, L) bool: target shown at these positions (False beyond the lengths);
    ``log_q`` (B,) float64: log Q(Z|T, X) in nats; ``mask_features`` (B, L, d) or None: decoder states
    of a vanilla-input pass (no gradient) on which the "is masked" head is trained."""

    reveal: Tensor | None = None
    log_q: Tensor | None = None
    mask_features: Tensor | None = None

    def decoder_input(self) -> tuple[Tensor | None, Tensor | None]:
        """(input_tokens, reveal) for :meth:`NATModel.forward` (None, None: the vanilla input)."""
        if not bool(self.reveal.any()):
            return None, None
        return self.tgt, self.reveal

    @property
    def hidden(self) -> Tensor:
        """(B, L) bool: the positions the loss is taken on (within the lengths, not revealed)."""
        return ~padding_mask(self.tgt_lengths, self.tgt.shape[1]) & ~self.reveal

    @property
    def loss_tokens(self) -> int:
        return int(self.hidden.sum())


def with_input(batch: Batch, reveal: Tensor, log_q: Tensor, mask_features: Tensor | None = None) -> InputBatch:
    return InputBatch(batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths, batch.indices, reveal, log_q,
                      mask_features)


def input_generator(seed: int, update: int, indices: Tensor, device: torch.device | str) -> torch.Generator:
    """A generator for the proxy input of one micro-batch, seeded from the run's seed, the update
    number and the batch's sentence indices (SHA-256 of them: stable across machines)."""
    digest = hashlib.sha256(f"{seed}:{update}:".encode() + indices.cpu().numpy().astype("<i8").tobytes())
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest.digest()[:8], "little") >> 1)


def uniform_subset(counts: Tensor, lengths: Tensor, width: int, generator: torch.Generator | None = None) -> Tensor:
    """(B, width) bool with ``counts[b]`` True positions drawn uniformly among the first
    ``lengths[b]`` (random scores, smallest ranks: fairseq's way)."""
    scores = torch.rand(lengths.shape[0], width, device=lengths.device, generator=generator)
    scores = scores.masked_fill(padding_mask(lengths, width), 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < counts.unsqueeze(1)


def vanilla_mask_features(model: NATModel, batch: Batch) -> Tensor:
    """Decoder states (B, L, d) of the vanilla (copy) input, without gradient: what the input
    predictor's "is masked" head sees (it conditions on X only)."""
    with torch.no_grad():
        enc = model.encode(batch.src, batch.src_lengths)
        hidden, _ = model.decode_hidden(enc, batch.tgt_lengths, batch.tgt.shape[1])
    return hidden


class InputProxy:
    """Base class and ``vanilla``: Z is the full mask (the copy input), log Q = 0."""

    name: ClassVar[str] = "vanilla"

    def __init__(self, train_mask_head: bool = False) -> None:
        self.train_mask_head = bool(train_mask_head)
        self.update = 0  # the optimizer update being computed (set by the trainer)
        self.total_updates = 0  # the run's planned updates (GLAT's annealing)

    def sample(self, model: NATModel, batch: Batch, generator: torch.Generator | None = None) -> InputBatch:
        """Draw Z ~ Q(Z|T, X) for ``batch`` (no gradient) with ``generator`` (default: the global RNG)."""
        reveal = torch.zeros_like(batch.tgt, dtype=torch.bool)
        return with_input(batch, reveal, torch.zeros(len(batch), dtype=torch.float64, device=batch.tgt.device))

    def log_prob(self, reveal: Tensor, lengths: Tensor, batch: InputBatch | None = None) -> Tensor:
        """(B,) float64 exact log Q(Z|T, X) of ``reveal`` (nats); -inf where Q gives it no mass."""
        return torch.where(reveal.any(dim=1), -math.inf, 0.0).double()

    def settings(self) -> dict[str, Any]:
        return {"input": self.name}


class CMLMInput(InputProxy):
    """``cmlm``: the number of hidden tokens is drawn (``count`` rule), then uniform positions."""

    name = "cmlm"

    def __init__(self, count: str = "fairseq", fixed_reveal: float | None = None,
                 train_mask_head: bool = False) -> None:
        super().__init__(train_mask_head)
        if count not in CMLM_COUNTS:
            raise ValueError(f"--cmlm-count must be one of {CMLM_COUNTS}, got {count!r}")
        if fixed_reveal is not None and not 0.0 <= fixed_reveal <= 1.0:
            raise ValueError(f"fixed_reveal must lie in [0, 1], got {fixed_reveal!r}")
        self.count = count
        self.fixed_reveal = fixed_reveal

    def reveal_counts(self, lengths: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B,) revealed-token counts drawn from their distribution."""
        if self.fixed_reveal is not None:
            return torch.floor(lengths.double() * self.fixed_reveal + 0.5).long()
        u = torch.rand(lengths.shape[0], device=lengths.device, dtype=torch.float64, generator=generator)
        if self.count == "fairseq":  # hidden = floor(L u) + 1, uniform on {1, ..., L}
            return lengths - (torch.floor(lengths.double() * u).long() + 1)
        return torch.floor(lengths.double() * u + 0.5).long()  # l = round(λ L)

    def count_log_prob(self, revealed: Tensor, lengths: Tensor) -> Tensor:
        """(B,) float64 log P(the number of revealed tokens = ``revealed``)."""
        n = lengths.double()
        if self.fixed_reveal is not None:
            expected = torch.floor(n * self.fixed_reveal + 0.5).long()
            return torch.where(revealed == expected, 0.0, -math.inf).double()
        if self.count == "fairseq":
            ok = (revealed >= 0) & (revealed <= lengths - 1)
            return torch.where(ok, -torch.log(n.clamp(min=1)), -math.inf)
        # round(λL) = l has probability 1/L for 0 < l < L and 1/(2L) at l = 0 and l = L.
        ends = (revealed == 0) | (revealed == lengths)
        inside = (revealed > 0) & (revealed < lengths)
        value = torch.where(ends, -torch.log(2 * n.clamp(min=1)), -torch.log(n.clamp(min=1)))
        return torch.where(ends | inside, value, torch.full_like(n, -math.inf))

    def sample(self, model: NATModel, batch: Batch, generator: torch.Generator | None = None) -> InputBatch:
        lengths = batch.tgt_lengths
        counts = self.reveal_counts(lengths, generator)
        reveal = uniform_subset(counts, lengths, batch.tgt.shape[1], generator)
        features = vanilla_mask_features(model, batch) if self.train_mask_head else None
        return with_input(batch, reveal, self.log_prob(reveal, lengths), features)

    def log_prob(self, reveal: Tensor, lengths: Tensor, batch: InputBatch | None = None) -> Tensor:
        inside = ~padding_mask(lengths, reveal.shape[1])
        if bool((reveal & ~inside).any()):
            raise ValueError("reveal must be False beyond the target lengths")
        revealed = reveal.sum(1)
        return self.count_log_prob(revealed, lengths) - log_binomial(lengths, revealed)

    def settings(self) -> dict[str, Any]:
        return {"input": self.name, "count": self.count if self.fixed_reveal is None else None,
                "fixed_reveal": self.fixed_reveal}


class CMLMFixedInput(CMLMInput):
    """``cmlm-fixed``: round(0.2 L) revealed (80% hidden), uniform positions."""

    name = "cmlm-fixed"

    def __init__(self, reveal_ratio: float = 0.2, train_mask_head: bool = False) -> None:
        super().__init__("fairseq", reveal_ratio, train_mask_head)
