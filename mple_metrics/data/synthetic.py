"""Synthetic A and B (paper Appendix B): denoising datasets with a low conditional total correlation.

Both keep a corpus' English side as the target and build the source from the target itself.  The
paper corrupts its models' tokens (BPE'd WMT text), so a replacement keeps the sentence length and
the NAT's source, copied position by position into its decoder, stays aligned with the target.
That is ``level="token"``, the default:

- the targets are tokenized with the tokenizer the models will use (given, or a SentencePiece BPE
  learnt on the training targets);
- **Synthetic A**: each target token is replaced, with probability ``replace_prob`` (0.5), by a
  token drawn uniformly from the tokenizer's vocabulary other than itself, never a special token
  (pad, bos, eos, unk, mask, blank) nor a byte-fallback piece (``<0x41>``: a spelling of one byte,
  not a token of the text);
- **Synthetic B**: Synthetic A, then each source token is dropped with probability ``drop_prob``
  (0.1); a sentence keeps at least one token.

The source is written as the tokenizer's pieces separated by spaces, and the dataset carries the
pair it must be read with (:mod:`.dataset_tokenizer`): on the source side a ``word`` tokenizer
whose vocabulary is the pieces in the target tokenizer's id order (so a source piece reads back as
the very id that was drawn), on the target side the tokenizer itself (so the target, kept as text
for BLEU, encodes to the ids the corruption started from).

``level="word"`` corrupts whitespace words instead, drawing from the training targets' word types;
it writes plain text and carries no tokenizer.  With a subword tokenizer a replaced word seldom
has as many pieces as the original, so positions drift apart.

Generation is seeded and deterministic; each split uses its own random stream derived from
``(seed, split name)``, and B's pre-drop source equals A's source for the same seed (and
tokenizer), so B is exactly A plus dropping.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import Dataset, Split, write_dataset
from .dataset_tokenizer import save_dataset_tokenizers
from .tokenizer import (NUM_SPECIAL, SPECIAL_TOKENS, SentencePieceTokenizer, Tokenizer, TokenizerPair,
                        WordTokenizer)

SYNTHETIC_KINDS: tuple[str, ...] = ("a", "b")
#: ``token``: corrupt the model's tokens (the paper's construction); ``word``: whitespace words.
SYNTHETIC_LEVELS: tuple[str, ...] = ("token", "word")

_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")


@dataclass(frozen=True)
class Synthetic:
    """A synthetic dataset and how it is read.

    Attributes:
        dataset: the splits (sources corrupted, targets the original text, single reference).
        level: ``"token"`` or ``"word"``.
        tokenizers: token level: the pair the dataset must be read with (source: pieces, target:
            the tokenizer); word level: None (plain text, any tokenizer).
    """

    dataset: Dataset
    level: str
    tokenizers: TokenizerPair | None = None

    def write(self, directory: str | Path) -> Path:
        """Write the splits and, at token level, ``directory/tokenizer`` (removed at word level, so
        a directory rewritten at word level never keeps a stale tokenizer)."""
        write_dataset(directory, self.dataset)
        save_dataset_tokenizers(directory, self.tokenizers)
        return Path(directory)


def _rng(seed: int, split_name: str, stream: str) -> np.random.Generator:
    # crc32 (not hash()) so the stream does not depend on PYTHONHASHSEED.
    return np.random.default_rng([seed, zlib.crc32(split_name.encode()), zlib.crc32(stream.encode())])


def _replace(items: list, vocabulary: np.ndarray, index: Mapping, replace_prob: float,
             rng: np.random.Generator) -> list:
    """``items`` with each one replaced, with probability ``replace_prob``, by a vocabulary entry
    other than itself, drawn uniformly (so every chosen position really changes)."""
    items = list(items)
    chosen = rng.random(len(items)) < replace_prob
    # Uniform over the vocabulary minus the original: draw from V-1 and skip the original.
    draws = rng.integers(0, len(vocabulary) - 1, size=len(items))
    for j in np.flatnonzero(chosen):
        original = index.get(items[j], -1)
        k = int(draws[j])
        if 0 <= original <= k:
            k += 1
        items[j] = vocabulary[k].item() if isinstance(vocabulary[k], np.generic) else vocabulary[k]
    return items


def _drop(items: list, drop_prob: float, rng: np.random.Generator) -> list:
    """``items`` with each one dropped with probability ``drop_prob``; one (random) kept if all
    would go."""
    keep = rng.random(len(items)) >= drop_prob
    rescue = int(rng.integers(0, max(len(items), 1)))
    if items and not keep.any():
        keep[rescue] = True
    return [x for x, k in zip(items, keep) if k]


def replace_words(sentences: Sequence[str], vocabulary: Sequence[str], replace_prob: float,
                  rng: np.random.Generator) -> list[str]:
    """Replace each word, with probability ``replace_prob``, by a different vocabulary word drawn
    uniformly.  ``vocabulary`` needs >= 2 words."""
    if len(vocabulary) < 2:
        raise ValueError(f"vocabulary must hold at least 2 words, got {len(vocabulary)}")
    vocab = np.asarray(vocabulary, dtype=object)
    index = {w: i for i, w in enumerate(vocabulary)}
    return [" ".join(_replace(s.split(), vocab, index, replace_prob, rng)) for s in sentences]


def drop_words(sentences: Sequence[str], drop_prob: float, rng: np.random.Generator) -> list[str]:
    """Drop each word with probability ``drop_prob``; keep one (random) word if all would go."""
    return [" ".join(_drop(s.split(), drop_prob, rng)) for s in sentences]


def replacement_ids(tokenizer: Tokenizer) -> list[int]:
    """The ids a replacement draws from: the vocabulary without specials and byte-fallback pieces."""
    return [i for i in range(tokenizer.vocab_size)
            if i not in tokenizer.special_ids and not _BYTE_PIECE.match(tokenizer.id_to_token(i))]


def piece_reader(tokenizer: Tokenizer) -> WordTokenizer:
    """A ``word`` tokenizer that reads space-separated pieces of ``tokenizer`` back as their ids.

    Its vocabulary is ``tokenizer``'s pieces in id order after the specials, so ids coincide.  A
    piece that cannot be a whitespace word (it holds a whitespace character, or spells a special
    token) is written as ``<piece:ID>`` instead."""
    taken = {tokenizer.id_to_token(i) for i in range(NUM_SPECIAL, tokenizer.vocab_size)}
    words = []
    for i in range(NUM_SPECIAL, tokenizer.vocab_size):
        piece = tokenizer.id_to_token(i)
        if not piece or piece in SPECIAL_TOKENS or any(c.isspace() for c in piece):
            piece = f"<piece:{i}>"
            while piece in taken:
                piece += "'"
        words.append(piece)
    reader = WordTokenizer(words)
    if reader.vocab_size != tokenizer.vocab_size:  # would shift every id after the difference
        raise ValueError(f"cannot write the pieces of a {tokenizer.vocab_size}-token vocabulary as words")
    return reader


def _synthetic_tokens(dataset: Mapping[str, Split], kind: str, seed: int, replace_prob: float,
                      drop_prob: float, tokenizer: Tokenizer) -> Synthetic:
    candidates = np.asarray(replacement_ids(tokenizer), dtype=np.int64)
    if len(candidates) < 2:
        raise ValueError(f"the tokenizer has {len(candidates)} ordinary tokens to draw replacements from; "
                         f"need at least 2")
    index = {int(t): k for k, t in enumerate(candidates)}
    reader = piece_reader(tokenizer)
    splits = {}
    for name, split in dataset.items():
        rng = _rng(seed, name, "replace")
        sources = [_replace(tokenizer.encode(t), candidates, index, replace_prob, rng) for t in split.tgt]
        if kind == "b":
            rng = _rng(seed, name, "drop")
            sources = [_drop(ids, drop_prob, rng) for ids in sources]
        for number, ids in enumerate(sources, start=1):
            if not ids:
                raise ValueError(f"split {name!r}: target {number} has no tokens")
        splits[name] = Split(name, [" ".join(reader.id_to_token(i) for i in ids) for ids in sources],
                             list(split.tgt))
    return Synthetic(Dataset(splits), "token", TokenizerPair(reader, tokenizer))


def _synthetic_words(dataset: Mapping[str, Split], kind: str, seed: int, replace_prob: float,
                     drop_prob: float) -> Synthetic:
    vocab_source = [dataset["train"]] if "train" in dataset else list(dataset.values())
    vocabulary = sorted({w for split in vocab_source for t in split.tgt for w in t.split()})
    splits = {}
    for name, split in dataset.items():
        source = replace_words(split.tgt, vocabulary, replace_prob, _rng(seed, name, "replace"))
        if kind == "b":
            source = drop_words(source, drop_prob, _rng(seed, name, "drop"))
        splits[name] = Split(name, source, list(split.tgt))
    return Synthetic(Dataset(splits), "word")


def synthetic_tokenizer(dataset: Mapping[str, Split], vocab_size: int = 8000) -> SentencePieceTokenizer:
    """The tokenizer token-level Synthetic A/B learn when none is given: a SentencePiece BPE of at
    most ``vocab_size`` pieces on the ``train`` targets (all splits' when there is no ``train``),
    which are all the text such a dataset holds."""
    vocab_source = [dataset["train"]] if "train" in dataset else list(dataset.values())
    return SentencePieceTokenizer.train([t for split in vocab_source for t in split.tgt], vocab_size=vocab_size)


def make_synthetic(dataset: Mapping[str, Split], kind: str, seed: int = 0, replace_prob: float = 0.5,
                   drop_prob: float = 0.1, level: str = "token",
                   tokenizer: Tokenizer | TokenizerPair | None = None, vocab_size: int = 8000) -> Synthetic:
    """Synthetic ``kind`` ("a" or "b") built from the targets of every split of ``dataset``.

    Args:
        level: ``"token"`` (the paper's construction) or ``"word"`` (module docstring).
        tokenizer: token level: the tokenizer the models will read the targets with (of a pair, its
            target side); None learns :func:`synthetic_tokenizer` with ``vocab_size``.  Not used
            at word level.

    Returns a :class:`Synthetic` (single-reference splits, target = the original target).
    """
    kind = kind.lower() if isinstance(kind, str) else kind
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"kind must be one of {SYNTHETIC_KINDS}, got {kind!r}")
    if level not in SYNTHETIC_LEVELS:
        raise ValueError(f"--level must be one of {SYNTHETIC_LEVELS}, got {level!r}")
    if not 0.0 <= replace_prob <= 1.0:
        raise ValueError(f"--replace-prob must be in [0, 1], got {replace_prob}")
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"--drop-prob must be in [0, 1), got {drop_prob}")
    if not dataset:
        raise ValueError("dataset has no splits")
    if level == "word":
        return _synthetic_words(dataset, kind, seed, replace_prob, drop_prob)
    if isinstance(tokenizer, TokenizerPair):
        tokenizer = tokenizer.tgt
    if tokenizer is None:
        tokenizer = synthetic_tokenizer(dataset, vocab_size)
    return _synthetic_tokens(dataset, kind, seed, replace_prob, drop_prob, tokenizer)
