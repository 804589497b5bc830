"""The controlled benchmark: its exact C matches an independent brute force and closed forms, its
written datasets follow the distribution the truth is computed from, and the command refuses bad
parameters."""

from __future__ import annotations

import collections
import itertools
import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from mple_metrics.cli import main
from mple_metrics.data import (CONTROLLED_KINDS, ControlledTask, dataset_tokenizers, kmodes_closed_form_bits,
                               load_dataset, make_mixture, source_truth, split_truth, total_correlation,
                               write_controlled)
from mple_metrics.data.controlled import MAX_TARGETS_PER_SOURCE

SMALL = dict(n_source_words=4, min_clause=1, max_clause=3)


# -- an independent model of the generator and of the truth -----------------------------------

def brute_force_targets(task: ControlledTask, clauses) -> dict[tuple[str, ...], float]:
    """P(Y | X) rebuilt from the documented process, without the module's enumeration."""
    first, second = clauses
    k_count = task.registers if task.kind in ("phrasing", "mixed") else 1
    reorders = task.kind in ("reordering", "mixed")
    inserts = task.kind in ("insertion", "mixed")
    out: dict[tuple[str, ...], float] = collections.defaultdict(float)

    def after(clause):  # modifier-noun -> noun-modifier, scanning pairs left to right with a regex
        tags = "".join("m" if a in task.modifiers else "n" for a in clause)
        order = []
        for match in re.finditer(r"mn|.", tags):
            start = match.start()
            order += [start + 1, start] if match.group() == "mn" else [start]
        return [clause[i] for i in order]

    for k in range(k_count):
        word = {a: f"t{a}v{0 if a in task.shared_words else k}" for a in first + second}
        for swapped in ((False, True) if reorders else (False,)):
            a, b = (after(first), after(second)) if swapped else (first, second)
            base = [word[x] for x in a] + ["tand"] + [word[x] for x in b]
            p_order = (task.swap_prob if swapped else 1 - task.swap_prob) if reorders else 1.0
            variants = [(tuple(base), 1 - task.insert_prob if inserts else 1.0)]
            if inserts:
                variants += [(tuple(base[:g] + ["tpart"] + base[g:]), task.insert_prob / (len(base) - 1))
                             for g in range(1, len(base))]
            for sequence, p in variants:
                if p > 0:
                    out[sequence] += p_order * p / k_count
    return dict(out)


def brute_force_c(distribution: dict[tuple[str, ...], float]) -> tuple[float, float]:
    """(C with length terms, C without) as floor(NAT) - floor(AT), in pure Python float64:
    NAT = H(T) + sum_T P(T) sum_t H(y_t | T); AT = H(Y) (include) or E[-log2 Pprefix(Y)] (exclude)."""
    def h(ps):
        return -sum(p * math.log2(p) for p in ps if p > 0)

    lengths = collections.Counter()
    for y, p in distribution.items():
        lengths[len(y)] += p
    marginal_sum = 0.0
    for t, p_t in lengths.items():
        for i in range(t):
            counts = collections.Counter()
            for y, p in distribution.items():
                if len(y) == t:
                    counts[y[i]] += p / p_t
            marginal_sum += p_t * h(counts.values())
    nat = h(lengths.values()) + marginal_sum
    prefix = sum(p * -math.log2(sum(q for z, q in distribution.items() if z[:len(y)] == y))
                 for y, p in distribution.items())
    return nat - h(distribution.values()), marginal_sum - prefix


def all_sources(task: ControlledTask):
    words = range(task.n_source_words)
    for p in range(task.min_clause, task.max_clause + 1):
        for q in range(task.min_clause, task.max_clause + 1):
            for first in itertools.product(words, repeat=p):
                for second in itertools.product(words, repeat=q):
                    yield first, second


