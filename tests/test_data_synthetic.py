"""Synthetic A/B (Appendix B).

Token level (the paper's): rates measured on the tokens of the whole bundled set, replacements
drawn from the ordinary vocabulary (checked with SentencePiece's own piece types), targets left as
they were, and the NAT's training pairs equal to the constructed tokens exactly.  Word level:
rates on words.  Both: determinism, and B = A plus dropping.
"""

from __future__ import annotations

import pytest
import sentencepiece as spm

from mple_metrics.cli import main
from mple_metrics.data import (Split, dataset_tokenizers, load_bundled, load_dataset, make_synthetic,
                               same_tokenizers)
from mple_metrics.data.synthetic import synthetic_tokenizer
from mple_metrics.estimators.tc_training import TCTrainingSettings, shared_tokenizer
from mple_metrics.train import Trainer
from test_cli_errors import run_main
from test_train import tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return load_bundled()


@pytest.fixture(scope="module")
def token_a(data):
    return make_synthetic(data, "a", seed=7)


@pytest.fixture(scope="module")
def raw_sp(token_a):
    """The target tokenizer's model, read by SentencePiece itself (an independent reader)."""
    return spm.SentencePieceProcessor(model_proto=token_a.tokenizers.tgt.model_proto)


def _pieces(sp: spm.SentencePieceProcessor, line: str) -> list[int]:
    """A written source line read with SentencePiece's own piece table."""
    return [sp.piece_to_id(p) for p in line.split(" ")]


def _is_subsequence(short: list, long: list) -> bool:
    it = iter(long)
    return all(any(w == v for v in it) for w in short)


# ----------------------------------------------------------------------------- token level
def test_token_level_a_replaces_half_of_the_tokens_from_the_ordinary_vocabulary(data, token_a, raw_sp):
    ordinary = {i for i in range(raw_sp.get_piece_size())
                if not (raw_sp.is_control(i) or raw_sp.is_unknown(i) or raw_sp.is_byte(i))}
    replaced = total = 0
    drawn: set[int] = set()
    for name, split in token_a.dataset.items():
        assert split.tgt == data[name].tgt  # the target side is the corpus text, untouched
        for s, t in zip(split.src, split.tgt):
            source, target = _pieces(raw_sp, s), raw_sp.encode(t, out_type=int)
            assert len(source) == len(target)  # positions stay aligned
            changed = [a for a, b in zip(source, target) if a != b]
            replaced += len(changed)
            total += len(target)
            drawn.update(changed)
    assert total > 500_000
    assert abs(replaced / total - 0.5) < 0.005
    # Every replacement is an ordinary piece, and (~33 draws each) every ordinary piece was drawn.
    assert drawn == ordinary
    assert len(ordinary) > 7000


def test_token_level_b_drops_ten_percent_of_a(data, token_a):
    token_b = make_synthetic(data, "b", seed=7, tokenizer=token_a.tokenizers)
    assert same_tokenizers(token_b.tokenizers, token_a.tokenizers)
    kept = before = 0
    for name in data:
        assert token_b.dataset[name].tgt == data[name].tgt
        for a, b in zip(token_a.dataset[name].src, token_b.dataset[name].src):
            a_tokens, b_tokens = a.split(" "), b.split(" ")
            assert b_tokens and _is_subsequence(b_tokens, a_tokens)
            kept += len(b_tokens)
            before += len(a_tokens)
    assert abs(1 - kept / before - 0.1) < 0.005


