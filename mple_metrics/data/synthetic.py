"""Synthetic A and B (paper Appendix B): denoising datasets with a low conditional total correlation.

Both keep a corpus' English side as the target and build the source from the target itself:

- **Synthetic A**: each target word is replaced, with probability ``replace_prob`` (0.5), by a word
  drawn uniformly from the vocabulary (the word types of the training targets) other than itself.
- **Synthetic B**: Synthetic A, then each source word is dropped with probability ``drop_prob``
  (0.1); a sentence keeps at least one word.

"Token" means a whitespace word here (the paper replaces and drops words).  Generation is seeded and
deterministic; each split uses its own random stream derived from ``(seed, split name)``, and B's
pre-drop source equals A's source for the same seed, so B is exactly A plus dropping.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from .dataset import Dataset, Split

SYNTHETIC_KINDS: tuple[str, ...] = ("a", "b")


def _rng(seed: int, split_name: str, stream: str) -> np.random.Generator:
    # crc32 (not hash()) so the stream does not depend on PYTHONHASHSEED.
    return np.random.default_rng([seed, zlib.crc32(split_name.encode()), zlib.crc32(stream.encode())])


def replace_words(sentences: Sequence[str], vocabulary: Sequence[str], replace_prob: float,
                  rng: np.random.Generator) -> list[str]:
    """Replace each word, with probability ``replace_prob``, by a different vocabulary word drawn
    uniformly (so every chosen position really changes).  ``vocabulary`` needs >= 2 words."""
    if len(vocabulary) < 2:
        raise ValueError(f"vocabulary must hold at least 2 words, got {len(vocabulary)}")
    vocab = np.asarray(vocabulary, dtype=object)
    index = {w: i for i, w in enumerate(vocabulary)}
    out = []
    for sentence in sentences:
        words = sentence.split()
        chosen = rng.random(len(words)) < replace_prob
        # Uniform over the vocabulary minus the original word: draw from V-1 and skip the original.
        draws = rng.integers(0, len(vocab) - 1, size=len(words))
        for j in np.flatnonzero(chosen):
            original = index.get(words[j], -1)
            k = int(draws[j])
            if 0 <= original <= k:
                k += 1
            words[j] = vocab[k]
        out.append(" ".join(words))
    return out


def drop_words(sentences: Sequence[str], drop_prob: float, rng: np.random.Generator) -> list[str]:
    """Drop each word with probability ``drop_prob``; keep one (random) word if all would go."""
    out = []
    for sentence in sentences:
        words = sentence.split()
        keep = rng.random(len(words)) >= drop_prob
        rescue = int(rng.integers(0, max(len(words), 1)))
        if words and not keep.any():
            keep[rescue] = True
        out.append(" ".join(w for w, k in zip(words, keep) if k))
    return out


def make_synthetic(dataset: Mapping[str, Split], kind: str, seed: int = 0,
                   replace_prob: float = 0.5, drop_prob: float = 0.1) -> Dataset:
    """Synthetic ``kind`` ("a" or "b") built from the targets of every split of ``dataset``.

    The vocabulary is the sorted set of target words of the ``train`` split (or of all splits when
    there is none).  Returns single-reference splits (target = the original target).
    """
    kind = kind.lower()
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"kind must be one of {SYNTHETIC_KINDS}, got {kind!r}")
    if not 0.0 <= replace_prob <= 1.0:
        raise ValueError(f"replace_prob must be in [0, 1], got {replace_prob}")
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
    if not dataset:
        raise ValueError("dataset has no splits")
    vocab_source = [dataset["train"]] if "train" in dataset else list(dataset.values())
    vocabulary = sorted({w for split in vocab_source for t in split.tgt for w in t.split()})
    splits = {}
    for name, split in dataset.items():
        source = replace_words(split.tgt, vocabulary, replace_prob, _rng(seed, name, "replace"))
        if kind == "b":
            source = drop_words(source, drop_prob, _rng(seed, name, "drop"))
        splits[name] = Split(name, source, list(split.tgt))
    return Dataset(splits)