# -- exact C -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", CONTROLLED_KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_c_matches_brute_force(kind, seed):
    task = ControlledTask(kind, n_source_words=3, min_clause=1, max_clause=3, registers=3,
                          shared_fraction=0.34, insert_prob=0.3, swap_prob=0.4, modifier_fraction=0.34,
                          seed=seed)
    for clauses in all_sources(task):  # every source, repeated words and equal clauses included
        distribution = task.target_distribution(clauses)
        expected = brute_force_targets(task, clauses)
        assert distribution.keys() == expected.keys()
        for y, p in expected.items():
            assert distribution[y] == pytest.approx(p, abs=1e-14)
        truth = source_truth(distribution)
        c_include, c_exclude = brute_force_c(expected)
        assert truth.c_include == pytest.approx(c_include, abs=1e-12)
        assert truth.c_exclude == pytest.approx(c_exclude, abs=1e-12)
        assert truth.c_include >= -1e-12


def test_deterministic_kind_has_zero_c():
    task = ControlledTask("none", **SMALL)
    for clauses in itertools.islice(all_sources(task), 300):
        distribution = task.target_distribution(clauses)
        assert len(distribution) == 1
        truth = source_truth(distribution)
        assert truth.c_include == 0.0 and truth.c_exclude == 0.0 and truth.h_y == 0.0
    rng = np.random.default_rng(3)
    row = split_truth(task, [task.sample_source(rng) for _ in range(200)])
    assert row["c_true_bits_per_token"] == 0.0 and row["c_true_bits_per_sentence"] == 0.0


@pytest.mark.parametrize("k", [2, 3, 4])
def test_registers_without_shared_words_have_the_kmodes_closed_form(k):
    """K equiprobable registers and no shared word: the K modes differ at the M = n - 1 content
    words and agree on 'tand' (a constant position adds nothing), so C = (M - 1) log2 K."""
    task = ControlledTask("phrasing", registers=k, shared_fraction=0.0, n_source_words=20, min_clause=2,
                          max_clause=4)
    rng = np.random.default_rng(k)
    sources = [task.sample_source(rng) for _ in range(300)]
    for clauses in sources[:50]:
        n = len(clauses[0]) + len(clauses[1]) + 1
        differing = n - 1  # every word but the conjunction
        truth = source_truth(task.target_distribution(clauses))
        assert truth.c_include == pytest.approx(kmodes_closed_form_bits(k, differing), abs=1e-12)
        # the same number from the known-C enumeration of K modes at the differing positions
        assert truth.c_include == pytest.approx(
            total_correlation(make_mixture("kmodes", m=differing, k=k)).bits_per_sentence, abs=1e-12)
    row = split_truth(task, sources)
    per_sentence = [(len(a) + len(b)) * math.log2(k) - math.log2(k) for a, b in sources]
    assert row["c_true_bits_per_sentence"] == pytest.approx(np.mean(per_sentence), rel=1e-12)
    tokens = sum(len(a) + len(b) + 1 for a, b in sources)
    assert row["c_true_bits_per_token"] == pytest.approx(sum(per_sentence) / tokens, rel=1e-12)


@pytest.mark.parametrize("q", [0.2, 0.5, 1.0])
def test_insertion_in_a_three_word_sentence(q):
    """'x tand y' gets the particle at gap 1 or 2 with probability q/2 each.  Given the longer
    length the two targets differ at positions 2 and 3: sum_t H = 2, H(Y | T) = 1, so C = q.
    Without length terms C = q - h(q): the NAT no longer pays H(T | X) = h(q)."""
    task = ControlledTask("insertion", n_source_words=5, min_clause=1, max_clause=1, insert_prob=q)
    truth = source_truth(task.target_distribution(((1,), (2,))))
    h_q = -sum(p * math.log2(p) for p in (q, 1 - q) if p > 0)
    assert truth.c_include == pytest.approx(q, abs=1e-12)
    assert truth.h_length == pytest.approx(h_q, abs=1e-12)
    assert truth.c_exclude == pytest.approx(q - h_q, abs=1e-12)
    assert truth.expected_tokens == pytest.approx(3 + q)


