"""Paired bootstrap over sentences: coverage, pairing, the ratio estimator, determinism, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mple_metrics.estimators import bootstrap as bootstrap_module
from mple_metrics.estimators import paired_bootstrap

REPETITIONS = 400
NOMINAL = 0.95
# Coverage of REPETITIONS independent intervals is Binomial(REPETITIONS, p) / REPETITIONS; accept
# p within 3.5 standard deviations of the nominal rate (a false alarm about 1 in 2,000 seeds; the
# seeds below are fixed, so the test is deterministic).
TOLERANCE = 3.5 * math.sqrt(NOMINAL * (1 - NOMINAL) / REPETITIONS)


def test_mean_interval_covers_truth_at_nominal_rate():
    rng = np.random.default_rng(20220717)
    truth, n = 1.5, 100
    covered = 0
    for repetition in range(REPETITIONS):
        a = truth + rng.normal(0.0, 2.0, n) + rng.normal(0.0, 3.0, n)  # per-sentence values
        interval = paired_bootstrap(a, n_resamples=1000, seed=repetition)
        covered += interval.low <= truth <= interval.high
    assert abs(covered / REPETITIONS - NOMINAL) <= TOLERANCE, covered


def test_per_token_ratio_interval_covers_truth_at_nominal_rate():
    """Paired a, b with a - b = c * tokens + noise: the per-token statistic estimates c."""
    rng = np.random.default_rng(7)
    c, n = 0.75, 120
    covered = 0
    for repetition in range(REPETITIONS):
        tokens = rng.integers(1, 30, n).astype(float)
        b = rng.gamma(2.0, 4.0, n) * tokens
        a = b + c * tokens + rng.normal(0.0, 1.0, n) * np.sqrt(tokens)
        interval = paired_bootstrap(a, b, tokens, n_resamples=1000, seed=repetition)
        covered += interval.low <= c <= interval.high
    assert abs(covered / REPETITIONS - NOMINAL) <= TOLERANCE, covered


def test_pairing_narrows_the_interval_for_correlated_values(rng):
    n = 300
    shared = rng.normal(0.0, 10.0, n)               # sentence difficulty, common to both models
    a = shared + 0.3 + rng.normal(0.0, 1.0, n)
    b = shared + rng.normal(0.0, 1.0, n)
    paired = paired_bootstrap(a, b, seed=1)
    unpaired = paired_bootstrap(a, rng.permutation(b), seed=1)  # same mean difference, no pairing
    assert paired.estimate == pytest.approx(unpaired.estimate, abs=1e-12)
    assert (paired.high - paired.low) * 4 < unpaired.high - unpaired.low


def test_estimate_is_the_ratio_on_the_full_data(rng):
    a, b = rng.normal(size=57), rng.normal(size=57)
    weights = rng.integers(1, 40, 57)
    per_token = paired_bootstrap(a, b, weights, n_resamples=10)
    assert per_token.estimate == pytest.approx(np.sum(a - b) / np.sum(weights), rel=1e-12)
    per_sentence = paired_bootstrap(a, b, n_resamples=10)
    assert per_sentence.estimate == pytest.approx(np.mean(a - b), rel=1e-12)
    assert paired_bootstrap(a - b, n_resamples=10).estimate == pytest.approx(per_sentence.estimate)


def test_standard_error_of_the_mean(rng):
    a = rng.normal(0.0, 2.0, 400)
    interval = paired_bootstrap(a, n_resamples=2000)
    assert interval.standard_error == pytest.approx(a.std() / math.sqrt(a.size), rel=0.1)
    assert interval.low < interval.estimate < interval.high


def test_deterministic_given_the_seed(rng):
    a, b, w = rng.normal(size=80), rng.normal(size=80), rng.integers(1, 9, 80)
    first = paired_bootstrap(a, b, w, seed=3)
    assert paired_bootstrap(a.copy(), b.copy(), w.copy(), seed=3) == first
    other = paired_bootstrap(a, b, w, seed=4)
    assert (other.low, other.high) != (first.low, first.high)
    assert (first.confidence, first.n_resamples, first.seed, first.method) == (0.95, 1000, 3,
                                                                                "percentile")


def test_chunked_draws_match_one_resample_at_a_time(monkeypatch, rng):
    """Forcing one resample per chunk gives what a plain loop over the same stream gives."""
    n, resamples = 23, 50
    values, weights = rng.normal(size=n), rng.integers(1, 5, n).astype(float)
    monkeypatch.setattr(bootstrap_module, "_MAX_CHUNK_ELEMENTS", n)
    stats = bootstrap_module.resampled_ratios(values, weights, resamples, seed=11)
    generator = np.random.Generator(np.random.PCG64(11))
    expected = []
    for _ in range(resamples):
        idx = generator.integers(0, n, size=(1, n))[0]
        expected.append(values[idx].sum() / weights[idx].sum())
    np.testing.assert_allclose(stats, expected, rtol=1e-12)


def test_large_input_is_chunked_and_finishes(rng):
    a = rng.normal(size=20_000)
    interval = paired_bootstrap(a, a * 0.5, n_resamples=300)  # 6e6 indices: two chunks
    assert interval.low < interval.estimate < interval.high


def test_basic_interval_reflects_the_percentile_interval(rng):
    a = rng.exponential(size=60)
    percentile = paired_bootstrap(a, seed=5)
    basic = paired_bootstrap(a, seed=5, method="basic")
    assert basic.method == "basic"
    assert basic.low == pytest.approx(2 * percentile.estimate - percentile.high)
    assert basic.high == pytest.approx(2 * percentile.estimate - percentile.low)


def test_one_sentence_gives_a_degenerate_interval():
    interval = paired_bootstrap([2.5], [1.0], [2], n_resamples=20)
    assert (interval.estimate, interval.low, interval.high) == (0.75, 0.75, 0.75)
    assert interval.standard_error == 0.0


def test_to_dict():
    fields = paired_bootstrap([1.0, 2.0, 4.0], n_resamples=5).to_dict()
    assert set(fields) == {"estimate", "low", "high", "confidence", "n_resamples", "seed", "method",
                           "standard_error"}


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(a=[]), ValueError, "a"),
    (dict(a=[[1.0, 2.0]]), ValueError, "a"),
    (dict(a=["x", "y"]), TypeError, "a"),
    (dict(a=[True, False]), TypeError, "a"),
    (dict(a=[1.0, float("nan")]), ValueError, "a"),
    (dict(a=[1.0, 2.0], b=[1.0]), ValueError, "b"),
    (dict(a=[1.0, 2.0], b=[1.0, float("inf")]), ValueError, "b"),
    (dict(a=[1.0, 2.0], weights=[1.0]), ValueError, "weights"),
    (dict(a=[1.0, 2.0], weights=[1.0, 0.0]), ValueError, "weights"),
    (dict(a=[1.0, 2.0], weights=[1.0, -2.0]), ValueError, "weights"),
    (dict(a=[1.0, 2.0], n_resamples=0), ValueError, "n_resamples"),
    (dict(a=[1.0, 2.0], n_resamples=10.0), TypeError, "n_resamples"),
    (dict(a=[1.0, 2.0], confidence=1.0), ValueError, "confidence"),
    (dict(a=[1.0, 2.0], confidence=0.0), ValueError, "confidence"),
    (dict(a=[1.0, 2.0], confidence="0.95"), TypeError, "confidence"),
    (dict(a=[1.0, 2.0], seed=-1), ValueError, "seed"),
    (dict(a=[1.0, 2.0], seed=1.5), TypeError, "seed"),
    (dict(a=[1.0, 2.0], method="bca"), ValueError, "method"),
])
def test_bad_input_names_the_argument(kwargs, error, name):
    with pytest.raises(error, match=rf"^{name}\b"):
        paired_bootstrap(**kwargs)


# -- the shared minimum of resamples and the small-n rule ------------------------------------------

def test_one_resample_makes_an_interval_that_can_exclude_the_estimate_so_commands_refuse_it():
    """With one resample both ends are that resample's statistic: it misses the estimate whenever
    the draw repeats a sentence, which is why every command asks for MIN_RESAMPLES."""
    a = np.arange(8.0)
    misses = 0
    for seed in range(20):
        interval = paired_bootstrap(a, n_resamples=1, seed=seed)
        misses += not interval.low <= interval.estimate <= interval.high
    assert misses > 0
    for bad in (1, bootstrap_module.MIN_RESAMPLES - 1):
        with pytest.raises(ValueError, match=rf"--resamples must be >= {bootstrap_module.MIN_RESAMPLES}"):
            bootstrap_module.check_resamples(bad, "--resamples")
    with pytest.raises(TypeError, match="--bootstrap"):
        bootstrap_module.check_resamples(100.0, "--bootstrap")
    assert bootstrap_module.check_resamples(bootstrap_module.MIN_RESAMPLES) == bootstrap_module.MIN_RESAMPLES


def test_few_sentences_undercover_which_the_warning_says():
    """At n = 3 the percentile interval covers the mean far less often than 95% (it has few distinct
    resamples and is too narrow); at n = 1 it has width 0.  The warning says so below
    MIN_RELIABLE_UNITS, and that no interval exists at n = 1; none at n >= MIN_RELIABLE_UNITS."""
    rng = np.random.default_rng(3)
    covered = 0
    for repetition in range(REPETITIONS):
        interval = paired_bootstrap(rng.normal(0.0, 1.0, 3), n_resamples=200, seed=repetition)
        covered += interval.low <= 0.0 <= interval.high
    assert covered / REPETITIONS < NOMINAL - 3 * TOLERANCE, covered
    degenerate = paired_bootstrap([1.5], n_resamples=200)
    assert degenerate.low == degenerate.high
    assert not bootstrap_module.has_interval(1) and bootstrap_module.has_interval(2)
    one = bootstrap_module.interval_warning(1)
    assert "only 1 sentences" in one and "no interval" in one and "null" in one
    three = bootstrap_module.interval_warning(3, "methods")
    assert "only 3 methods" in three and "unreliable" in three
    assert bootstrap_module.interval_warning(bootstrap_module.MIN_RELIABLE_UNITS - 1) is not None
    assert bootstrap_module.interval_warning(bootstrap_module.MIN_RELIABLE_UNITS) is None
