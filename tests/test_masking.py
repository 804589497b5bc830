"""Masking tools for CMLM/GLAT proxy inputs: exact subset probabilities, sampling, edit distances."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from mple_metrics.proxies.masking import (fixed_size_subset_log_prob, hamming_distance, levenshtein_distance,
                                          log_binomial, log_elementary_symmetric, sample_fixed_size_subsets)


def _all_subsets(length: int, size: int, width: int) -> torch.Tensor:
    """(C(length, size), width) bool: every subset of positions < length with that size."""
    combos = list(itertools.combinations(range(length), size))
    out = torch.zeros(len(combos), width, dtype=torch.bool)
    for r, combo in enumerate(combos):
        out[r, list(combo)] = True
    return out


def _brute_prob(weights: list[float], subset: tuple[int, ...]) -> float:
    total = sum(math.prod(weights[i] for i in s) for s in itertools.combinations(range(len(weights)), len(subset)))
    return math.prod(weights[i] for i in subset) / total


# --------------------------------------------------------------------------------------------------
# exact probabilities


@pytest.mark.parametrize("uniform", [False, True], ids=["random", "uniform"])
def test_log_probs_sum_to_one_over_all_subsets(uniform):
    gen = torch.Generator().manual_seed(0)
    width = 8
    for length in range(0, 7):
        for size in range(0, length + 1):
            subsets = _all_subsets(length, size, width)
            n = subsets.shape[0]
            row = torch.full((width,), 0.7) if uniform else torch.rand(width, generator=gen) + 0.05
            weights = row.expand(n, -1).clone()
            weights[:, length:] = float("nan")  # padding is ignored
            lengths = torch.full((n,), length)
            log_p = fixed_size_subset_log_prob(weights, subsets, lengths)
            assert log_p.dtype == torch.float64 and log_p.shape == (n,)
            assert torch.isfinite(log_p).all()
            assert math.isclose(float(log_p.exp().sum()), 1.0, rel_tol=1e-12), (length, size)
            expected = -log_binomial(length, size)
            if uniform:
                torch.testing.assert_close(log_p, expected.expand(n), rtol=0, atol=1e-12)
            w = row[:length].tolist()
            brute = torch.tensor([math.log(_brute_prob(w, tuple(s.nonzero().flatten().tolist())))
                                  for s in subsets], dtype=torch.float64)
            torch.testing.assert_close(log_p, brute, rtol=0, atol=1e-10)


def test_log_elementary_symmetric_matches_brute_force_with_ragged_lengths():
    gen = torch.Generator().manual_seed(1)
    weights = torch.rand(5, 6, generator=gen, dtype=torch.float64)
    weights[2, 1] = 0.0
    lengths = torch.tensor([6, 0, 4, 1, 3])
    table = log_elementary_symmetric(weights, lengths, 6)
    assert table.shape == (5, 7)
    for b in range(5):
        w = weights[b, :int(lengths[b])].tolist()
        for j in range(7):
            e = sum(math.prod(c) for c in itertools.combinations(w, j)) if j <= len(w) else 0.0
            got = float(table[b, j])
            if e == 0.0:
                assert got == float("-inf")
            else:
                assert math.isclose(got, math.log(e), rel_tol=0, abs_tol=1e-12)


def test_zero_weights_give_zero_probability_and_are_never_sampled():
    weights = torch.tensor([[1.0, 0.0, 2.0, 3.0]])
    lengths = torch.tensor([4])
    with_zero = torch.tensor([[True, True, False, False]])
    without = torch.tensor([[True, False, True, False]])
    assert fixed_size_subset_log_prob(weights, with_zero, lengths)[0] == float("-inf")
    # three positive weights: e_2 = 1*2 + 1*3 + 2*3 = 11
    assert math.isclose(float(fixed_size_subset_log_prob(weights, without, lengths)[0]), math.log(2 / 11))
    # size 4 needs the zero weight: log P = -inf, not NaN (e_4 = 0 as well)
    full = torch.ones(1, 4, dtype=torch.bool)
    assert fixed_size_subset_log_prob(weights, full, lengths)[0] == float("-inf")
    gen = torch.Generator().manual_seed(2)
    draws = sample_fixed_size_subsets(weights.expand(2000, -1), torch.full((2000,), 3), lengths.expand(2000),
                                      generator=gen)
    assert not draws[:, 1].any() and (draws.sum(1) == 3).all()
    with pytest.raises(ValueError, match="sizes"):
        sample_fixed_size_subsets(weights, torch.tensor([4]), lengths)


def test_log_binomial():
    n = torch.arange(0, 30)
    for k in range(-1, 32):
        got = log_binomial(n, k)
        assert got.dtype == torch.float64
        for nn in range(30):
            expected = math.log(math.comb(nn, k)) if 0 <= k <= nn else float("-inf")
            assert got[nn] == expected or math.isclose(float(got[nn]), expected, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(float(log_binomial(1024, 512)), math.lgamma(1025) - 2 * math.lgamma(513), rel_tol=1e-12)
    with pytest.raises(ValueError, match="n"):
        log_binomial(-1, 0)
    with pytest.raises(ValueError, match="k"):
        log_binomial(3, torch.tensor(1.0))


# --------------------------------------------------------------------------------------------------
# sampling


def _chi_square(counts: dict, probs: dict, n: int) -> float:
    return sum((counts.get(s, 0) - n * p) ** 2 / (n * p) for s, p in probs.items())


@pytest.mark.parametrize("weights_row", [[0.1, 0.5, 1.0, 2.0, 3.0], [1.0] * 5], ids=["weighted", "uniform"])
def test_sampling_frequencies_match_exact_probabilities(weights_row):
    n, length, size = 20_000, 5, 2
    # Padded to width 7 with garbage beyond the length, which must never be chosen.
    weights = torch.tensor(weights_row + [5.0, float("nan")]).expand(n, -1)
    lengths = torch.full((n,), length)
    gen = torch.Generator().manual_seed(1234)
    draws = sample_fixed_size_subsets(weights, torch.full((n,), size), lengths, generator=gen)
    assert draws.shape == (n, 7) and draws.dtype == torch.bool
    assert (draws.sum(1) == size).all() and not draws[:, length:].any()
    counts: dict[tuple[int, ...], int] = {}
    for row in draws.tolist():
        key = tuple(i for i, v in enumerate(row) if v)
        counts[key] = counts.get(key, 0) + 1
    subsets = _all_subsets(length, size, 7)
    exact = fixed_size_subset_log_prob(weights[:subsets.shape[0]], subsets, lengths[:subsets.shape[0]]).exp()
    probs = {tuple(s.nonzero().flatten().tolist()): float(p) for s, p in zip(subsets, exact)}
    assert set(counts) <= set(probs)
    # 9 degrees of freedom: P(chi2 > 45) < 1e-5; the seed is fixed, so this is deterministic anyway.
    assert _chi_square(counts, probs, n) < 45.0


def test_sampling_with_ragged_rows_and_inclusion_frequencies():
    """Mixed lengths and sizes in one batch: each row's inclusion frequencies match the exact ones."""
    reps = 4000
    rows = [([0.2, 1.0, 3.0, 0.5], 4, 2), ([2.0, 1.0, 1.0, 9.9], 3, 1), ([1.0, 4.0, 0.3, 0.7], 4, 3)]
    weights = torch.tensor([w for w, _, _ in rows]).repeat_interleave(reps, 0)
    lengths = torch.tensor([length for _, length, _ in rows]).repeat_interleave(reps)
    sizes = torch.tensor([k for _, _, k in rows]).repeat_interleave(reps)
    draws = sample_fixed_size_subsets(weights, sizes, lengths, generator=torch.Generator().manual_seed(7))
    assert torch.equal(draws.sum(1), sizes)
    for r, (w, length, k) in enumerate(rows):
        freq = draws[r * reps:(r + 1) * reps].double().mean(0)
        for i in range(4):
            exact = sum(_brute_prob(w[:length], s) for s in itertools.combinations(range(length), k) if i in s)
            # binomial standard error is at most 0.008 here; 0.04 is 5 of them
            assert abs(float(freq[i]) - exact) < 0.04, (r, i, float(freq[i]), exact)


