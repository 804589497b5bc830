"""The bundled corpus loads with the counts its README promises and >= 2 references per valid/test
sentence, without markup remnants, with chapter-disjoint splits."""

from __future__ import annotations

import re

import pytest

from mple_metrics.data import bundled_corpus, load_bundled, read_lines


@pytest.fixture(scope="module")
def data():
    return load_bundled()


def _readme_counts() -> dict[str, int]:
    text = (bundled_corpus() / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (train|valid|test) \| ([\d,]+) \|", text, flags=re.MULTILINE)
    return {name: int(count.replace(",", "")) for name, count in rows}


def test_counts_match_readme_and_targets(data):
    promised = _readme_counts()
    assert set(promised) == {"train", "valid", "test"}
    for name, count in promised.items():
        assert len(data[name]) == count
    assert len(data.train) >= 20_000
    assert len(data.valid) >= 1_000 and len(data.test) >= 1_000


def test_valid_and_test_have_at_least_two_references(data):
    for name in ("valid", "test"):
        refs = data[name].refs_per_sentence()
        assert min(refs) >= 2, name
        # Target (KJV) + WEB + ASV for every sentence.  The ASV revises the KJV and often keeps a
        # verse verbatim; the modern WEB rarely agrees with both (the README counts these cases).
        assert min(refs) == 3
        assert sum(len(set(r)) >= 2 for r in data[name].refs) > 0.99 * len(refs)
        assert sum(len(set(r)) == 3 for r in data[name].refs) > 0.8 * len(refs)


def test_no_markup_remnants_and_short_sentences(data):
    remnant = re.compile(r"[<>\[\]{}¶\\]|\s[,;:.?!]|[A-Za-z]\d|\d[A-Za-z]|  ")
    for name, split in data.items():
        for column in [split.src, split.tgt] + [[r for refs in split.extra_refs for r in refs]]:
            bad = [s for s in column if remnant.search(s) or s != s.strip()]
            assert not bad, (name, bad[:3])
        assert max(len(s.split()) for s in split.src) <= 32
        assert max(len(t.split()) for t in split.tgt) <= 32


def test_splits_are_chapter_disjoint_and_deduplicated(data):
    ids = {name: read_lines(bundled_corpus() / f"{name}.ids.gz") for name in data}
    chapters = {name: {i.rsplit(".", 1)[0] for i in v} for name, v in ids.items()}
    for name in data:
        assert len(ids[name]) == len(data[name])
        assert len(set(ids[name])) == len(ids[name])
    assert not chapters["train"] & chapters["valid"]
    assert not chapters["train"] & chapters["test"]
    assert not chapters["valid"] & chapters["test"]
    train_strings = set(data.train.src) | set(data.train.tgt)
    for name in ("valid", "test"):
        assert not train_strings & (set(data[name].src) | set(data[name].tgt))


def test_known_verse_is_aligned(data):
    ids = read_lines(bundled_corpus() / "train.ids.gz")
    i = ids.index("Gen.1.1")
    assert data.train.src[i] == "En el principio crió Dios los cielos y la tierra."
    assert data.train.tgt[i] == "In the beginning God created the heaven and the earth."


def test_size_limit():
    size = sum(p.stat().st_size for p in bundled_corpus().iterdir())
    assert size <= 3_000_000