def test_prefix_probability_of_the_exclude_convention():
    """Y = 'a' or 'a b' (1/2 each): the AT without </s> scores 'a' with Pprefix = 1 and 'a b' with
    1/2, so its floor is 1/2 bit; every position is certain given the length, so C_exclude = -1/2
    while C with length terms is 0 (H(T) = H(Y) = 1)."""
    truth = source_truth({("a",): 0.5, ("a", "b"): 0.5})
    assert truth.prefix_nll == pytest.approx(0.5)
    assert truth.c_exclude == pytest.approx(-0.5)
    assert truth.c_include == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("r", [0.3, 0.5])
def test_reordering_closed_form(r):
    """m modifier-noun phrases: two targets (probabilities r, 1 - r) that differ at the 2m words of
    the phrases, so C = 2m h(r) - h(r); a source without a phrase has one target and C = 0."""
    task = ControlledTask("reordering", n_source_words=8, swap_prob=r, seed=3)
    modifiers = sorted(task.modifiers)
    nouns = sorted(set(range(8)) - task.modifiers)
    mod, noun = modifiers[0], nouns[0]
    h_r = -(r * math.log2(r) + (1 - r) * math.log2(1 - r))
    cases = {0: ((noun, mod), (noun, noun)),  # 'noun mod' is not a phrase
             1: ((mod, noun), (noun,)),
             2: ((mod, mod, noun, noun), (mod, noun)),  # only the modifier next to the noun moves
             3: ((mod, noun, mod, noun), (mod, noun, mod))}
    for m, clauses in cases.items():
        distribution = task.target_distribution(clauses)
        assert len(distribution) == (2 if m else 1)
        assert source_truth(distribution).c_include == pytest.approx(max(2 * m - 1, 0) * h_r, abs=1e-12)
    swapped = task.realise(cases[2], 0, True, None)
    assert swapped == tuple(f"t{a}v0" for a in (mod, noun, mod, noun)) + ("tand",) + (f"t{noun}v0", f"t{mod}v0")


# -- sampling follows the enumerated distribution -------------------------------------------------

@pytest.mark.parametrize("kind", ["phrasing", "insertion", "reordering", "mixed"])
def test_sampled_targets_follow_the_enumerated_distribution(kind):
    task = ControlledTask(kind, n_source_words=6, registers=3, shared_fraction=0.0, insert_prob=0.4,
                          swap_prob=0.3, seed=1)
    modifier = min(task.modifiers, default=0)
    noun = min(set(range(6)) - task.modifiers)
    clauses = ((modifier, noun, 2), (modifier, noun))
    distribution = task.target_distribution(clauses)
    rng = np.random.default_rng(11)
    n = 20000
    counts = collections.Counter(task.sample_target(clauses, rng) for _ in range(n))
    assert set(counts) <= set(distribution)  # nothing outside the support
    keys = sorted(distribution)
    observed = np.array([counts[y] for y in keys], dtype=float)
    expected = np.array([distribution[y] for y in keys]) * n
    _, p_value = stats.chisquare(observed, expected)
    assert p_value > 1e-4


def test_references_are_independent_samples():
    """An extra reference equals the target with probability sum_y P(y|X)^2 (independent draws),
    not 1 (a copy) nor 0 (forced to differ)."""
    task = ControlledTask("reordering", n_source_words=30, swap_prob=0.5)  # 1.9 targets per source
    rng = np.random.default_rng(5)
    from mple_metrics.data.controlled import make_split

    split, sources = make_split(task, "valid", 2000, 3, rng)
    expected = np.mean([sum(p * p for p in task.target_distribution(c).values()) for c in sources])
    equal = np.mean([ref == refs[0] for refs in split.refs for ref in refs[1:]])
    assert all(len(refs) == 4 for refs in split.refs)
    assert abs(equal - expected) < 0.03


# -- the written dataset --------------------------------------------------------------------------

def parse_source(line: str):
    words = line.split()
    cut = words.index("sand")
    return tuple(int(w[1:]) for w in words[:cut]), tuple(int(w[1:]) for w in words[cut + 1:])