def test_sizes_zero_and_full_length():
    weights = torch.rand(3, 6, generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([6, 4, 0])
    none = sample_fixed_size_subsets(weights, torch.zeros(3, dtype=torch.long), lengths)
    assert not none.any()
    full = sample_fixed_size_subsets(weights, lengths, lengths)
    assert torch.equal(full, torch.arange(6) < lengths[:, None])
    zeros = torch.zeros(3, dtype=torch.float64)  # P = 1 in both cases, up to float64 rounding
    torch.testing.assert_close(fixed_size_subset_log_prob(weights, full, lengths), zeros, rtol=0, atol=1e-12)
    assert torch.equal(fixed_size_subset_log_prob(weights, none, lengths), zeros)
    # the empty batch
    empty = sample_fixed_size_subsets(torch.ones(0, 4), torch.zeros(0, dtype=torch.long),
                                      torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0, 4)


def test_extreme_weights_are_stable_at_length_1024():
    length = 1024
    weights = torch.ones(1, length, dtype=torch.float32)
    weights[0, ::2] = 1e-30  # 512 tiny, 512 unit weights
    lengths = torch.tensor([length])
    big = (torch.arange(length) % 2 == 1)[None]
    draw = sample_fixed_size_subsets(weights, torch.tensor([512]), lengths, generator=torch.Generator().manual_seed(5))
    assert torch.equal(draw, big)  # any tiny weight has probability ~ 512^2 * 1e-30
    log_p = fixed_size_subset_log_prob(weights, big, lengths)
    assert torch.isfinite(log_p).all() and abs(float(log_p[0])) < 1e-20
    swapped = big.clone()
    swapped[0, 1], swapped[0, 0] = False, True
    log_q = float(fixed_size_subset_log_prob(weights, swapped, lengths)[0])
    assert math.isclose(log_q, math.log(float(torch.tensor(1e-30, dtype=torch.float32))), rel_tol=1e-9)
    # Uniform weights at L = 1024: -log C(1024, k) for a size where C overflows float64.
    uniform = torch.full((1, length), 1e-30, dtype=torch.float64)
    half = torch.arange(length)[None] < 512
    torch.testing.assert_close(fixed_size_subset_log_prob(uniform, half, lengths),
                               -log_binomial(1024, 512).reshape(1), rtol=1e-12, atol=0)
    draw = sample_fixed_size_subsets(uniform, torch.tensor([300]), lengths)
    assert int(draw.sum()) == 300
    # weights spanning 1e-30..1 in one row
    spread = torch.logspace(-30, 0, length, dtype=torch.float64)[None]
    table = log_elementary_symmetric(spread, lengths, length)
    assert torch.isfinite(table).all()
    assert math.isclose(float(table[0, -1]), float(spread.log().sum()), rel_tol=1e-12)


def test_sampling_is_reproducible_with_a_seeded_generator():
    weights = torch.rand(64, 20, generator=torch.Generator().manual_seed(0)) + 0.01
    lengths = torch.randint(0, 21, (64,), generator=torch.Generator().manual_seed(1))
    sizes = (lengths.double() * 0.4).long()
    first = sample_fixed_size_subsets(weights, sizes, lengths, generator=torch.Generator().manual_seed(42))
    second = sample_fixed_size_subsets(weights, sizes, lengths, generator=torch.Generator().manual_seed(42))
    other = sample_fixed_size_subsets(weights, sizes, lengths, generator=torch.Generator().manual_seed(43))
    assert torch.equal(first, second) and not torch.equal(first, other)
    # The generator advances by the same B*L draws whatever the sizes.
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    sample_fixed_size_subsets(weights, sizes, lengths, generator=g1)
    sample_fixed_size_subsets(weights, torch.zeros_like(sizes), lengths, generator=g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_bad_arguments_name_the_argument():
    w = torch.ones(2, 4)
    lengths = torch.tensor([4, 3])
    sizes = torch.tensor([1, 1])
    subset = torch.zeros(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="weights"):
        sample_fixed_size_subsets(torch.ones(4), sizes, lengths)
    with pytest.raises(ValueError, match="weights"):
        sample_fixed_size_subsets(torch.ones(2, 4, dtype=torch.long), sizes, lengths)
    with pytest.raises(ValueError, match="lengths"):
        sample_fixed_size_subsets(w, sizes, torch.tensor([4, 3, 2]))
    with pytest.raises(ValueError, match="lengths"):
        sample_fixed_size_subsets(w, sizes, torch.tensor([5, 3]))
    with pytest.raises(ValueError, match="sizes"):
        sample_fixed_size_subsets(w, torch.tensor([1]), lengths)
    with pytest.raises(ValueError, match="sizes"):
        sample_fixed_size_subsets(w, torch.tensor([1, 4]), lengths)
    with pytest.raises(ValueError, match="sizes"):
        sample_fixed_size_subsets(w, torch.tensor([-1, 0]), lengths)
    for bad in (-0.5, float("nan"), float("inf")):
        w_bad = w.clone()
        w_bad[1, 2] = bad
        with pytest.raises(ValueError, match=r"weights\[1, 2\]"):
            sample_fixed_size_subsets(w_bad, sizes, lengths)
        with pytest.raises(ValueError, match="weights"):
            fixed_size_subset_log_prob(w_bad, subset, lengths)
    w_pad = w.clone()
    w_pad[1, 3] = -1.0  # beyond lengths[1] = 3: ignored
    sample_fixed_size_subsets(w_pad, sizes, lengths)
    with pytest.raises(ValueError, match="generator"):
        sample_fixed_size_subsets(w, sizes, lengths, generator="seed")
    with pytest.raises(ValueError, match="subset"):
        fixed_size_subset_log_prob(w, torch.zeros(2, 5, dtype=torch.bool), lengths)
    with pytest.raises(ValueError, match="subset"):
        fixed_size_subset_log_prob(w, torch.zeros(2, 4), lengths)
    beyond = subset.clone()
    beyond[1, 3] = True
    with pytest.raises(ValueError, match="subset"):
        fixed_size_subset_log_prob(w, beyond, lengths)
    with pytest.raises(ValueError, match="max_degree"):
        log_elementary_symmetric(w, lengths, -1)


# --------------------------------------------------------------------------------------------------
# distances


def _reference_levenshtein(x: list[int], y: list[int]) -> int:
    prev = list(range(len(y) + 1))
    for i, xi in enumerate(x, 1):
        cur = [i]
        for j, yj in enumerate(y, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (xi != yj)))
        prev = cur
    return prev[-1]


def _pad(seqs: list[list[int]], width: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    out = torch.tensor([[rng.randrange(100, 200) for _ in range(width)] for _ in seqs], dtype=torch.int64)
    for r, s in enumerate(seqs):
        out[r, :len(s)] = torch.tensor(s, dtype=torch.int64)
    return out.reshape(len(seqs), width), torch.tensor([len(s) for s in seqs])


def test_levenshtein_known_cases():
    ids = lambda s: [ord(c) for c in s]  # noqa: E731
    pairs = [("kitten", "sitting", 3), ("", "", 0), ("", "abc", 3), ("abc", "", 3), ("flaw", "lawn", 2),
             ("abc", "abc", 0), ("intention", "execution", 5), ("a", "b", 1)]
    got = levenshtein_distance([ids(x) for x, _, _ in pairs], [ids(y) for _, y, _ in pairs])
    assert got.dtype == torch.int64
    assert got.tolist() == [d for _, _, d in pairs]


def test_levenshtein_matches_reference_on_random_pairs():
    rng = random.Random(0)
    seqs_a = [[rng.randrange(4) for _ in range(rng.randrange(0, 13))] for _ in range(300)]
    seqs_b = [[rng.randrange(4) for _ in range(rng.randrange(0, 13))] for _ in range(300)]
    expected = [_reference_levenshtein(x, y) for x, y in zip(seqs_a, seqs_b)]
    assert levenshtein_distance(seqs_a, seqs_b).tolist() == expected
    a, a_len = _pad(seqs_a, 15, rng)
    b, b_len = _pad(seqs_b, 13, rng)
    assert levenshtein_distance(a, b, a_lengths=a_len, b_lengths=b_len).tolist() == expected
    assert levenshtein_distance(a[:, ::1].t().contiguous().t(), seqs_b, a_lengths=a_len).tolist() == expected
    full_a = [row.tolist() for row in a]
    assert levenshtein_distance(a, seqs_b).tolist() == [_reference_levenshtein(x, y)
                                                        for x, y in zip(full_a, seqs_b)]
    assert levenshtein_distance([], []).shape == (0,)


def test_levenshtein_bad_arguments():
    with pytest.raises(ValueError, match="batch size"):
        levenshtein_distance([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="a_lengths"):
        levenshtein_distance(torch.ones(2, 3, dtype=torch.long), [[1], [2]], a_lengths=torch.tensor([4, 1]))
    with pytest.raises(ValueError, match="b_lengths"):
        levenshtein_distance([[1]], [[1]], b_lengths=torch.tensor([1]))
    with pytest.raises(ValueError, match=r"a\[0\]"):
        levenshtein_distance([[1.5]], [[1]])
    with pytest.raises(ValueError, match="b"):
        levenshtein_distance([[1]], torch.ones(1, 2))


def test_hamming_against_direct_count():
    gen = torch.Generator().manual_seed(11)
    a = torch.randint(0, 3, (50, 9), generator=gen)
    b = torch.randint(0, 3, (50, 9), generator=gen)
    lengths = torch.randint(0, 10, (50,), generator=gen)
    got = hamming_distance(a, b, lengths)
    expected = [sum(int(a[r, i] != b[r, i]) for i in range(int(lengths[r]))) for r in range(50)]
    assert got.dtype == torch.int64 and got.tolist() == expected
    with pytest.raises(ValueError, match="same shape"):
        hamming_distance(a, b[:, :5], lengths)
    with pytest.raises(ValueError, match="lengths"):
        hamming_distance(a, b, torch.full((50,), 10))
