"""Synthetic A/B (Appendix B): corruption rates on the whole bundled set, determinism."""

from __future__ import annotations

import pytest

from mple_metrics.data import Split, load_bundled, make_synthetic


@pytest.fixture(scope="module")
def data():
    return load_bundled()


@pytest.fixture(scope="module")
def synthetic_a(data):
    return make_synthetic(data, "a", seed=7)


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(w == v for v in it) for w in short)


def test_a_replaces_half_of_the_words(data, synthetic_a):
    replaced = total = 0
    for name, split in synthetic_a.items():
        assert split.tgt == data[name].tgt
        for s, t in zip(split.src, split.tgt):
            s_words, t_words = s.split(), t.split()
            assert len(s_words) == len(t_words)
            replaced += sum(a != b for a, b in zip(s_words, t_words))
            total += len(t_words)
    assert total > 400_000
    assert abs(replaced / total - 0.5) < 0.01


def test_b_drops_ten_percent_of_a(data, synthetic_a):
    synthetic_b = make_synthetic(data, "b", seed=7)
    kept = before = 0
    for name in data:
        for a, b in zip(synthetic_a[name].src, synthetic_b[name].src):
            a_words, b_words = a.split(), b.split()
            assert b_words and _is_subsequence(b_words, a_words)
            kept += len(b_words)
            before += len(a_words)
    assert abs(1 - kept / before - 0.1) < 0.01


def test_seeded_and_deterministic():
    small = {"train": Split("train", ["x"] * 50, [f"w{i} w{i+1} w{i+2} end" for i in range(50)])}
    a1 = make_synthetic(small, "b", seed=3)
    a2 = make_synthetic(small, "b", seed=3)
    a3 = make_synthetic(small, "b", seed=4)
    assert a1["train"] == a2["train"]
    assert a1["train"].src != a3["train"].src


def test_bad_arguments(data):
    with pytest.raises(ValueError, match="kind must be one of"):
        make_synthetic(data, "c")
    with pytest.raises(ValueError, match="replace_prob"):
        make_synthetic(data, "a", replace_prob=1.5)
    with pytest.raises(ValueError, match="at least 2 words"):
        make_synthetic({"train": Split("train", ["a"], ["same same"])}, "a")
