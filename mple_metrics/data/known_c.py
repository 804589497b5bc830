"""Datasets whose conditional total correlation C is known exactly (ground truth for the C estimator).

Every target here is generated position by position from the source: the source is ``M`` words
``s<a_1> ... s<a_M>`` (drawn uniformly from ``n_source_words`` words) and target word ``m`` is
``t<a_m>v<v_m>`` (e.g. ``t12v3``), where the "variant" sequence ``V = (v_1, ..., v_M)`` is drawn,
independently of the source, from a **finite mixture of per-position distributions**::

    P(V = v) = sum_k  w_k  prod_m  p_k,m(v_m)        (K components, J variants per position)

Since the target words are a one-to-one relabelling of ``V`` given the source, the conditional total
correlation (Theorem 1) of every sentence is that of ``V``::

    C = sum_m H(v_m) - H(V)          (bits per sentence; the same for every source)

:func:`total_correlation` computes it by enumerating all ``prod_m |support_m|`` sequences.  Special
cases with closed forms (used as checks):

- ``iid``: K = 1, any per-position distributions -> the positions are independent, C = 0;
- ``deterministic``: K = 1, one-hot distributions -> H(V) = 0 and every H(v_m) = 0, C = 0;
- ``kmodes``: K equiprobable components, component k is one-hot on variant k at every position, so
  the K modes differ at all M positions: H(V) = log2 K, H(v_m) = log2 K, C = (M - 1) log2 K;
- ``mixture``: K components with Dirichlet-drawn weights and per-position distributions (seeded).

"Per token" values divide by M, the number of target words (an end-of-sentence token is
deterministic and adds nothing to C).  C depends on what a token is: read these datasets with the
``word`` tokenizer.

Words are ASCII letters and digits only (:func:`source_word`, :func:`target_word`): the letter
``v`` separates the source-word number from the variant, so ``t1v23`` and ``t12v3`` are different
words, and every word-level BLEU tokenization (sacrebleu's ``13a``, ``intl``, ``none``) sees one
token per word, so BLEU on the detokenized text equals BLEU on the word ids.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic_write import atomic_write_text

from .dataset import Dataset, Split, write_dataset

KNOWN_C_KINDS: tuple[str, ...] = ("iid", "deterministic", "kmodes", "mixture")
#: Largest number of sequences :func:`total_correlation` will enumerate.
MAX_ENUMERATED_SEQUENCES = 4_000_000


@dataclass(frozen=True)
class PositionMixture:
    """``weights`` (K,) summing to 1 and ``probs`` (K, M, J), each ``probs[k, m]`` summing to 1."""

    weights: np.ndarray
    probs: np.ndarray

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=np.float64)
        probs = np.asarray(self.probs, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0:
            raise ValueError(f"weights must have shape (K,) with K >= 1, got {weights.shape}")
        if probs.ndim != 3 or probs.shape[0] != weights.size or probs.shape[1] < 1 or probs.shape[2] < 1:
            raise ValueError(f"probs must have shape (K={weights.size}, M, J) with M, J >= 1, "
                             f"got {probs.shape}")
        if (weights < 0).any() or not math.isclose(weights.sum(), 1.0, abs_tol=1e-9):
            raise ValueError(f"weights must be non-negative and sum to 1, got sum {weights.sum()}")
        if (probs < 0).any() or not np.allclose(probs.sum(-1), 1.0, atol=1e-9):
            raise ValueError("every probs[k, m] must be non-negative and sum to 1")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "probs", probs)

    @property
    def num_components(self) -> int:
        return int(self.weights.size)

    @property
    def length(self) -> int:
        """M, the number of positions (target words per sentence)."""
        return int(self.probs.shape[1])

    @property
    def num_variants(self) -> int:
        return int(self.probs.shape[2])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` variant sequences, shape (n, M), int64."""
        components = rng.choice(self.num_components, size=n, p=self.weights)
        cumulative = np.cumsum(self.probs, axis=-1)  # (K, M, J)
        cumulative[..., -1] = 1.0
        u = rng.random((n, self.length))
        rows = cumulative[components]  # (n, M, J)
        return (u[..., None] >= rows).sum(-1).astype(np.int64)

    def to_json(self) -> dict:
        return {"weights": self.weights.tolist(), "probs": self.probs.tolist()}


@dataclass(frozen=True)
class TotalCorrelation:
    """Exact information quantities of a :class:`PositionMixture`, in bits per sentence."""

    sum_marginal_entropy: float  # sum_m H(v_m)
    joint_entropy: float  # H(V)
    length: int  # M

    @property
    def bits_per_sentence(self) -> float:
        return self.sum_marginal_entropy - self.joint_entropy

    @property
    def bits_per_token(self) -> float:
        return self.bits_per_sentence / self.length


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def total_correlation(mixture: PositionMixture,
                      max_sequences: int = MAX_ENUMERATED_SEQUENCES) -> TotalCorrelation:
    """C of ``mixture`` by exact enumeration of every sequence in the support (float64).

    Raises ValueError when the support has more than ``max_sequences`` sequences.
    """
    marginals = np.einsum("k,kmj->mj", mixture.weights, mixture.probs)  # (M, J)
    supports = [np.flatnonzero(marginals[m] > 0) for m in range(mixture.length)]
    n_sequences = math.prod(len(s) for s in supports)
    if n_sequences > max_sequences:
        raise ValueError(f"the mixture's support has {n_sequences} sequences; enumeration is "
                         f"limited to {max_sequences} (use fewer positions or variants)")
    # joint[k, seq] = w_k * prod_m p_k,m(v_m) over the support, built one position at a time.
    joint = mixture.weights[:, None].copy()
    for m, support in enumerate(supports):
        joint = (joint[:, :, None] * mixture.probs[:, m, support][:, None, :]).reshape(
            mixture.num_components, -1)
    sequence_probs = joint.sum(0)
    return TotalCorrelation(
        sum_marginal_entropy=sum(_entropy_bits(marginals[m]) for m in range(mixture.length)),
        joint_entropy=_entropy_bits(sequence_probs),
        length=mixture.length,
    )


