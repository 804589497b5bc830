"""How much a split's references agree with each other: the corpus BLEU of every reference stream
(the target, ``ref1``, ``ref2``, ...) scored against every other one as its single reference.

Multi-reference scores treat the references as independent translations of the source.  A reference
that is a revision of the target (one English Bible revising another) is a near-copy of it: any
output in the target's wording then matches two references at once, and any other good translation
looks distorted.  The matrix makes such a pair visible; :func:`near_copy_pairs` names the pairs
above a threshold.  Scores are sacrebleu's corpus BLEU with its default ``13a`` tokenization, so
they can be reproduced with ``sacrebleu.corpus_bleu`` or the ``sacrebleu`` command.
"""

from __future__ import annotations

from dataclasses import dataclass

import sacrebleu

from .dataset import Split

#: Corpus BLEU (0-100) above which two references count as near-copies of each other.  Independent
#: English Bible translations score 14-42 against each other; a revision scores 50-90 against the
#: text it revises (the American Standard Version 70 against the King James Version).
NEAR_COPY_BLEU = 45.0

#: sacrebleu tokenizer of the matrix (sacrebleu's default for corpus BLEU).
MATRIX_TOKENIZE = "13a"


@dataclass(frozen=True)
class ReferenceMatrix:
    """Corpus BLEU among the reference streams of one split.

    Attributes:
        split: the split's name.
        streams: stream names in file order: ``"target"``, ``"ref1"``, ``"ref2"``, ...
        sentences: the sentences scored, those that have every stream (a sentence with an empty
            line in some ``.refN`` file is left out, so that every stream covers the same sentences).
        bleu: ``bleu[i][j]`` is the corpus BLEU of stream ``i`` as the hypothesis against stream ``j``
            as the single reference; ``None`` on the diagonal.  Not symmetric (the brevity penalty
            and the n-gram precisions depend on which side is the hypothesis).
    """

    split: str
    streams: list[str]
    sentences: int
    bleu: list[list[float | None]]

    def pair(self, i: int, j: int) -> float:
        """The larger of the two directions of the pair (i, j)."""
        return max(self.bleu[i][j], self.bleu[j][i])

    def to_json(self) -> dict:
        return {"streams": self.streams, "sentences": self.sentences, "tokenize": MATRIX_TOKENIZE,
                "unit": "corpus BLEU (0-100), row as hypothesis, column as reference",
                "bleu": self.bleu}


def reference_matrix(split: Split) -> ReferenceMatrix | None:
    """The BLEU matrix of ``split``'s references; ``None`` when no sentence has an extra reference.

    A split's ``refs`` keep only the non-empty references of each sentence, so a stream is
    identified by position only in the sentences that have the most references: those are the ones
    scored (all of them when every ``.refN`` line is filled)."""
    counts = split.refs_per_sentence()
    n_streams = max(counts, default=1)
    if n_streams < 2:
        return None
    rows = [refs for refs in split.refs if len(refs) == n_streams]
    columns = [[refs[k] for refs in rows] for k in range(n_streams)]
    metric = sacrebleu.metrics.BLEU(tokenize=MATRIX_TOKENIZE)
    bleu: list[list[float | None]] = [
        [None if i == j else round(metric.corpus_score(columns[i], [columns[j]]).score, 2)
         for j in range(n_streams)]
        for i in range(n_streams)]
    streams = ["target"] + [f"ref{k}" for k in range(1, n_streams)]
    return ReferenceMatrix(split.name, streams, len(rows), bleu)


def near_copy_pairs(matrix: ReferenceMatrix, threshold: float = NEAR_COPY_BLEU) -> list[tuple[str, str, float]]:
    """Pairs of streams whose corpus BLEU (the larger direction) is above ``threshold``, as
    ``(stream, stream, bleu)``; pairs with the target first."""
    found = []
    n = len(matrix.streams)
    for i in range(n):
        for j in range(i + 1, n):
            score = matrix.pair(i, j)
            if score > threshold:
                found.append((matrix.streams[i], matrix.streams[j], score))
    return found


def format_matrix(matrix: ReferenceMatrix) -> list[str]:
    """The matrix as aligned text lines (a header and one row per stream)."""
    width = max(8, max(len(s) for s in matrix.streams) + 2)
    lines = [f"{'':<{width}}" + "".join(f"{s:>{width}}" for s in matrix.streams)]
    for name, row in zip(matrix.streams, matrix.bleu):
        lines.append(f"{name:<{width}}" + "".join(
            f"{'-':>{width}}" if v is None else f"{v:>{width}.1f}" for v in row))
    return lines