def test_the_nat_trains_on_exactly_the_constructed_tokens(data, tmp_path):
    small = {name: Split(name, data[name].src[:60], data[name].tgt[:60]) for name in ("train", "valid")}
    synthetic = make_synthetic(small, "a", seed=1, vocab_size=400)
    synthetic.write(tmp_path / "synth")
    sp = spm.SentencePieceProcessor(model_proto=synthetic.tokenizers.tgt.model_proto)
    written = load_dataset(tmp_path / "synth", splits=("train", "valid"))
    assert written.train.src == synthetic.dataset["train"].src

    trainer = Trainer(tiny_config(tmp_path / "synth", tmp_path / "run", model="nat", tokenizer_kind="spm",
                                  vocab_size=8000, max_tokens=4096))
    encoded = trainer.train_batches.encoded
    assert len(encoded) == 60
    assert encoded.src == [_pieces(sp, s) for s in written.train.src]
    assert encoded.tgt == [sp.encode(t, out_type=int) for t in small["train"].tgt]
    assert all(len(s) == len(t) for s, t in zip(encoded.src, encoded.tgt))
    assert trainer.valid_encoded.src == [_pieces(sp, s) for s in written.valid.src]
    # A tokenizer learnt afresh on the written text would not read these tokens: the regression.
    assert same_tokenizers(trainer.tokenizers, dataset_tokenizers(tmp_path / "synth"))

    # `mple estimate tc` keeps the carried tokenizer as its models' shared one.
    settings = TCTrainingSettings(data=str(tmp_path / "synth"), out=str(tmp_path / "tc"), tokenizer_kind="word")
    assert same_tokenizers(shared_tokenizer(settings), synthetic.tokenizers)


def test_training_with_another_tokenizer_is_refused(data, tmp_path, capsys):
    small = {name: Split(name, data[name].src[:30], data[name].tgt[:30]) for name in ("train", "valid")}
    make_synthetic(small, "a", seed=1, vocab_size=400).write(tmp_path / "synth")
    other = make_synthetic(small, "a", seed=1, vocab_size=350)
    other.tokenizers.save(tmp_path / "other")
    code, _, err = run_main(["train", "--model", "nat", "--data", str(tmp_path / "synth"), "--out",
                             str(tmp_path / "run"), "--tokenizer", str(tmp_path / "other"), "--max-steps", "1",
                             "--quiet"], capsys)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--tokenizer" in err[0] and "tokenizer" in err[0] and "written for" in err[0]
    # Fine-tuning keeps its origin's vocabulary, which would misread the pieces too.
    origin = Trainer(tiny_config(tiny_dataset(tmp_path / "tiny"), tmp_path / "origin", model="nat", max_steps=1,
                                 valid_every_steps=0, keep_best=1))
    origin.train()
    with pytest.raises(ValueError, match="--init-from .* differs from the tokenizer .*synth/tokenizer"):
        Trainer(tiny_config(tmp_path / "synth", tmp_path / "tuned", model="nat", max_tokens=4096,
                            init_from=str(tmp_path / "origin")))


def test_estimate_tc_refuses_tokenizer_options_on_data_that_carries_its_tokenizer(data, tmp_path, capsys):
    small = {name: Split(name, data[name].src[:30], data[name].tgt[:30]) for name in ("train", "valid", "test")}
    make_synthetic(small, "a", seed=1, vocab_size=400).write(tmp_path / "synth")
    for option, value in (("--tokenizer-kind", "word"), ("--vocab-size", "500")):
        code, _, err = run_main(["estimate", "tc", "--data", str(tmp_path / "synth"), "--out", str(tmp_path / "tc"),
                                 option, value, "--quiet"], capsys)
        err = err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].count(option) >= 1 and "carries its own tokenizer" in err[0]
        assert not (tmp_path / "tc" / "tc.json").exists()


def test_a_given_tokenizer_is_used_and_specials_are_never_drawn(data):
    small = {"train": Split("train", data.train.src[:200], data.train.tgt[:200])}
    tokenizer = synthetic_tokenizer(small, vocab_size=350)
    synthetic = make_synthetic(small, "a", seed=2, tokenizer=tokenizer, replace_prob=1.0)
    assert synthetic.tokenizers.tgt is tokenizer
    sp = spm.SentencePieceProcessor(model_proto=tokenizer.model_proto)
    for s, t in zip(synthetic.dataset.train.src, small["train"].tgt):
        source, target = _pieces(sp, s), sp.encode(t, out_type=int)
        assert all(a != b for a, b in zip(source, target))  # replace_prob 1: every token changed
        assert not any(sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) for i in source)


