"""Tokenizers: subword (SentencePiece BPE) and whitespace ``word``, with fixed special ids.

Why SentencePiece: it is lossless by construction -- whitespace is a symbol ("▁") and, with byte
fallback, any character unseen in training is spelled as UTF-8 bytes -- so
``decode(encode(s)) == normalise(s)`` holds for every string, which BLEU on detokenized text and
the known-C datasets rely on.  It trains a BPE model on the 20k-sentence bundled training split in
about a second with one thread (deterministic), serialises to one small file, and is a single
compiled wheel with no other dependencies.  (Hugging Face ``tokenizers`` would do too, but needs a
pre-tokenizer/decoder pair configured to be reversible and brings a larger dependency.)

Every tokenizer shares the special ids below, so models, kernels (AXE's blank) and batching agree:

=====  ===  ==========================================================
name   id   use
=====  ===  ==========================================================
pad    0    padding in batches
bos    1    beginning of sentence (AT decoder input)
eos    2    end of sentence
unk    3    unknown word (``word`` tokenizer only; BPE uses byte fallback)
mask   4    masked input position (CMLM, GLAT)
blank  5    ε, the empty prediction of AXE
=====  ===  ==========================================================

``encode`` never produces pad/bos/eos/mask/blank unless asked for bos/eos; ``decode`` drops them.
Normalisation (applied by ``encode``, and what round-trips): whitespace runs become one space,
leading/trailing whitespace is removed (``" ".join(s.split())``).

Tokenizers are saved as a directory (``tokenizer.json`` plus ``spm.model`` or ``vocab.txt``) beside
every model that uses them; :func:`load_tokenizer` reads one back.
"""

from __future__ import annotations

import collections
import json
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from ..atomic_write import atomic_write_bytes, atomic_write_text

PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID, BLANK_ID = 0, 1, 2, 3, 4, 5
#: Surface forms of the special tokens, in id order.
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>", "<mask>", "<blank>")
NUM_SPECIAL = len(SPECIAL_TOKENS)

_CONFIG_FILE = "tokenizer.json"


def normalise(text: str) -> str:
    """The normalisation every tokenizer applies before encoding: collapse whitespace."""
    return " ".join(text.split())