def test_cli_writes_a_dataset_whose_truth_matches_its_files(tmp_path, capsys):
    out = tmp_path / "mixed"
    code = main(["data", "controlled", "--kind", "mixed", "--out", str(out), "--train", "60", "--valid", "40",
                 "--test", "30", "--seed", "4", "--max-clause-words", "4"])
    assert code == 0
    assert "C bits/token" in capsys.readouterr().out
    data = load_dataset(out)
    assert [len(data[s]) for s in ("train", "valid", "test")] == [60, 40, 30]
    assert all(len(r) == 1 for r in data.train.refs)
    assert all(len(r) == 4 for s in ("valid", "test") for r in data[s].refs)
    truth = json.loads((out / "truth.json").read_text())
    task = ControlledTask("mixed", max_clause=4, seed=4)
    assert truth["parameters"]["shared_words"] == [f"s{a}" for a in sorted(task.shared_words)]
    assert truth["parameters"]["modifiers"] == [f"s{a}" for a in sorted(task.modifiers)]
    pair = dataset_tokenizers(out)
    assert pair is not None and pair.tgt.kind == "word"
    for name in ("train", "valid", "test"):
        split = data[name]
        sources = [parse_source(line) for line in split.src]
        # every written target and reference is in the support of the distribution the truth uses
        for clauses, refs in zip(sources, split.refs):
            support = task.target_distribution(clauses)
            assert all(tuple(r.split()) in support for r in refs)
        # one token per word, never <unk>, on both sides
        for text in split.src + [r for refs in split.refs for r in refs]:
            ids = pair.src.encode(text)
            assert len(ids) == len(text.split()) and pair.src.unk_id not in ids
        # the truth recomputed from the files with the independent brute force
        c = [brute_force_c(brute_force_targets(task, s))[0] for s in sources]
        tokens = [sum(p * len(y) for y, p in brute_force_targets(task, s).items()) for s in sources]
        row = truth["splits"][name]
        assert row["c_true_bits_per_sentence"] == pytest.approx(np.mean(c), rel=1e-10)
        assert row["c_true_bits_per_token"] == pytest.approx(sum(c) / sum(tokens), rel=1e-10)
    assert truth["c_true_bits_per_token"] == truth["splits"]["test"]["c_true_bits_per_token"]
    assert truth["c_true_bits_per_sentence"] == truth["splits"]["test"]["c_true_bits_per_sentence"]


def test_same_seed_same_files_and_splits_do_not_depend_on_other_sizes(tmp_path):
    def files(directory):
        return {p.name: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}

    task = ControlledTask("phrasing", seed=7)
    write_controlled(tmp_path / "a", task, n_train=50, n_valid=20, n_test=20)
    write_controlled(tmp_path / "b", task, n_train=50, n_valid=20, n_test=20)
    write_controlled(tmp_path / "c", task, n_train=80, n_valid=20, n_test=20)
    write_controlled(tmp_path / "d", ControlledTask("phrasing", seed=8), n_train=50, n_valid=20, n_test=20)
    a, b, c, d = (files(tmp_path / x) for x in "abcd")
    assert a == b
    assert a["test.tgt"] == c["test.tgt"] and a["valid.ref3"] == c["valid.ref3"]
    assert a["train.src"] != d["train.src"]


def test_unused_option_warns(tmp_path, capsys):
    code = main(["data", "controlled", "--kind", "none", "--out", str(tmp_path / "n"), "--train", "5",
                 "--valid", "2", "--test", "2", "--registers", "3"])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: --registers 3 is not used by --kind none" in err
    assert json.loads((tmp_path / "n" / "truth.json").read_text())["warnings"] == [
        "--registers 3 is not used by --kind none (only by phrasing, mixed)"]


def test_enumeration_limit_is_refused():
    with pytest.raises(ValueError, match="--max-clause-words"):
        ControlledTask("mixed", registers=2000, max_clause=30)
    assert ControlledTask("mixed").combinations(15) <= MAX_TARGETS_PER_SOURCE