def test_cli_defaults_to_token_level_and_word_level_removes_the_tokenizer(data, tmp_path, capsys):
    source = tmp_path / "source"
    from mple_metrics.data import write_dataset
    write_dataset(source, {name: Split(name, data[name].src[:40], data[name].tgt[:40])
                           for name in ("train", "valid", "test")})
    out = tmp_path / "out"
    assert main(["data", "synth", "a", "--from", str(source), "--out", str(out), "--vocab-size", "400"]) == 0
    printed = capsys.readouterr()
    assert "spm tokens" in printed.out and "% replaced" in printed.out and "token level" in printed.err
    carried = dataset_tokenizers(out)
    assert carried is not None and carried.tgt.vocab_size <= 400
    # From a dataset that carries a tokenizer, the synthetic one is built with its target side.
    assert main(["data", "synth", "b", "--from", str(out), "--out", str(tmp_path / "b"), "--vocab-size", "500"]) == 0
    assert same_tokenizers(dataset_tokenizers(tmp_path / "b"), carried)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--vocab-size 500 is not used" in warnings[0]
    assert main(["data", "synth", "a", "--from", str(source), "--out", str(out), "--level", "word"]) == 0
    assert dataset_tokenizers(out) is None  # plain text now: a stale tokenizer would misread it
    assert "words" in capsys.readouterr().out


# ----------------------------------------------------------------------------- word level
@pytest.fixture(scope="module")
def word_a(data):
    return make_synthetic(data, "a", seed=7, level="word")


def test_word_level_a_replaces_half_of_the_words(data, word_a):
    assert word_a.tokenizers is None
    replaced = total = 0
    for name, split in word_a.dataset.items():
        assert split.tgt == data[name].tgt
        for s, t in zip(split.src, split.tgt):
            s_words, t_words = s.split(), t.split()
            assert len(s_words) == len(t_words)
            replaced += sum(a != b for a, b in zip(s_words, t_words))
            total += len(t_words)
    assert total > 400_000
    assert abs(replaced / total - 0.5) < 0.01


def test_word_level_b_drops_ten_percent_of_a(data, word_a):
    word_b = make_synthetic(data, "b", seed=7, level="word")
    kept = before = 0
    for name in data:
        for a, b in zip(word_a.dataset[name].src, word_b.dataset[name].src):
            a_words, b_words = a.split(), b.split()
            assert b_words and _is_subsequence(b_words, a_words)
            kept += len(b_words)
            before += len(a_words)
    assert abs(1 - kept / before - 0.1) < 0.01


@pytest.mark.parametrize("level", ["token", "word"])
def test_seeded_and_deterministic(level):
    small = {"train": Split("train", ["x"] * 50, [f"w{i} w{i+1} w{i+2} end" for i in range(50)])}
    a1 = make_synthetic(small, "b", seed=3, level=level, vocab_size=300)
    a2 = make_synthetic(small, "b", seed=3, level=level, vocab_size=300)
    a3 = make_synthetic(small, "b", seed=4, level=level, vocab_size=300)
    assert a1.dataset["train"] == a2.dataset["train"]
    assert a1.dataset["train"].src != a3.dataset["train"].src


def test_bad_arguments(data):
    with pytest.raises(ValueError, match="kind must be one of"):
        make_synthetic(data, "c")
    with pytest.raises(ValueError, match="--level must be one of"):
        make_synthetic(data, "a", level="char")
    with pytest.raises(ValueError, match="--replace-prob"):
        make_synthetic(data, "a", replace_prob=1.5)
    with pytest.raises(ValueError, match="at least 2 words"):
        make_synthetic({"train": Split("train", ["a"], ["same same"])}, "a", level="word")
