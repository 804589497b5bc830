"""A controlled translation benchmark: a generated language pair whose true C is computed exactly.

The task
--------
The source is two clauses joined by a conjunction, ``s<a_1> .. s<a_p> sand s<b_1> .. s<b_q>``,
with content words drawn uniformly from ``n_source_words`` words and clause lengths uniform in
``[min_clause, max_clause]`` (5-15 words with the defaults).  In the kinds that reorder, a fraction
``modifier_fraction`` of the content words (drawn with ``seed``) are modifiers (adjectives), the
others nouns; a modifier directly followed by a noun in the same clause is a modifier-noun phrase.
A bilingual dictionary translates word by word: content word ``s<a>`` becomes ``t<a>v<k>``
(:func:`.known_c.target_word`) in register ``k``, and ``sand`` becomes ``tand``.  Source and target
share no word, so a model has to learn the dictionary; it cannot copy.

On the target side, each kind adds one form of multimodality, the one a proxy addresses:

- ``none``: register 0, source word order.  Deterministic given the source: C = 0.
- ``phrasing``: one of K registers (equiprobable), chosen per sentence and applied to every word:
  alternative phrasings whose positions are correlated through the global choice (C > 0).  A
  fraction ``shared_fraction`` of the content words has one translation in every register (as
  function words do), so C depends on the source.  Knowledge distillation from a competent AT keeps
  one register: one mode.
- ``insertion``: with probability ``insert_prob`` a particle ``tpart`` is inserted between two
  words, at one of the ``n - 1`` gaps (uniform), shifting every later word by one position.  A
  monotonic alignment (AXE) absorbs the shift.
- ``reordering``: with probability ``swap_prob`` the sentence places modifiers after their nouns:
  every modifier-noun phrase comes as noun-modifier, a sentence-level choice of the order of the
  two words of each phrase (positions correlated through it).  An order-agnostic loss (OaXE)
  absorbs it.  (Swapping the two clauses instead moves every word by a source-dependent offset,
  which a ``tiny`` NAT did not learn: its NLL stayed 1.5 bits/token above its floor.)
- ``mixed``: all three, independently: register, then modifier order, then insertion.

Each target is a function of these choices, so P(Y | X) is a finite list: every combination of
choices with its probability, identical sequences merged (:func:`target_distribution`, a few to a
few dozen sequences per source).  :func:`sample_target` draws the choices with the random
generator instead, and is what the written dataset holds.

The exact C, in the estimator's convention
------------------------------------------
Ĉ (``mple estimate tc``) is ``NLL_NAT - NLL_AT`` per sentence with the *gold* target length T
given to both models.  With ``length_terms="include"`` (the default) the NAT scores
``-log2 P(T | X) - sum_t log2 P(y_t | X, T)`` (length predictor plus tokens at the gold length)
and the AT ``-log2 P(y_1 .. y_T </s> | X) = -log2 P(Y | X)``.  Best models of each family reach
the data distribution's own values, so Ĉ converges to::

    NAT:  H(T | X) + E_T [ sum_t H(y_t | X, T) ]
    AT:   H(Y | X) = H(T | X) + H(Y | X, T)          (T is a function of Y)
    C(X) = E_{T|X} [ sum_t H(y_t | X, T) - H(Y | X, T) ]

Theorem 1's total correlation of the target given the source *and its length*, averaged over the
length; where T is fixed given X (``none``, ``phrasing``, ``reordering``) it is Theorem 1's C.
With ``length_terms="exclude"`` the NAT loses its length term and the AT its ``</s>``, i.e. it
scores the prefix probability ``Pprefix(Y) = sum of P(Y')`` over the sequences ``Y'`` that start
with ``Y``::

    C_exclude(X) = E_T [ sum_t H(y_t | X, T) ] - E[ -log2 Pprefix(Y | X) ]

(here no target is a proper prefix of another, so ``C_exclude = C - H(T | X)``, negative where the
length varies: that convention does not let the length cancel).

Per split, the truth averages over the split's actual sources (no sampling error in the truth):
``c_true_bits_per_sentence = mean_s C(X_s)`` and ``c_true_bits_per_token = sum_s C(X_s) /
sum_s E[T | X_s]``, the ratio that the estimator's ``sum_s Ĉ_s / sum_s n_tokens(s)`` converges to.
Tokens are the target's words (no ``</s>``): the dataset carries a ``word`` tokenizer
(``DIR/tokenizer``, :mod:`.dataset_tokenizer`) that training and the estimator use, since the
truth holds for word tokens only.

Closed forms (tests): ``none`` gives 0; ``phrasing`` with no shared words gives K equiprobable
modes that differ at the M = n - 1 content words (``tand`` is the same in all), C = (M - 1) log2 K
(:func:`.known_c.kmodes_closed_form_bits`); ``reordering`` of a source with m modifier-noun phrases
gives two targets that differ at 2m positions, C = (2m - 1) h(swap_prob) for m >= 1.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic_write import atomic_write_text
from .dataset import SPLIT_NAMES, Dataset, Split, write_dataset
from .dataset_tokenizer import save_dataset_tokenizers
from .known_c import source_word, target_word
from .tokenizer import TokenizerPair, WordTokenizer

CONTROLLED_KINDS: tuple[str, ...] = ("none", "phrasing", "insertion", "reordering", "mixed")
SOURCE_CONJUNCTION = "sand"
TARGET_CONJUNCTION = "tand"
PARTICLE = "tpart"
#: Largest number of choice combinations (targets before merging) per source.
MAX_TARGETS_PER_SOURCE = 100_000
TRUTH_FILE = "truth.json"

_USES = {  # kind -> (registers, insertion, reordering)
    "none": (False, False, False),
    "phrasing": (True, False, False),
    "insertion": (False, True, False),
    "reordering": (False, False, True),
    "mixed": (True, True, True),
}

Clauses = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class ControlledTask:
    """The generator of one kind.  Parameters a kind does not use are ignored (and recorded as such
    by :meth:`parameters`).  The lexicon (which words are shared by all registers) depends on
    ``seed`` only."""

    kind: str
    n_source_words: int = 30
    registers: int = 2
    shared_fraction: float = 0.2
    insert_prob: float = 0.5
    swap_prob: float = 0.5
    modifier_fraction: float = 0.5
    min_clause: int = 2
    max_clause: int = 7
    seed: int = 0
    shared_words: frozenset[int] = field(init=False, repr=False)
    modifiers: frozenset[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in CONTROLLED_KINDS:
            raise ValueError(f"--kind must be one of {', '.join(CONTROLLED_KINDS)}, got {self.kind!r}")
        if self.n_source_words < 1:
            raise ValueError(f"--source-words must be >= 1, got {self.n_source_words}")
        if not 1 <= self.min_clause <= self.max_clause:
            raise ValueError(f"--min-clause-words ({self.min_clause}) must be >= 1 and <= "
                             f"--max-clause-words ({self.max_clause})")
        registers, insertion, reordering = _USES[self.kind]
        if registers and self.registers < 2:
            raise ValueError(f"--registers must be >= 2 for --kind {self.kind} (one register is "
                             f"deterministic), got {self.registers}")
        if registers and not 0.0 <= self.shared_fraction < 1.0:
            raise ValueError(f"--shared-fraction must be in [0, 1) (1 makes every register the same), "
                             f"got {self.shared_fraction}")
        if insertion and not 0.0 < self.insert_prob <= 1.0:
            raise ValueError(f"--insert-prob must be in (0, 1] for --kind {self.kind}, got {self.insert_prob}")
        if reordering and not 0.0 < self.swap_prob < 1.0:
            raise ValueError(f"--swap-prob must be in (0, 1) for --kind {self.kind} (0 or 1 fixes the "
                             f"order), got {self.swap_prob}")
        n_modifiers = round(self.modifier_fraction * self.n_source_words)
        if reordering and not 1 <= n_modifiers < self.n_source_words:
            raise ValueError(f"--modifier-fraction {self.modifier_fraction} of --source-words "
                             f"{self.n_source_words} gives {n_modifiers} modifiers; --kind {self.kind} needs at "
                             f"least one modifier and one noun")
        longest = self.combinations(2 * self.max_clause + 1)
        if longest > MAX_TARGETS_PER_SOURCE:
            raise ValueError(f"a source of {2 * self.max_clause + 1} words has {longest:,} choice combinations; "
                             f"the exact enumeration is limited to {MAX_TARGETS_PER_SOURCE:,} (lower "
                             f"--max-clause-words or --registers)")
        n_shared = round(self.shared_fraction * self.n_source_words) if registers else 0
        rng = np.random.default_rng([self.seed, 0])
        shared = rng.permutation(self.n_source_words)[:n_shared]
        object.__setattr__(self, "shared_words", frozenset(int(a) for a in shared))
        modifiers = np.random.default_rng([self.seed, 2]).permutation(self.n_source_words)[:n_modifiers]
        object.__setattr__(self, "modifiers", frozenset(int(a) for a in modifiers) if reordering else frozenset())

    # -- what the kind varies ------------------------------------------------------------------

    @property
    def n_registers(self) -> int:
        return self.registers if _USES[self.kind][0] else 1

    @property
    def inserts(self) -> bool:
        return _USES[self.kind][1]

    @property
    def reorders(self) -> bool:
        return _USES[self.kind][2]

    def combinations(self, n_words: int) -> int:
        """Choice combinations for a source of ``n_words`` words (targets before merging)."""
        return (self.n_registers * (2 if self.reorders else 1)
                * ((1 + max(n_words - 1, 0)) if self.inserts else 1))

    def parameters(self) -> dict:
        """The generator's parameters, those this kind uses marked as such."""
        registers, insertion, reordering = _USES[self.kind]
        out = {name: value for name, value in asdict(self).items() if name not in ("shared_words", "modifiers")}
        out["shared_words"] = [source_word(a) for a in sorted(self.shared_words)]
        out["modifiers"] = [source_word(a) for a in sorted(self.modifiers)]
        out["used"] = {"registers": registers, "shared_fraction": registers, "insert_prob": insertion,
                       "swap_prob": reordering, "modifier_fraction": reordering}
        return out

    # -- words ---------------------------------------------------------------------------------

    def translate(self, a: int, register: int) -> str:
        """Target word of content word ``a`` in ``register`` (register 0 for shared words)."""
        return target_word(a, 0 if a in self.shared_words else register)

    def source_vocabulary(self) -> list[str]:
        return [source_word(a) for a in range(self.n_source_words)] + [SOURCE_CONJUNCTION]

    def target_vocabulary(self) -> list[str]:
        words = [self.translate(a, k) for a in range(self.n_source_words) for k in range(self.n_registers)]
        return list(dict.fromkeys(words)) + [TARGET_CONJUNCTION] + ([PARTICLE] if self.inserts else [])

    def tokenizers(self) -> TokenizerPair:
        """One ``word`` tokenizer of every source and target word, on both sides (never ``<unk>``)."""
        shared = WordTokenizer(self.source_vocabulary() + self.target_vocabulary())
        return TokenizerPair(shared, shared)

    # -- sources and targets ---------------------------------------------------------------------

    def sample_source(self, rng: np.random.Generator) -> Clauses:
        lengths = rng.integers(self.min_clause, self.max_clause + 1, size=2)
        first = tuple(int(a) for a in rng.integers(0, self.n_source_words, size=int(lengths[0])))
        second = tuple(int(a) for a in rng.integers(0, self.n_source_words, size=int(lengths[1])))
        return first, second

    def realise(self, clauses: Clauses, register: int, swapped: bool, gap: int | None) -> tuple[str, ...]:
        """The target of one combination of choices: ``gap`` g in ``1..n-1`` inserts the particle
        after the g-th word (None: no particle)."""
        first, second = clauses
        if swapped:
            first, second = self.modifiers_after_nouns(first), self.modifiers_after_nouns(second)
        words = ([self.translate(a, register) for a in first] + [TARGET_CONJUNCTION]
                 + [self.translate(a, register) for a in second])
        if gap is not None:
            if not 1 <= gap < len(words):
                raise ValueError(f"gap must be in [1, {len(words) - 1}], got {gap}")
            words.insert(gap, PARTICLE)
        return tuple(words)

    def modifiers_after_nouns(self, clause: tuple[int, ...]) -> tuple[int, ...]:
        """``clause`` with every modifier that directly precedes a noun moved after it.  Phrases never
        overlap: a phrase starts with a modifier and ends with a noun."""
        out: list[int] = []
        i = 0
        while i < len(clause):
            if i + 1 < len(clause) and clause[i] in self.modifiers and clause[i + 1] not in self.modifiers:
                out += [clause[i + 1], clause[i]]
                i += 2
            else:
                out.append(clause[i])
                i += 1
        return tuple(out)

    def choices(self, n_words: int) -> list[tuple[int, bool, int | None, float]]:
        """Every ``(register, swapped, gap, probability)`` for a source of ``n_words`` words."""
        registers = [(k, 1.0 / self.n_registers) for k in range(self.n_registers)]
        orders = [(False, 1.0 - self.swap_prob), (True, self.swap_prob)] if self.reorders else [(False, 1.0)]
        gaps: list[tuple[int | None, float]] = [(None, 1.0)]
        if self.inserts:
            n_gaps = n_words - 1
            gaps = [(None, 1.0 - self.insert_prob)] + [(g, self.insert_prob / n_gaps) for g in range(1, n_words)]
        return [(k, s, g, pk * ps * pg) for k, pk in registers for s, ps in orders for g, pg in gaps
                if pk * ps * pg > 0]

    def sample_target(self, clauses: Clauses, rng: np.random.Generator) -> tuple[str, ...]:
        """One target drawn from P(Y | X): the choices are drawn, not looked up in the enumeration."""
        register = int(rng.integers(self.n_registers)) if self.n_registers > 1 else 0
        swapped = bool(rng.random() < self.swap_prob) if self.reorders else False
        gap = None
        n_words = len(clauses[0]) + len(clauses[1]) + 1
        if self.inserts and rng.random() < self.insert_prob:
            gap = int(rng.integers(1, n_words))
        return self.realise(clauses, register, swapped, gap)

    def target_distribution(self, clauses: Clauses) -> dict[tuple[str, ...], float]:
        """P(Y | X) of the source ``clauses``: every target with its probability (duplicates merged)."""
        n_words = len(clauses[0]) + len(clauses[1]) + 1
        distribution: dict[tuple[str, ...], float] = defaultdict(float)
        for register, swapped, gap, probability in self.choices(n_words):
            distribution[self.realise(clauses, register, swapped, gap)] += probability
        return dict(distribution)


