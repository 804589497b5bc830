"""BLEU on token ids through sacrebleu itself: ids become space-separated words, scored with
``tokenize='none'``.  This is the ground truth the BLEU kernels must reproduce."""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu


def ids_to_text(ids: Sequence[int]) -> str:
    return " ".join(str(int(i)) for i in ids)


def sacrebleu_sentence(hyp: Sequence[int], refs: Sequence[Sequence[int]]) -> sacrebleu.BLEUScore:
    """sacrebleu.sentence_bleu (smooth 'exp', effective order) on id strings."""
    return sacrebleu.sentence_bleu(ids_to_text(hyp), [ids_to_text(r) for r in refs], tokenize="none")


def sacrebleu_corpus(hyps: Sequence[Sequence[int]],
                     refs: Sequence[Sequence[Sequence[int]]]) -> sacrebleu.BLEUScore:
    """sacrebleu.corpus_bleu on id strings; ``refs[b]`` are the references of hypothesis b.

    sacrebleu wants reference *streams*; rows with fewer references are padded with ``None``, which
    sacrebleu skips, so every row keeps exactly its own references.
    """
    num_streams = max(len(r) for r in refs)
    streams = [[ids_to_text(row[k]) if k < len(row) else None for row in refs] for k in range(num_streams)]
    return sacrebleu.corpus_bleu([ids_to_text(h) for h in hyps], streams, tokenize="none")


def sacrebleu_stats(score: sacrebleu.BLEUScore) -> list[int]:
    """A sacrebleu score's statistics in the order of ``mple_metrics.ops.bleu.STATS_FIELDS``."""
    return [score.sys_len, score.ref_len, *score.counts, *score.totals]
