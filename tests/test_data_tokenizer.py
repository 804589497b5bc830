"""Tokenizers: lossless round trip, special ids, save/load, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mple_metrics.data import (BLANK_ID, BOS_ID, EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID,
                               SentencePieceTokenizer, TokenizerPair, WordTokenizer, load_bundled,
                               load_tokenizer, normalise, train_tokenizer)

TRICKY = ["  leading and   inner\tspaces  ", "naïve café — ¿qué? ¡sí!", "日本語のテキスト ☃ 🙂",
          "<mask> and <blank> and <unk> literally", "digits 12345 and 3.14", "x", "",
          "ﬁ ligature, Ÿ, ǅ, combining e\u0301"]


@pytest.fixture(scope="module")
def data():
    return load_bundled()


@pytest.fixture(scope="module")
def spm_pair(data):
    return TokenizerPair.train(data.train.src, data.train.tgt, kind="spm", vocab_size=4000)


def test_special_ids_are_fixed(spm_pair):
    tok = spm_pair.src
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id, tok.mask_id, tok.blank_id) == (0, 1, 2, 3, 4, 5)
    assert [tok.id_to_token(i) for i in range(6)] == list(SPECIAL_TOKENS)
    word = WordTokenizer.train(["a b c"])
    assert [word.id_to_token(i) for i in range(6)] == list(SPECIAL_TOKENS)


def test_spm_round_trip_on_corpus_and_odd_text(data, spm_pair):
    tok = spm_pair.src
    sentences = data.valid.src + data.valid.tgt + data.test.extra_refs[0] + TRICKY
    for s in sentences:
        ids = tok.encode(s)
        assert all(i not in (PAD_ID, BOS_ID, EOS_ID, MASK_ID, BLANK_ID) for i in ids)
        assert tok.decode(ids) == normalise(s), s
    # Specials are dropped on decode; bos/eos only when asked for.
    ids = tok.encode("hello world", add_bos=True, add_eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID
    assert tok.decode([PAD_ID, MASK_ID] + ids + [BLANK_ID, PAD_ID]) == "hello world"
    assert tok.decode(torch.tensor(ids)) == "hello world"
    assert tok.decode([np.int64(i) for i in ids]) == "hello world"


def test_spm_subwords_are_shorter_than_characters(data, spm_pair):
    tok = spm_pair.tgt
    n_tokens = sum(len(tok.encode(t)) for t in data.valid.tgt)
    n_words = sum(len(t.split()) for t in data.valid.tgt)
    n_chars = sum(len(t) for t in data.valid.tgt)
    assert n_words <= n_tokens < 0.5 * n_chars
    assert tok.vocab_size <= 4000


def test_save_load_gives_same_ids(tmp_path, data, spm_pair):
    spm_pair.save(tmp_path / "joint_pair")
    loaded = TokenizerPair.load(tmp_path / "joint_pair")
    assert loaded.joint
    for s in data.valid.src[:200] + TRICKY:
        assert loaded.src.encode(s) == spm_pair.src.encode(s)
    separate = TokenizerPair.train(data.valid.src, data.valid.tgt, kind="word", joint=False)
    separate.save(tmp_path / "sep")
    back = TokenizerPair.load(tmp_path / "sep")
    assert not back.joint and back.tgt.vocab_size == separate.tgt.vocab_size
    assert back.src.encode(data.valid.src[0]) == separate.src.encode(data.valid.src[0])


def test_spm_training_is_deterministic(data):
    texts = data.valid.tgt
    a = SentencePieceTokenizer.train(texts, vocab_size=1000)
    b = SentencePieceTokenizer.train(texts, vocab_size=1000)
    assert a.model_proto == b.model_proto
    assert [a.encode(t) for t in texts[:50]] == [b.encode(t) for t in texts[:50]]


def test_word_tokenizer_round_trip_and_unk(tmp_path):
    tok = WordTokenizer.train(["t1_0 t2_1 s3", "t1_0 s4"], max_size=None)
    assert tok.vocab_size == 6 + 4
    assert tok.encode("t1_0 t1_0") == [6, 6]  # most frequent word first
    text = " t2_1  s3 s4 "
    assert tok.decode(tok.encode(text)) == normalise(text)
    assert tok.encode("unseen t1_0") == [UNK_ID, 6]
    assert tok.decode(tok.encode("unseen")) == "<unk>"
    tok.save(tmp_path / "w")
    assert load_tokenizer(tmp_path / "w").encode(text) == tok.encode(text)
    assert WordTokenizer.train(["a a b c"], max_size=1).vocab_size == 7


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size must be >= 300"):
        SentencePieceTokenizer.train(["a b"], vocab_size=100)
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        train_tokenizer("chars", ["a"])
    with pytest.raises(ValueError, match="no text"):
        SentencePieceTokenizer.train(["", "  "], vocab_size=500)
    tok = WordTokenizer.train(["a b"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(TypeError, match="must be a str"):
        tok.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="whitespace"):
        WordTokenizer(["two words"])
