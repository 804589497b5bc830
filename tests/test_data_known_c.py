"""Known-C datasets: the enumeration matches closed forms and an independent brute force, and the
written datasets follow the distribution they claim."""

from __future__ import annotations

import collections
import itertools
import json
import math

import re

import numpy as np
import pytest
from sacrebleu.metrics.bleu import BLEU as SacreBLEU

from mple_metrics.data import (KNOWN_C_KINDS, PositionMixture, TokenizerPair, kmodes_closed_form_bits,
                               load_dataset, make_mixture, total_correlation, write_known_c)
from mple_metrics.data.tokenizer import NUM_SPECIAL
from mple_metrics.train import bleu_scores

TARGET_WORD = re.compile(r"t(0|[1-9][0-9]*)v(0|[1-9][0-9]*)")


def brute_force_c(weights, probs) -> float:
    """sum_m H(v_m) - H(V) by listing every sequence in pure Python (independent of the numpy code)."""
    k, m, j = len(probs), len(probs[0]), len(probs[0][0])
    joint = {}
    for seq in itertools.product(range(j), repeat=m):
        joint[seq] = sum(weights[c] * math.prod(probs[c][i][seq[i]] for i in range(m)) for c in range(k))
    h_joint = -sum(p * math.log2(p) for p in joint.values() if p > 0)
    h_marg = 0.0
    for i in range(m):
        for v in range(j):
            p = sum(q for seq, q in joint.items() if seq[i] == v)
            if p > 0:
                h_marg -= p * math.log2(p)
    return h_marg - h_joint


@pytest.mark.parametrize("k,m", [(2, 1), (2, 2), (2, 8), (3, 5), (4, 4), (5, 3), (8, 2)])
def test_kmodes_enumeration_equals_closed_form(k, m):
    tc = total_correlation(make_mixture("kmodes", m=m, k=k))
    assert tc.bits_per_sentence == pytest.approx(kmodes_closed_form_bits(k, m), abs=1e-12)
    assert tc.bits_per_sentence == pytest.approx((m - 1) * math.log2(k), abs=1e-12)
    assert tc.joint_entropy == pytest.approx(math.log2(k), abs=1e-12)
    assert tc.bits_per_token == pytest.approx(tc.bits_per_sentence / m)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("m,j", [(1, 2), (4, 3), (8, 2)])
def test_iid_and_deterministic_are_zero(seed, m, j):
    assert abs(total_correlation(make_mixture("iid", m=m, j=j, seed=seed)).bits_per_sentence) < 1e-12
    det = total_correlation(make_mixture("deterministic", m=m, seed=seed))
    assert det.bits_per_sentence == 0.0 and det.joint_entropy == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_general_mixture_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    k, m, j = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 4))
    mixture = make_mixture("mixture", m=m, k=k, j=j, seed=seed, concentration=0.7)
    expected = brute_force_c(mixture.weights.tolist(), mixture.probs.tolist())
    assert total_correlation(mixture).bits_per_sentence == pytest.approx(expected, abs=1e-10)
    assert total_correlation(mixture).bits_per_sentence >= -1e-12


def test_mixture_special_cases():
    # Identical components: the mixture is a product distribution, C = 0.
    rng = np.random.default_rng(0)
    per_position = rng.dirichlet(np.ones(3), size=4)
    same = PositionMixture(np.array([0.2, 0.5, 0.3]), np.stack([per_position] * 3))
    assert abs(total_correlation(same).bits_per_sentence) < 1e-12
    # Unequal mode weights, modes differing everywhere: C = (M - 1) H(w).
    w = np.array([0.7, 0.2, 0.1])
    probs = np.zeros((3, 5, 3))
    for c in range(3):
        probs[c, :, c] = 1.0
    h_w = -(w * np.log2(w)).sum()
    assert total_correlation(PositionMixture(w, probs)).bits_per_sentence == pytest.approx(4 * h_w, abs=1e-12)
    # A zero-probability variant does not enter the support.
    probs = np.array([[[0.5, 0.0, 0.5]] * 3])
    assert abs(total_correlation(PositionMixture(np.ones(1), probs)).bits_per_sentence) < 1e-12


def test_enumeration_limit_and_validation():
    with pytest.raises(ValueError, match="enumeration is limited"):
        total_correlation(make_mixture("iid", m=30, j=3), max_sequences=1000)
    with pytest.raises(ValueError, match="sum to 1"):
        PositionMixture(np.array([0.5, 0.6]), np.full((2, 1, 2), 0.5))
    with pytest.raises(ValueError, match="shape"):
        PositionMixture(np.array([1.0]), np.full((2, 1, 2), 0.5))
    with pytest.raises(ValueError, match="kind must be one of"):
        make_mixture("gaussian", m=3)
    with pytest.raises(ValueError, match="k >= 2"):
        make_mixture("kmodes", m=3, k=1)


def _plugin_c(targets: list[str]) -> float:
    """Plug-in estimate of sum_m H(v_m) - H(V) from the variant suffixes of written targets."""
    variants = [tuple(TARGET_WORD.fullmatch(w).group(2) for w in t.split()) for t in targets]
    n = len(variants)

    def entropy(counter):
        return -sum(c / n * math.log2(c / n) for c in counter.values())

    m = len(variants[0])
    return sum(entropy(collections.Counter(v[i] for v in variants)) for i in range(m)) - entropy(
        collections.Counter(variants))