def kmodes_closed_form_bits(k: int, m: int) -> float:
    """C of K equiprobable modes differing at all M positions: (M - 1) log2 K bits per sentence."""
    return (m - 1) * math.log2(k)


def make_mixture(kind: str, m: int, k: int = 2, j: int = 2, seed: int = 0,
                 concentration: float = 1.0) -> PositionMixture:
    """The mixture of one of :data:`KNOWN_C_KINDS` with ``m`` positions.

    ``k``: modes (kmodes) or components (mixture); ``j``: variants per position (iid, mixture;
    kmodes uses j = k).  Random parameters (iid, mixture) are Dirichlet(``concentration``) draws
    from ``seed``.
    """
    if m < 1:
        raise ValueError(f"m (positions per sentence) must be >= 1, got {m}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if j < 1:
        raise ValueError(f"j (variants per position) must be >= 1, got {j}")
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    rng = np.random.default_rng(seed)
    if kind == "deterministic":
        probs = np.zeros((1, m, 1))
        probs[..., 0] = 1.0
        return PositionMixture(np.ones(1), probs)
    if kind == "iid":
        if j < 2:
            raise ValueError("iid needs j >= 2 variants per position (else it is deterministic)")
        return PositionMixture(np.ones(1), rng.dirichlet(np.full(j, concentration), size=(1, m)))
    if kind == "kmodes":
        if k < 2:
            raise ValueError("kmodes needs k >= 2 modes")
        probs = np.zeros((k, m, k))
        for mode in range(k):
            probs[mode, :, mode] = 1.0
        return PositionMixture(np.full(k, 1.0 / k), probs)
    if kind == "mixture":
        if j < 2:
            raise ValueError("mixture needs j >= 2 variants per position")
        weights = rng.dirichlet(np.full(k, concentration))
        return PositionMixture(weights, rng.dirichlet(np.full(j, concentration), size=(k, m)))
    raise ValueError(f"kind must be one of {KNOWN_C_KINDS}, got {kind!r}")


def source_word(a: int) -> str:
    """Source word number ``a``: ``s<a>`` (``s7``)."""
    return f"s{a}"


def target_word(a: int, v: int) -> str:
    """Target word of source word ``a`` in variant ``v``: ``t<a>v<v>`` (``t7v2``); letters and digits
    only, one token for every word-level BLEU tokenization, and one word per ``(a, v)``."""
    return f"t{a}v{v}"


def sample_split(name: str, mixture: PositionMixture, n: int, n_source_words: int,
                 rng: np.random.Generator) -> Split:
    """``n`` sentence pairs: source ``s<a_1> .. s<a_M>``, target ``t<a_1>v<v_1> .. t<a_M>v<v_M>``."""
    if n < 1:
        raise ValueError(f"split {name!r} needs at least 1 sentence, got {n}")
    if n_source_words < 1:
        raise ValueError(f"n_source_words must be >= 1, got {n_source_words}")
    sources = rng.integers(0, n_source_words, size=(n, mixture.length))
    variants = mixture.sample(n, rng)
    src = [" ".join(source_word(a) for a in row) for row in sources.tolist()]
    tgt = [" ".join(target_word(a, v) for a, v in zip(a_row, v_row))
           for a_row, v_row in zip(sources.tolist(), variants.tolist())]
    return Split(name, src, tgt)


def write_known_c(out: str | os.PathLike, kind: str, m: int, k: int = 2, j: int = 2,
                  n_train: int = 20000, n_valid: int = 1000, n_test: int = 1000,
                  n_source_words: int = 50, seed: int = 0, concentration: float = 1.0) -> dict:
    """Write a known-C dataset to ``out`` (directory format) and ``out/truth.json``; return the
    truth.  Deterministic for a given ``seed``."""
    mixture = make_mixture(kind, m=m, k=k, j=j, seed=seed, concentration=concentration)
    tc = total_correlation(mixture)
    rng = np.random.default_rng([seed, 1])
    dataset = Dataset({name: sample_split(name, mixture, n, n_source_words, rng)
                       for name, n in (("train", n_train), ("valid", n_valid), ("test", n_test))})
    out = Path(out)
    write_dataset(out, dataset)
    truth = {
        "kind": kind,
        "m": m, "k": mixture.num_components, "j": mixture.num_variants,
        "n_source_words": n_source_words, "seed": seed, "concentration": concentration,
        "sizes": {name: len(split) for name, split in dataset.items()},
        "tokenizer": "word",
        "tokens_per_sentence": m,
        "c_bits_per_sentence": tc.bits_per_sentence,
        "c_bits_per_token": tc.bits_per_token,
        "c_nats_per_sentence": tc.bits_per_sentence * math.log(2),
        "c_nats_per_token": tc.bits_per_token * math.log(2),
        "sum_h_yi_given_x_bits": tc.sum_marginal_entropy,
        "h_y_given_x_bits": tc.joint_entropy,
        "closed_form_bits_per_sentence": (kmodes_closed_form_bits(k, m) if kind == "kmodes"
                                          else 0.0 if kind in ("iid", "deterministic") else None),
        "method": "exact enumeration of the target distribution given the source",
        "mixture": mixture.to_json(),
    }
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=2) + "\n")
    return truth
