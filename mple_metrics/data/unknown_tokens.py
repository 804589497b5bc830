"""How many evaluated tokens are ``<unk>``: a number computed on ``<unk>`` says little about the text.

A word tokenizer with a small vocabulary maps most words to ``<unk>`` (SentencePiece with byte
fallback never does), and every estimator then scores ``<unk>`` predictions instead of the data.
:func:`unk_rate` counts them on token id sequences; :func:`unk_rate_warning` words the warning the
estimators print when the share exceeds :data:`UNK_RATE_WARNING_THRESHOLD`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .tokenizer import UNK_ID

#: Above this share of ``<unk>`` tokens (1%) the estimators warn.
UNK_RATE_WARNING_THRESHOLD = 0.01


@dataclass(frozen=True)
class UnkRate:
    """``unk_tokens`` of ``tokens`` evaluated tokens are ``<unk>``; ``rate`` their share (0 when
    there are no tokens)."""

    unk_tokens: int
    tokens: int

    @property
    def rate(self) -> float:
        return self.unk_tokens / self.tokens if self.tokens else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"rate": self.rate, "unk_tokens": self.unk_tokens, "tokens": self.tokens}


def unk_rate(sequences: Iterable[Sequence[int]], unk_id: int = UNK_ID) -> UnkRate:
    """Count ``unk_id`` in token id sequences (lists of ints, 1-D arrays or tensors, no padding:
    pass each sequence at its length)."""
    unk = total = 0
    for sequence in sequences:
        ids = np.asarray(sequence.tolist() if hasattr(sequence, "tolist") else sequence, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"sequences must be 1-D token id sequences, got shape {ids.shape}")
        unk += int(np.count_nonzero(ids == unk_id))
        total += int(ids.size)
    return UnkRate(unk_tokens=unk, tokens=total)


def unk_rate_warning(rate: UnkRate, what: str,
                     threshold: float = UNK_RATE_WARNING_THRESHOLD) -> str | None:
    """The warning for ``rate`` of ``what`` (e.g. ``"the test targets"``) above ``threshold``,
    else ``None``."""
    if rate.rate <= threshold:
        return None
    return (f"{rate.rate:.1%} of {what} are <unk> ({rate.unk_tokens} of {rate.tokens} tokens, above "
            f"{threshold:.0%}): the numbers score <unk> predictions, not the text; use a tokenizer that "
            f"covers the data (SentencePiece, --tokenizer-kind spm, has none) or a larger --vocab-size")