@pytest.mark.parametrize("kind,k,m,j", [("kmodes", 2, 8, 2), ("kmodes", 3, 4, 3), ("iid", 1, 4, 2),
                                        ("deterministic", 1, 5, 1), ("mixture", 2, 3, 2)])
def test_written_dataset_follows_its_truth(tmp_path, kind, k, m, j):
    truth = write_known_c(tmp_path, kind, m=m, k=k, j=j, n_train=6000, n_valid=50, n_test=50, seed=1)
    on_disk = json.loads((tmp_path / "truth.json").read_text())
    assert on_disk["c_bits_per_sentence"] == pytest.approx(truth["c_bits_per_sentence"])
    assert on_disk["c_bits_per_token"] == pytest.approx(truth["c_bits_per_sentence"] / m)
    data = load_dataset(tmp_path)
    assert [len(data[s]) for s in ("train", "valid", "test")] == [6000, 50, 50]
    for src, tgt in zip(data.train.src, data.train.tgt):
        s_words, t_words = src.split(), tgt.split()
        assert len(s_words) == len(t_words) == m
        assert all(TARGET_WORD.fullmatch(t).group(1) == s[1:] for s, t in zip(s_words, t_words))
    # The sample's plug-in C approaches the exact C (plug-in bias is O(support / n)).
    assert _plugin_c(data.train.tgt) == pytest.approx(truth["c_bits_per_sentence"], abs=0.06)
    if kind == "kmodes":
        assert truth["closed_form_bits_per_sentence"] == pytest.approx(truth["c_bits_per_sentence"])


# BLEU tokenizations that split text into words (char, and the spm/mecab/zh ones, are not asked to
# keep a synthetic word whole).
WORD_TOKENIZERS = ("13a", "intl", "none")


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    """One small dataset of every kind, with many source words and variants (multi-digit ids)."""
    root = tmp_path_factory.mktemp("known_c_words")
    settings = {"iid": dict(j=12), "deterministic": {}, "kmodes": dict(k=11), "mixture": dict(k=3, j=12)}
    datasets = {}
    for kind in KNOWN_C_KINDS:
        write_known_c(root / kind, kind, m=5, n_train=400, n_valid=40, n_test=40, n_source_words=120,
                      seed=2, **settings[kind])
        datasets[kind] = load_dataset(root / kind)
    return datasets


def test_every_word_is_one_token_for_every_bleu_tokenization(every_kind):
    tokenizers = {name: SacreBLEU(tokenize=name).tokenizer for name in WORD_TOKENIZERS}
    parsed = {}
    for kind, data in every_kind.items():
        words = {w for split in data.values() for line in split.src + split.tgt for w in line.split()}
        assert any(len(w) >= 5 for w in words)  # multi-digit source words and variants occur
        for word in words:
            assert word.isascii() and word.isalnum(), word
            for name, tokenize in tokenizers.items():
                assert tokenize(word) == word, (kind, name, word)
        # A target word names its (source word, variant) pair unambiguously: t1v23 != t12v3.
        for split in data.values():
            for src, tgt in zip(split.src, split.tgt):
                for s, t in zip(src.split(), tgt.split()):
                    match = TARGET_WORD.fullmatch(t)
                    assert match and match.group(1) == s[1:], (s, t)
                    parsed.setdefault(t, (int(match.group(1)), int(match.group(2))))
    assert len(set(parsed.values())) == len(parsed)
    # Whole sentences tokenize to their words.
    for data in every_kind.values():
        for line in data.test.tgt + data.test.src:
            for tokenize in tokenizers.values():
                assert tokenize(line).split() == line.split()


@pytest.mark.parametrize("kind", ["kmodes", "mixture"])
def test_detokenized_bleu_equals_id_bleu_on_random_outputs(every_kind, kind, rng):
    data = every_kind[kind]
    # Every word of every split in the vocabulary, so the references round-trip (no <unk>).
    pair = TokenizerPair.train([t for split in data.values() for t in split.src],
                               [t for split in data.values() for t in split.tgt], kind="word",
                               vocab_size=None)
    refs = data.test.refs
    assert all(pair.tgt.decode(pair.tgt.encode(r)) == r for row in refs for r in row)
    target_ids = sorted({i for row in refs for r in row for i in pair.tgt.encode(r)})
    for _ in range(3):
        # Random outputs, but near the references so that higher-order n-grams match too.
        hyps = []
        for row in refs:
            ids = pair.tgt.encode(row[0])
            keep = rng.random(len(ids)) < 0.6
            hyp = [i if k else int(rng.choice(target_ids)) for i, k in zip(ids, keep)]
            hyps.append(hyp[: int(rng.integers(1, len(hyp) + 2))])
        result = bleu_scores(hyps, refs, pair)
        assert result["bleu_ids"] > 1.0
        assert result["bleu"] == pytest.approx(result["bleu_ids"], abs=1e-9)
        assert all(i >= NUM_SPECIAL for h in hyps for i in h)