class Tokenizer:
    """Common interface.  ids are Python ints in ``[0, vocab_size)``; the special ids are the module
    constants (``tokenizer.pad_id == PAD_ID`` etc.).  Deterministic: no randomness at encode time."""

    kind: ClassVar[str] = ""
    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID
    mask_id = MASK_ID
    blank_id = BLANK_ID
    special_ids: ClassVar[frozenset[int]] = frozenset(range(NUM_SPECIAL))

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def _encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def _decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def id_to_token(self, token_id: int) -> str:
        raise NotImplementedError

    def token_to_id(self, token: str) -> int:
        raise NotImplementedError

    def _save_files(self, directory: Path) -> dict:
        raise NotImplementedError

    normalise = staticmethod(normalise)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of ``normalise(text)``, optionally with bos/eos around them."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids = self._encode(normalise(text))
        if add_bos:
            ids = [BOS_ID] + ids
        if add_eos:
            ids = ids + [EOS_ID]
        return ids

    def encode_batch(self, texts: Iterable[str], add_bos: bool = False,
                     add_eos: bool = False) -> list[list[int]]:
        return [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special ids (pad, bos, eos, mask, blank) are dropped, unk kept as
        ``<unk>`` by the word tokenizer.  Accepts a list of ints or a 1-D integer tensor."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not isinstance(i, numbers.Integral) or isinstance(i, bool):
                raise TypeError(f"ids must be integers, got {type(i).__name__}")
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            if i == UNK_ID or i not in self.special_ids:
                out.append(i)
        return self._decode(out)

    def tokens(self, text: str) -> list[str]:
        """The token strings of ``encode(text)`` (for inspection)."""
        return [self.id_to_token(i) for i in self.encode(text)]

    def save(self, directory: str | os.PathLike) -> Path:
        """Write this tokenizer into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"kind": self.kind, "special_tokens": list(SPECIAL_TOKENS),
                  "vocab_size": self.vocab_size, **self._save_files(directory)}
        atomic_write_text(directory / _CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return directory

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class WordTokenizer(Tokenizer):
    """Whitespace tokens, no subwords: one id per word of the vocabulary, ``unk`` otherwise.

    Round-trips exactly for text whose words are all in the vocabulary (the known-C datasets,
    where C depends on what a token is).
    """

    kind = "word"

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        for w in words:
            if not w or any(c.isspace() for c in w):
                raise ValueError(f"vocabulary word {w!r} is empty or contains whitespace")
        duplicates = [w for w, n in collections.Counter(words).items() if n > 1]
        if duplicates:
            raise ValueError(f"vocabulary has duplicate words: {duplicates[:5]}")
        self._id_to_word = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
        self._word_to_id = {w: i for i, w in enumerate(self._id_to_word)}

    @classmethod
    def train(cls, texts: Iterable[str], max_size: int | None = None,
              min_count: int = 1) -> WordTokenizer:
        """Vocabulary of the words of ``texts`` seen at least ``min_count`` times, most frequent
        first (ties by first appearance), at most ``max_size`` words besides the specials."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(text.split())
        words = [w for w, n in counts.most_common() if n >= min_count and w not in SPECIAL_TOKENS]
        return cls(words[:max_size] if max_size is not None else words)

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_word)

    def _encode(self, text: str) -> list[int]:
        return [self._word_to_id.get(w, UNK_ID) for w in text.split()]

    def _decode(self, ids: list[int]) -> str:
        return " ".join(self._id_to_word[i] for i in ids)

    def id_to_token(self, token_id: int) -> str:
        return self._id_to_word[token_id]

    def token_to_id(self, token: str) -> int:
        return self._word_to_id.get(token, UNK_ID)

    def _save_files(self, directory: Path) -> dict:
        atomic_write_text(directory / "vocab.txt", "".join(w + "\n" for w in self._id_to_word[NUM_SPECIAL:]))
        return {"vocab_file": "vocab.txt"}

    @classmethod
    def _load(cls, directory: Path, config: dict) -> WordTokenizer:
        text = (directory / config["vocab_file"]).read_text(encoding="utf-8")
        return cls([w for w in text.split("\n") if w])


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece subword model (BPE by default) with byte fallback: lossless on any text."""

    kind = "spm"

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        for token_id, token in enumerate(SPECIAL_TOKENS):
            if self._sp.id_to_piece(token_id) != token:
                raise ValueError(f"SentencePiece model has {self._sp.id_to_piece(token_id)!r} at id "
                                 f"{token_id}; expected {token!r} (train it with "
                                 f"SentencePieceTokenizer.train)")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000,
              model_type: str = "bpe") -> SentencePieceTokenizer:
        """Learn a model on ``texts`` (one sentence each).  ``vocab_size`` is an upper bound (small
        corpora get fewer pieces) and counts the 6 specials and 256 byte pieces, so it must be at
        least 300.  Single-threaded, hence deterministic: the same texts give the same model."""
        import io

        import sentencepiece as spm

        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}")
        if vocab_size < 300:
            raise ValueError(f"vocab_size must be >= 300 (6 specials + 256 byte pieces + pieces), "
                             f"got {vocab_size}")
        sentences = [s for s in (normalise(t) for t in texts) if s]
        if not sentences:
            raise ValueError("cannot train a tokenizer on no text")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model,
            vocab_size=vocab_size, model_type=model_type, hard_vocab_limit=False,
            character_coverage=1.0, byte_fallback=True, normalization_rule_name="identity",
            remove_extra_whitespaces=True, split_digits=True,
            pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
            pad_piece=SPECIAL_TOKENS[PAD_ID], bos_piece=SPECIAL_TOKENS[BOS_ID],
            eos_piece=SPECIAL_TOKENS[EOS_ID], unk_piece=SPECIAL_TOKENS[UNK_ID],
            control_symbols=[SPECIAL_TOKENS[MASK_ID], SPECIAL_TOKENS[BLANK_ID]],
            num_threads=1, max_sentence_length=1 << 16, minloglevel=2,
        )
        return cls(model.getvalue())

    @property
    def model_proto(self) -> bytes:
        """The serialised SentencePiece model (what ``spm.model`` holds)."""
        return self._proto

    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    def _encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))

    def _decode(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def id_to_token(self, token_id: int) -> str:
        return self._sp.id_to_piece(token_id)

    def token_to_id(self, token: str) -> int:
        return int(self._sp.piece_to_id(token))

    def _save_files(self, directory: Path) -> dict:
        atomic_write_bytes(directory / "spm.model", self._proto)
        return {"model_file": "spm.model"}

    @classmethod
    def _load(cls, directory: Path, config: dict) -> SentencePieceTokenizer:
        return cls((directory / config["model_file"]).read_bytes())


_KINDS: dict[str, type[Tokenizer]] = {"word": WordTokenizer, "spm": SentencePieceTokenizer}
#: Names accepted by :func:`train_tokenizer` (``bpe`` is an alias of ``spm``).
TOKENIZER_KINDS: tuple[str, ...] = ("spm", "bpe", "word")


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None = 8000) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``"spm"``/``"bpe"``: SentencePiece BPE; ``"word"``:
    whitespace words, ``vocab_size`` words at most, None = all)."""
    if kind in ("spm", "bpe"):
        return SentencePieceTokenizer.train(texts, vocab_size=vocab_size or 8000)
    if kind == "word":
        return WordTokenizer.train(texts, max_size=vocab_size)
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {TOKENIZER_KINDS}")