def source_text(clauses: Clauses) -> str:
    first, second = clauses
    return " ".join([source_word(a) for a in first] + [SOURCE_CONJUNCTION] + [source_word(a) for a in second])


# ------------------------------------------------------------------------------------------
# Exact information quantities
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceTruth:
    """Exact quantities of P(Y | X) for one source, in bits per sentence (module docstring)."""

    h_y: float  # H(Y | X): the AT's floor with length terms
    h_length: float  # H(T | X)
    sum_marginal_given_length: float  # E_T [sum_t H(y_t | X, T)]
    prefix_nll: float  # E[-log2 Pprefix(Y | X)]: the AT's floor without </s>
    expected_tokens: float  # E[T | X]

    @property
    def c_include(self) -> float:
        return self.h_length + self.sum_marginal_given_length - self.h_y

    @property
    def c_exclude(self) -> float:
        return self.sum_marginal_given_length - self.prefix_nll

    @property
    def nat_floor(self) -> float:
        """The NAT's floor with its length term: H(T | X) + E_T [sum_t H(y_t | X, T)]."""
        return self.h_length + self.sum_marginal_given_length


def _entropy(probabilities) -> float:
    p = np.asarray(list(probabilities), dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def source_truth(distribution: dict[tuple[str, ...], float]) -> SourceTruth:
    """The exact :class:`SourceTruth` of one source's target distribution (float64)."""
    total = math.fsum(distribution.values())
    if not distribution or not math.isclose(total, 1.0, abs_tol=1e-9):
        raise ValueError(f"the target distribution must sum to 1, got {total}")
    by_length: dict[int, list[tuple[tuple[str, ...], float]]] = defaultdict(list)
    for sequence, p in distribution.items():
        by_length[len(sequence)].append((sequence, p))
    length_probs = {t: math.fsum(p for _, p in group) for t, group in by_length.items()}
    sum_marginal = 0.0
    for t, group in by_length.items():
        p_t = length_probs[t]
        for position in range(t):
            marginal: Counter[str] = Counter()
            for sequence, p in group:
                marginal[sequence[position]] += p / p_t
            sum_marginal += p_t * _entropy(marginal.values())
    lengths = sorted(by_length)
    prefix_nll = 0.0
    for sequence, p in distribution.items():
        # Pprefix(Y): Y itself plus every longer sequence that starts with it.
        prefix = p + math.fsum(q for t in lengths if t > len(sequence) for other, q in by_length[t]
                               if other[:len(sequence)] == sequence)
        prefix_nll -= p * math.log2(prefix)
    return SourceTruth(h_y=_entropy(distribution.values()), h_length=_entropy(length_probs.values()),
                       sum_marginal_given_length=sum_marginal, prefix_nll=prefix_nll,
                       expected_tokens=math.fsum(p * len(s) for s, p in distribution.items()))


def split_truth(task: ControlledTask, sources: list[Clauses]) -> dict:
    """The truth of one split: exact C averaged over its actual sources (module docstring)."""
    distributions = [task.target_distribution(clauses) for clauses in sources]
    truths = [source_truth(d) for d in distributions]
    n = len(truths)
    tokens = math.fsum(t.expected_tokens for t in truths)

    def total(name: str) -> float:
        return math.fsum(getattr(t, name) for t in truths)

    c, c_exclude = total("c_include"), total("c_exclude")
    return {
        "sentences": n,
        "expected_target_tokens": tokens,
        "c_true_bits_per_token": c / tokens,
        "c_true_bits_per_sentence": c / n,
        "c_true_exclude_length_bits_per_token": c_exclude / tokens,
        "c_true_exclude_length_bits_per_sentence": c_exclude / n,
        "h_y_given_x_bits_per_token": total("h_y") / tokens,
        "nat_nll_floor_bits_per_token": total("nat_floor") / tokens,
        "h_length_given_x_bits_per_sentence": total("h_length") / n,
        "targets_per_source_mean": statistics.fmean(len(d) for d in distributions),
    }


# ------------------------------------------------------------------------------------------
# Writing a dataset
# ------------------------------------------------------------------------------------------

def make_split(task: ControlledTask, name: str, n: int, n_refs: int,
               rng: np.random.Generator) -> tuple[Split, list[Clauses]]:
    """``n`` sentence pairs with ``n_refs`` extra references each, every target and reference drawn
    independently from P(Y | X); also the sources as clauses."""
    if n < 1:
        raise ValueError(f"--{name} must be >= 1 sentences, got {n}")
    if n_refs < 0:
        raise ValueError(f"--refs must be >= 0, got {n_refs}")
    sources = [task.sample_source(rng) for _ in range(n)]
    refs = [[" ".join(task.sample_target(clauses, rng)) for _ in range(1 + n_refs)] for clauses in sources]
    return Split(name, [source_text(c) for c in sources], [r[0] for r in refs], refs), sources


def write_controlled(out: str | os.PathLike, task: ControlledTask, n_train: int = 4000,
                     n_valid: int = 500, n_test: int = 500, n_refs: int = 3,
                     warnings: list[str] | None = None) -> dict:
    """Write the dataset (train without extra references; valid and test with ``n_refs``), its
    ``word`` tokenizer in ``out/tokenizer`` and the truth in ``out/truth.json``; return the truth.
    Each split has its own random stream, so a split's content does not depend on the other sizes."""
    if n_refs < 0:
        raise ValueError(f"--refs must be >= 0, got {n_refs}")
    splits: dict[str, Split] = {}
    truths: dict[str, dict] = {}
    for index, (name, n) in enumerate(zip(SPLIT_NAMES, (n_train, n_valid, n_test))):
        rng = np.random.default_rng([task.seed, 1, index])
        split, sources = make_split(task, name, n, 0 if name == "train" else n_refs, rng)
        splits[name] = split
        truths[name] = split_truth(task, sources)
    out = Path(out)
    write_dataset(out, Dataset(splits))
    save_dataset_tokenizers(out, task.tokenizers())
    truth = {
        "generator": "controlled",
        "kind": task.kind,
        "parameters": task.parameters(),
        "extra_references": {"train": 0, "valid": n_refs, "test": n_refs},
        "tokenizer": "word, carried in tokenizer/ (the truth holds for word tokens)",
        "unit": "bits; per_token = sum over sentences / expected target words (no </s>)",
        "length_terms": "include (c_true_*); exclude in c_true_exclude_length_*",
        "evaluation_split": "test",
        "c_true_bits_per_token": truths["test"]["c_true_bits_per_token"],
        "c_true_bits_per_sentence": truths["test"]["c_true_bits_per_sentence"],
        "splits": truths,
        "method": "exact enumeration of P(Y | X) for every source of the split; "
                  "C(X) = E_T[sum_t H(y_t | X, T) - H(Y | X, T)]",
        "warnings": list(warnings or []),
    }
    atomic_write_text(out / TRUTH_FILE, json.dumps(truth, indent=2) + "\n")
    return truth


def read_truth(path: str | os.PathLike) -> dict:
    """The ``truth.json`` of a controlled dataset directory."""
    file = Path(path) / TRUTH_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist (not a controlled dataset?)")
    return json.loads(file.read_text(encoding="utf-8"))
