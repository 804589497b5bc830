"""Detokenized BLEU (training validation and ``mple evaluate``) is scored against the references
as written in the dataset, never against ``decode(encode(reference))``: with a word tokenizer,
words outside the vocabulary become ``<unk>`` on the hypothesis side only and must not match.
The independent reference is sacrebleu itself on the written hypotheses and reference strings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu

import mple_metrics.decode as decode_module
import mple_metrics.train.validation as validation_module
from mple_metrics.cli import main
from mple_metrics.data import UNK_ID, TokenizerPair, WordTokenizer, load_dataset
from mple_metrics.train import Trainer, bleu_scores
from test_train import tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _word_pair(words: list[str]) -> TokenizerPair:
    tokenizer = WordTokenizer(words)
    return TokenizerPair(tokenizer, tokenizer)


def _sacrebleu(hyps: list[str], refs: list[list[str]]) -> float:
    """sacrebleu's corpus BLEU (13a) with a variable number of references per sentence."""
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    return sacrebleu.corpus_bleu(hyps, streams).score


def _all_unknown(src) -> list[list[int]]:
    """What a NAT that has learnt only ``<unk>`` outputs: one ``<unk>`` per source token."""
    return [[UNK_ID] * len(s) for s in src]


def test_unknown_words_do_not_match_unknown_words():
    pair = _word_pair(["the"])  # every other word is <unk> for this tokenizer
    refs = [["the cat sat on the mat", "a cat was on the mat"], ["dogs bark loudly at night"],
            ["an owl, a bat and a moth."]]
    hyps = [[UNK_ID] * 6, [UNK_ID] * 5, [UNK_ID] * 8]
    result = bleu_scores(hyps, refs, pair)
    hyp_text = [pair.tgt.decode(h) for h in hyps]
    assert hyp_text[1] == "<unk> <unk> <unk> <unk> <unk>"
    assert _sacrebleu(hyp_text, refs) == 0.0
    assert result["bleu"] == 0.0
    assert result["bleu_signature"].startswith("BLEU|nrefs:var|case:mixed|eff:no|tok:13a")


def test_detokenized_bleu_equals_sacrebleu_on_the_written_text(rng):
    known = ["the", "cat", "sat", "on", "mat", "a", "dog"]
    pair = _word_pair(known)
    pool = known + ["owl", "bat", "moth", "tree", "Mat", "cat,", "(the)"]
    for _ in range(5):
        refs = [[" ".join(rng.choice(pool, size=int(rng.integers(1, 12))))
                 for _ in range(int(rng.integers(1, 4)))] for _ in range(int(rng.integers(1, 20)))]
        hyps = [[int(t) for t in rng.integers(UNK_ID, pair.tgt.vocab_size, size=int(rng.integers(0, 12)))]
                for _ in refs]
        result = bleu_scores(hyps, refs, pair)
        hyp_text = [pair.tgt.decode(h) for h in hyps]
        assert result["bleu"] == pytest.approx(_sacrebleu(hyp_text, refs), abs=1e-9)
        # The id-level BLEU scores the ids of the tokenized references.
        ref_ids = [[pair.tgt.encode(r) for r in row] for row in refs]
        written = [" ".join(map(str, h)) for h in hyps]
        ids_refs = [[" ".join(map(str, r)) for r in row] for row in ref_ids]
        expected_ids = sacrebleu.corpus_bleu(
            written, [[r[k] if k < len(r) else None for r in ids_refs] for k in range(3)],
            tokenize="none").score
        assert result["bleu_ids"] == pytest.approx(expected_ids, abs=1e-9)


def test_references_must_be_text():
    pair = _word_pair(["the"])
    with pytest.raises(TypeError, match="references"):
        bleu_scores([[6]], [[[6]]], pair)
    with pytest.raises(ValueError, match="references"):
        bleu_scores([[6], [6]], [["the"]], pair)


@pytest.fixture(scope="module")
def word_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny AT with a one-word vocabulary, validated once (outputs forced to all <unk>)."""
    root = tmp_path_factory.mktemp("unk_run")
    data = tiny_dataset(root / "data")
    patch = pytest.MonkeyPatch()
    patch.setattr(validation_module, "translate_encoded", lambda model, src, *a, **k: _all_unknown(src))
    try:
        Trainer(tiny_config(data, root / "run", vocab_size=1, max_steps=3, valid_every_steps=3)).train()
    finally:
        patch.undo()
    return data, root / "run"


def test_training_validation_scores_against_written_references(word_run):
    data, run = word_run
    logged = [json.loads(line) for line in (run / "valid.jsonl").read_text().splitlines()]
    valid = load_dataset(data).valid
    hyps = [" ".join(["<unk>"] * len(s.split())) for s in valid.src]
    assert logged[-1]["bleu_sentences"] == len(valid)
    assert logged[-1]["bleu"] == pytest.approx(_sacrebleu(hyps, valid.refs), abs=1e-9)
    assert logged[-1]["bleu"] == 0.0


def test_evaluate_scores_against_written_references(word_run, tmp_path, monkeypatch):
    data, run = word_run
    monkeypatch.setattr(decode_module, "translate_encoded", lambda model, src, *a, **k: _all_unknown(src))
    out, hyps_file = tmp_path / "eval.json", tmp_path / "hyps.txt"
    assert main(["evaluate", "--ckpt", str(run / "best.pt"), "--data", str(data), "--split", "test",
                 "--json", str(out), "--hyps", str(hyps_file), "--quiet"]) == 0
    result = json.loads(out.read_text())
    test = load_dataset(data).test
    hyps = hyps_file.read_text().split("\n")[:-1]
    assert hyps and all(set(h.split()) == {"<unk>"} for h in hyps)
    assert result["bleu_signature"].startswith("BLEU|nrefs:2|")
    assert result["bleu"] == pytest.approx(_sacrebleu(hyps, test.refs), abs=1e-9)
    assert result["bleu"] == 0.0