def load_tokenizer(directory: str | os.PathLike) -> Tokenizer:
    """Read a tokenizer written by :meth:`Tokenizer.save`."""
    directory = Path(directory)
    config_path = directory / _CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"no tokenizer in {directory} (missing {config_path})")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    kind = config.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"{config_path}: unknown tokenizer kind {kind!r}")
    if config.get("special_tokens") != list(SPECIAL_TOKENS):
        raise ValueError(f"{config_path}: special tokens {config.get('special_tokens')} differ from "
                         f"{list(SPECIAL_TOKENS)}")
    return _KINDS[kind]._load(directory, config)  # type: ignore[attr-defined]


class TokenizerPair:
    """Source and target tokenizers; ``joint`` when both sides share one vocabulary (then
    ``src is tgt``).  Saved as ``DIR/joint/`` or ``DIR/src/`` + ``DIR/tgt/``."""

    def __init__(self, src: Tokenizer, tgt: Tokenizer) -> None:
        self.src = src
        self.tgt = tgt

    @property
    def joint(self) -> bool:
        return self.src is self.tgt

    @classmethod
    def train(cls, src_texts: Sequence[str], tgt_texts: Sequence[str], kind: str = "spm",
              vocab_size: int | None = 8000, joint: bool = True) -> TokenizerPair:
        """Learn on a training split (``src_texts``/``tgt_texts``): one shared model on both
        sides when ``joint``, else one per side, each of at most ``vocab_size``."""
        if joint:
            shared = train_tokenizer(kind, list(src_texts) + list(tgt_texts), vocab_size)
            return cls(shared, shared)
        return cls(train_tokenizer(kind, src_texts, vocab_size),
                   train_tokenizer(kind, tgt_texts, vocab_size))

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        if self.joint:
            self.src.save(directory / "joint")
        else:
            self.src.save(directory / "src")
            self.tgt.save(directory / "tgt")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TokenizerPair:
        directory = Path(directory)
        if (directory / "joint" / _CONFIG_FILE).is_file():
            shared = load_tokenizer(directory / "joint")
            return cls(shared, shared)
        if (directory / "src" / _CONFIG_FILE).is_file():
            return cls(load_tokenizer(directory / "src"), load_tokenizer(directory / "tgt"))
        raise FileNotFoundError(f"no tokenizers in {directory} (expected joint/ or src/ + tgt/)")

    def __repr__(self) -> str:
        return f"TokenizerPair(src={self.src!r}, tgt={self.tgt!r}, joint={self.joint})"
