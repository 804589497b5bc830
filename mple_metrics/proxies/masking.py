"""Exact masking tools for CMLM/GLAT proxy inputs (the paper's Appendix E.6).

CMLM and GLAT build the decoder input Z by revealing ``l`` target tokens and hiding (masking) the
rest.  *Revealed* positions are those where the target token is shown to the decoder; all other
positions are hidden.  This module provides the pieces needed to sample such a Z and to score it
exactly under Q(Z|T, X):

- conditional Poisson sampling of a revealed set S of fixed size k among the first L positions,
  P(S) = prod_{i in S} w_i / e_k(w_1..w_L), with e_k the elementary symmetric polynomial of degree
  k (uniform masking is the case of equal weights, P(S) = 1 / C(L, k); "GLAT + mask by P_ref" uses
  w_i = P(t_i|X), "mask by 1 - P_ref" uses w_i = 1 - P(t_i|X)):
  :func:`sample_fixed_size_subsets`, :func:`fixed_size_subset_log_prob`,
  :func:`log_elementary_symmetric`;
- :func:`log_binomial`, for the number of revealed tokens (uniform choice of l, or a uniform set);
- :func:`levenshtein_distance` and :func:`hamming_distance`, batched and exact, for GLAT's
  glancing count (how many predicted tokens differ from the target).

Weights are read only at positions ``< lengths[b]``; what lies beyond (padding) is ignored.  Zero
weights are allowed and handled exactly: a set containing a zero-weight position has probability 0
(log-probability ``-inf``) and is never sampled.  Negative, NaN or infinite weights are rejected.
All log-probabilities are natural logarithms (nats), computed in float64 log space with logsumexp
recursions, so they are stable for L up to a few thousand and weights spanning 1e-30..1.

Everything runs on the device of its inputs.  Sampling is deterministic given a
:class:`torch.Generator` (on the inputs' device): each call draws exactly ``B * L`` float64
uniforms from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "fixed_size_subset_log_prob", "hamming_distance", "levenshtein_distance", "log_binomial",
    "log_elementary_symmetric", "sample_fixed_size_subsets",
]

_NEG_INF = float("-inf")


# --------------------------------------------------------------------------------------------------
# argument checks


def _check_weights(weights: object) -> Tensor:
    if not isinstance(weights, Tensor):
        raise ValueError(f"weights must be a torch.Tensor of shape (B, L), got {type(weights).__name__}")
    if weights.dim() != 2:
        raise ValueError(f"weights must have shape (B, L), got shape {tuple(weights.shape)}")
    if not weights.is_floating_point():
        raise ValueError(f"weights must be a floating-point tensor, got dtype {weights.dtype}")
    return weights


def _check_lengths(lengths: object, batch: int, width: int, device: torch.device,
                   name: str = "lengths") -> Tensor:
    if not isinstance(lengths, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape ({batch},), got {type(lengths).__name__}")
    if lengths.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got shape {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.device != device:
        raise ValueError(f"{name} is on {lengths.device} but the other inputs are on {device}")
    lengths = lengths.to(torch.int64)
    if batch and bool(((lengths < 0) | (lengths > width)).any()):
        raise ValueError(f"{name} must lie in [0, {width}] (the padded width), got min "
                         f"{int(lengths.min())}, max {int(lengths.max())}")
    return lengths


def _valid(lengths: Tensor, width: int) -> Tensor:
    """(B, width) bool: position < lengths[b]."""
    return torch.arange(width, device=lengths.device) < lengths[:, None]


def _log_weights(weights: Tensor, lengths: Tensor) -> Tensor:
    """(B, L) float64 log-weights; -inf at zero weights and at positions >= lengths."""
    valid = _valid(lengths, weights.shape[1])
    w = weights.to(torch.float64)
    # NaN fails ``w >= 0``, so one test catches negative and NaN weights.
    bad = valid & ~((w >= 0) & torch.isfinite(w))
    if bool(bad.any()):
        b, i = (int(x) for x in bad.nonzero()[0])
        raise ValueError(f"weights must be finite and >= 0 at positions < lengths; "
                         f"weights[{b}, {i}] = {float(weights[b, i])}")
    # Padding may hold anything (NaN included): replace it before the log.
    return torch.where(valid, w, torch.zeros((), dtype=torch.float64, device=w.device)).log()


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but weights are on {device}")


# --------------------------------------------------------------------------------------------------
# elementary symmetric polynomials


def _esp_step(prev: Tensor, log_w: Tensor) -> Tensor:
    """One DP step: add a position of log-weight ``log_w`` (B,) to ``prev`` (B, K+1) = log e_j.

    e_j(S ∪ {i}) = e_j(S) + w_i e_{j-1}(S); e_0 is always 1."""
    shifted = log_w[:, None] + prev[:, :-1]
    return torch.cat([prev[:, :1], torch.logaddexp(prev[:, 1:], shifted)], dim=1)


def _esp_init(batch: int, max_degree: int, device: torch.device) -> Tensor:
    table = torch.full((batch, max_degree + 1), _NEG_INF, dtype=torch.float64, device=device)
    table[:, 0] = 0.0
    return table


def _log_esp(log_w: Tensor, max_degree: int) -> Tensor:
    table = _esp_init(log_w.shape[0], max_degree, log_w.device)
    for i in range(log_w.shape[1]):
        table = _esp_step(table, log_w[:, i])
    return table


def log_elementary_symmetric(weights: Tensor, lengths: Tensor, max_degree: int) -> Tensor:
    """log e_j(w_{b,0}, ..., w_{b,lengths[b]-1}) for j = 0..max_degree, in float64.

    Args:
        weights: (B, L) floating, finite and >= 0 at positions < lengths (the rest is ignored).
        lengths: (B,) integer in [0, L].
        max_degree: int >= 0, the largest degree j computed.

    Returns:
        (B, max_degree + 1) float64 natural logarithms; ``-inf`` where e_j = 0 (j larger than the
        number of positive weights).  e_0 = 1, so column 0 is 0.  O(B·L·max_degree), exact up to
        float64 rounding (a logsumexp recursion, stable for weights spanning many decades).
    """
    weights = _check_weights(weights)
    lengths = _check_lengths(lengths, weights.shape[0], weights.shape[1], weights.device)
    if isinstance(max_degree, bool) or not isinstance(max_degree, int) or max_degree < 0:
        raise ValueError(f"max_degree must be an integer >= 0, got {max_degree!r}")
    return _log_esp(_log_weights(weights, lengths), max_degree)


# --------------------------------------------------------------------------------------------------
# conditional Poisson (fixed-size weighted) subsets


def fixed_size_subset_log_prob(weights: Tensor, subset: Tensor, lengths: Tensor) -> Tensor:
    """Exact log P(S) of a revealed set under conditional Poisson sampling of its own size.

    P(S) = prod_{i in S} w_i / e_{|S|}(w_0, ..., w_{L_b - 1}) with L_b = lengths[b]: the
    distribution :func:`sample_fixed_size_subsets` draws from with ``sizes = subset.sum(1)``.
    For equal weights this is -log C(L_b, |S|).

    Args:
        weights: (B, L) floating, finite and >= 0 at positions < lengths (the rest is ignored).
        subset: (B, L) bool, True at revealed positions; must be False at positions >= lengths.
        lengths: (B,) integer in [0, L].

    Returns:
        (B,) float64 log-probabilities in nats; ``-inf`` where S contains a zero-weight position.
        Deterministic; O(B·L·K) with K = max |S|.
    """
    weights = _check_weights(weights)
    if not isinstance(subset, Tensor):
        raise ValueError(f"subset must be a torch.Tensor of shape (B, L), got {type(subset).__name__}")
    if subset.shape != weights.shape:
        raise ValueError(f"subset must have the shape of weights {tuple(weights.shape)}, got "
                         f"{tuple(subset.shape)}")
    if subset.dtype != torch.bool:
        raise ValueError(f"subset must be a bool tensor, got dtype {subset.dtype}")
    if subset.device != weights.device:
        raise ValueError(f"subset is on {subset.device} but weights are on {weights.device}")
    batch, width = weights.shape
    lengths = _check_lengths(lengths, batch, width, weights.device)
    if bool((subset & ~_valid(lengths, width)).any()):
        raise ValueError("subset must be False at positions >= lengths")
    log_w = _log_weights(weights, lengths)
    sizes = subset.sum(dim=1)
    max_size = int(sizes.max()) if batch else 0
    log_norm = _log_esp(log_w, max_size).gather(1, sizes[:, None]).squeeze(1)
    zero = torch.zeros((), dtype=torch.float64, device=weights.device)
    log_num = torch.where(subset, log_w, zero).sum(dim=1)
    # A zero weight in S makes the numerator -inf; e_k may then be 0 too, and -inf - -inf is NaN.
    return torch.where(torch.isneginf(log_num), log_num, log_num - log_norm)


def _block_size(width: int) -> int:
    return max(1, math.isqrt(max(width, 1) - 1) + 1)  # ceil(sqrt(width))


def sample_fixed_size_subsets(weights: Tensor, sizes: Tensor, lengths: Tensor,
                              generator: torch.Generator | None = None) -> Tensor:
    """Draw revealed sets exactly from conditional Poisson sampling, |S| = sizes[b].

    For each row b, S is a subset of positions 0..lengths[b]-1 with exactly ``sizes[b]`` elements,
    drawn with probability prod_{i in S} w_i / e_k(w) (uniform over the C(L_b, k) sets when the
    weights are equal).  Sequential scan: position i is included, given r elements still to pick,
    with probability w_i e_{r-1}(w_{i+1:}) / e_r(w_{i:}); the suffix polynomials come from a
    backward DP in float64 log space.  To keep memory at O(B·K·sqrt(L)) rather than O(B·K·L), the
    DP keeps every ceil(sqrt(L))-th row and recomputes each block once (about 2x the work).

    Args:
        weights: (B, L) floating, finite and >= 0 at positions < lengths (the rest is ignored);
            at least ``sizes[b]`` of them positive in each row.
        sizes: (B,) integer in [0, lengths[b]].
        lengths: (B,) integer in [0, L].
        generator: a torch.Generator on the device of ``weights``, or None for torch's default.

    Returns:
        (B, L) bool, True at revealed positions; row b has exactly ``sizes[b]`` True entries, all at
        positions < lengths[b] and positive weight.  Deterministic given the generator's state: it
        draws exactly B·L float64 uniforms.  O(B·L·K) time with K = max(sizes).
    """
    weights = _check_weights(weights)
    batch, width = weights.shape
    device = weights.device
    lengths = _check_lengths(lengths, batch, width, device)
    sizes = _check_lengths(sizes, batch, width, device, name="sizes")
    if batch and bool((sizes > lengths).any()):
        b = int((sizes > lengths).nonzero()[0, 0])
        raise ValueError(f"sizes must lie in [0, lengths]; sizes[{b}] = {int(sizes[b])} > "
                         f"lengths[{b}] = {int(lengths[b])}")
    _check_generator(generator, device)
    log_w = _log_weights(weights, lengths)
    positive = torch.isfinite(log_w).sum(dim=1)
    if batch and bool((sizes > positive).any()):
        b = int((sizes > positive).nonzero()[0, 0])
        raise ValueError(f"sizes[{b}] = {int(sizes[b])} exceeds the {int(positive[b])} positive weights "
                         f"of row {b} (within lengths): no set of that size has positive probability")
    # Drawn before any early return, so the generator always advances by the same amount.
    uniforms = torch.rand(batch, width, generator=generator, device=device, dtype=torch.float64)
    chosen = torch.zeros(batch, width, dtype=torch.bool, device=device)
    max_size = int(sizes.max()) if batch else 0
    if max_size == 0:
        return chosen

    # Backward DP, suffix[i] = log e_j(w_i..w_{L-1}); keep only the rows at block starts and at L.
    block = _block_size(width)
    checkpoints: dict[int, Tensor] = {}
    suffix = _esp_init(batch, max_size, device)
    checkpoints[width] = suffix
    for i in range(width - 1, -1, -1):
        suffix = _esp_step(suffix, log_w[:, i])
        if i % block == 0:
            checkpoints[i] = suffix

    rows = torch.arange(batch, device=device)
    remaining = sizes.clone()
    for start in range(0, width, block):
        end = min(start + block, width)
        # Recompute suffix rows start+1..end of this block from the checkpoint at its end.
        block_rows = [checkpoints[end]]
        for i in range(end - 1, start, -1):
            block_rows.append(_esp_step(block_rows[-1], log_w[:, i]))
        block_rows.reverse()  # block_rows[i - start] = suffix[i + 1]
        for i in range(start, end):
            after = block_rows[i - start]
            need = remaining > 0
            take = log_w[:, i] + after[rows, (remaining - 1).clamp(min=0)]  # log w_i e_{r-1}(w_{i+1:})
            skip = after[rows, remaining]                                  # log e_r(w_{i+1:})
            # P(include) = take / (take + skip), a sigmoid of the log-ratio; exact branches where
            # one side is impossible, so rounding can never lead to an infeasible path.
            prob = torch.sigmoid(take - skip)
            include = need & (torch.isneginf(skip) | (uniforms[:, i] < prob)) & ~torch.isneginf(take)
            chosen[:, i] = include
            remaining = remaining - include.to(remaining.dtype)
        del block_rows
    return chosen


# --------------------------------------------------------------------------------------------------
# counting


def log_binomial(n: Tensor | int, k: Tensor | int) -> Tensor:
    """log C(n, k) in nats, elementwise (broadcast), as a float64 tensor via lgamma.

    ``-inf`` where k < 0 or k > n (C(n, k) = 0); n must be >= 0.  Deterministic.
    """
    n_t = torch.as_tensor(n)
    k_t = torch.as_tensor(k, device=n_t.device)
    for name, value in (("n", n_t), ("k", k_t)):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be integer-valued, got dtype {value.dtype}")
    if bool((n_t < 0).any()):
        raise ValueError("n must be >= 0")
    n_f, k_f = n_t.to(torch.float64), k_t.to(torch.float64)
    inside = (k_f >= 0) & (k_f <= n_f)
    k_safe = torch.where(inside, k_f, torch.zeros_like(k_f))
    value = torch.lgamma(n_f + 1) - torch.lgamma(k_safe + 1) - torch.lgamma(n_f - k_safe + 1)
    return torch.where(inside, value, torch.full_like(value, _NEG_INF))


# --------------------------------------------------------------------------------------------------
# sequence distances


def _as_padded(seqs: Tensor | Sequence[Sequence[int]], lengths: Tensor | None,
               name: str) -> tuple[Tensor, Tensor]:
    """(B, L) int64 tokens and (B,) int64 lengths from a padded tensor or a list of id lists."""
    if isinstance(seqs, Tensor):
        if seqs.dim() != 2:
            raise ValueError(f"{name} must have shape (B, L), got shape {tuple(seqs.shape)}")
        if seqs.is_floating_point() or seqs.is_complex():
            raise ValueError(f"{name} must hold integer token ids, got dtype {seqs.dtype}")
        batch, width = seqs.shape
        if lengths is None:
            lengths = torch.full((batch,), width, dtype=torch.int64, device=seqs.device)
        lengths = _check_lengths(lengths, batch, width, seqs.device, name=f"{name}_lengths")
        return seqs.to(torch.int64), lengths
    if lengths is not None:
        raise ValueError(f"{name}_lengths is only for a padded tensor {name}, not a list of sequences")
    if isinstance(seqs, (str, bytes)) or not isinstance(seqs, Sequence):
        raise ValueError(f"{name} must be a (B, L) tensor or a list of lists of int, got {type(seqs).__name__}")
    rows: list[list[int]] = []
    for b, seq in enumerate(seqs):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence) or not all(
                isinstance(t, int) and not isinstance(t, bool) for t in seq):
            raise ValueError(f"{name}[{b}] must be a list of int token ids")
        rows.append(list(seq))
    width = max((len(r) for r in rows), default=0)
    tokens = torch.zeros(len(rows), width, dtype=torch.int64)
    for b, r in enumerate(rows):
        if r:
            tokens[b, :len(r)] = torch.tensor(r, dtype=torch.int64)
    return tokens, torch.tensor([len(r) for r in rows], dtype=torch.int64)


def levenshtein_distance(a: Tensor | Sequence[Sequence[int]], b: Tensor | Sequence[Sequence[int]], *,
                         a_lengths: Tensor | None = None, b_lengths: Tensor | None = None) -> Tensor:
    """Edit distance (unit-cost insertion, deletion, substitution) between a[i] and b[i].

    Args:
        a, b: each either a (B, L) integer tensor of token ids (padded; its ``*_lengths`` (B,) give
            the real lengths, default the full width) or a list of B lists of int.  Padding is
            ignored.  Tensors must share a device; lists are read on the other side's device (CPU
            if both are lists).
        a_lengths, b_lengths: (B,) integer, only with tensor inputs.

    Returns:
        (B,) int64 distances, exact and deterministic.  Row DP over a's positions, each row
        vectorised over the batch and over b with a prefix minimum (the insertion chain
        D[i, j] = min_{j' <= j} t[j'] + (j - j') is j + cummin(t - j')): O(B·La·Lb) work in La steps.
    """
    a_tok, a_len = _as_padded(a, a_lengths, "a")
    b_tok, b_len = _as_padded(b, b_lengths, "b")
    if a_tok.shape[0] != b_tok.shape[0]:
        raise ValueError(f"a and b must have the same batch size, got {a_tok.shape[0]} and {b_tok.shape[0]}")
    a_is_t, b_is_t = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is_t and b_is_t and a_tok.device != b_tok.device:
        raise ValueError(f"a is on {a_tok.device} but b is on {b_tok.device}")
    device = a_tok.device if a_is_t else b_tok.device
    a_tok, a_len, b_tok, b_len = (t.to(device) for t in (a_tok, a_len, b_tok, b_len))
    batch, width_b = b_tok.shape
    cols = torch.arange(width_b + 1, device=device)
    row = cols.expand(batch, -1).clone()  # D[0, j] = j
    # Row 0 answers the rows with an empty a: distance = len(b).
    result = b_len.clone()
    for i in range(1, a_tok.shape[1] + 1):
        cost = (b_tok != a_tok[:, i - 1:i]).to(torch.int64)        # (B, Lb) substitution cost
        t = torch.minimum(row[:, 1:] + 1, row[:, :-1] + cost)      # deletion or (mis)match
        t = torch.cat([torch.full((batch, 1), i, dtype=torch.int64, device=device), t], dim=1)
        row = torch.cummin(t - cols, dim=1).values + cols          # then the insertion chain
        done = a_len == i
        result = torch.where(done, row.gather(1, b_len[:, None]).squeeze(1), result)
    return result


def hamming_distance(a: Tensor, b: Tensor, lengths: Tensor) -> Tensor:
    """Number of positions i < lengths[b] where a[b, i] != b[b, i].

    Args:
        a, b: (B, L) tensors of the same shape and device (token ids).
        lengths: (B,) integer in [0, L].

    Returns:
        (B,) int64 counts; deterministic.
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, Tensor) or value.dim() != 2:
            raise ValueError(f"{name} must be a (B, L) tensor")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"a is on {a.device} but b is on {b.device}")
    lengths = _check_lengths(lengths, a.shape[0], a.shape[1], a.device)
    return ((a != b) & _valid(lengths, a.shape[1])).sum(dim=1, dtype=torch.int64)
