"""The bundled corpus loads with the counts its README promises, >= 3 extra references per valid/test
sentence that are independent of the target and of each other (corpus BLEU <= 45 for every pair,
computed here with sacrebleu and equal to the matrix the README publishes), without markup remnants,
with chapter-disjoint splits."""

from __future__ import annotations

import itertools
import re

import pytest
import sacrebleu

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


def test_valid_and_test_have_at_least_three_extra_references(data):
    for name in ("valid", "test"):
        refs = data[name].refs_per_sentence()
        # Target (WEB) + BBE + Darby + YLT for every sentence, each file full.
        assert min(refs) >= 4, name
        assert all(len(read_lines(bundled_corpus() / f"{name}.ref{k}.gz")) == len(data[name]) for k in (1, 2, 3))
        # Independent translations rarely agree word for word (the README counts these cases).
        assert sum(len(set(r)) == len(r) for r in data[name].refs) > 0.99 * len(refs)
    assert data.train.refs_per_sentence() == [1] * len(data.train)


def _streams(split) -> list[list[str]]:
    n = min(split.refs_per_sentence())
    return [[refs[k] for refs in split.refs] for k in range(n)]


def _readme_matrix(split_name: str) -> list[list[float | None]]:
    """The corpus-BLEU matrix the README publishes for ``split_name``."""
    text = (bundled_corpus() / "README.md").read_text(encoding="utf-8")
    block = text.split(f"\n{split_name} (", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "\\" not in line]
    return [[None if cell.strip() == "-" else float(cell) for cell in row.strip("|").split("|")[1:]]
            for row in rows]


@pytest.mark.parametrize("name", ["valid", "test"])
def test_references_are_independent(data, name):
    streams = _streams(data[name])
    assert len(streams) >= 4
    published = _readme_matrix(name)
    assert len(published) == len(streams)
    for i, j in itertools.permutations(range(len(streams)), 2):
        bleu = sacrebleu.corpus_bleu(streams[i], [streams[j]]).score
        assert bleu <= 45.0, (name, i, j, bleu)
        assert published[i][j] == pytest.approx(bleu, abs=0.051), (name, i, j)


_WORD = re.compile(r"[^\W\d_]+")


def _dice(a: str, b: str) -> float:
    sa, sb = ({w.lower() for w in _WORD.findall(t)} for t in (a, b))
    return 2 * len(sa & sb) / (len(sa) + len(sb))


@pytest.mark.parametrize("name", ["valid", "test"])
def test_references_are_line_aligned_with_the_target(data, name):
    # Each reference shares more words with its own target line than with the lines around it; a
    # reference file shifted by one verse would fail this for nearly every line.
    target = data[name].tgt
    for k, stream in enumerate(_streams(data[name])[1:], start=1):
        own_best = sum(_dice(stream[i], target[i]) > max(_dice(stream[i], target[j]) for j in (i - 1, i + 1)
                                                         if 0 <= j < len(target))
                       for i in range(len(target)))
        assert own_best > 0.97 * len(target), (name, f"ref{k}", own_best)


def test_no_markup_remnants_and_short_sentences(data):
    remnant = re.compile(r"[<>\[\]{}¶\\*]|\s[,;:.?!]|[A-Za-z]\d|\d[A-Za-z]|  ")
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
    assert data.train.tgt[i] == "In the beginning, God created the heavens and the earth."


def test_size_limit():
    size = sum(p.stat().st_size for p in bundled_corpus().iterdir())
    assert size <= 3_000_000
