"""BLEU metric object on token ids, in the style of ``sacrebleu.metrics.BLEU``.

Statistics are collected by the batched kernels (:mod:`mple_metrics.ops.bleu`) and combined in
float64 exactly as sacrebleu does, so ``BLEU().sentence_score(h, refs).score`` equals
``sacrebleu.sentence_bleu`` on the same ids written as space-separated words.  Text is supported by
mapping words to ids after sacrebleu's own tokenizer (``tokenize='13a'`` etc.), which reproduces
sacrebleu's scores on text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import __version__
from ..ops import bleu as bleu_ops


@dataclass(frozen=True)
class BLEUSignature:
    """Reproducibility signature, e.g. ``BLEU|nrefs:1|case:mixed|eff:yes|tok:ids|smooth:exp|version:0.1.0``."""

    nrefs: str
    case: str = "mixed"
    effective_order: bool = False
    tokenize: str = "ids"
    smooth: str = "exp"
    version: str = __version__

    def format(self) -> str:
        return (f"BLEU|nrefs:{self.nrefs}|case:{self.case}|eff:{'yes' if self.effective_order else 'no'}"
                f"|tok:{self.tokenize}|smooth:{self.smooth}|version:{self.version}")

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class BLEUScore:
    """A BLEU score (0-100 scale) with the statistics it was combined from."""

    score: float
    counts: tuple[int, ...]
    totals: tuple[int, ...]
    precisions: tuple[float, ...]
    bp: float
    sys_len: int
    ref_len: int
    signature: BLEUSignature | None = field(default=None, compare=False)

    @property
    def ratio(self) -> float:
        return self.sys_len / self.ref_len if self.ref_len else 0.0

    def format(self, width: int = 2) -> str:
        """sacrebleu's one-line form: ``BLEU = 34.12 65.2/40.1/27.3/19.9 (BP = 1.000 ...)``."""
        name = str(self.signature) if self.signature else "BLEU"
        prec = "/".join(f"{p:.1f}" for p in self.precisions)
        return (f"{name} = {self.score:.{width}f} {prec} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
                f"hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})")

    def to_dict(self) -> dict[str, object]:
        return {
            "name": "BLEU", "score": self.score, "scale": "0-100",
            "signature": str(self.signature) if self.signature else None,
            "counts": list(self.counts), "totals": list(self.totals),
            "precisions": list(self.precisions), "bp": self.bp, "ratio": self.ratio,
            "sys_len": self.sys_len, "ref_len": self.ref_len,
        }

    def __str__(self) -> str:
        return self.format()


def _score_from_stats(stats: Tensor, effective_order: bool, signature: BLEUSignature) -> BLEUScore:
    """Builds the full score object from one statistics row (10,)."""
    row = [int(v) for v in stats.tolist()]
    sys_len, ref_len = row[0], row[1]
    correct, total = row[2:6], row[6:10]
    score = float(bleu_ops.bleu_from_stats(stats.cpu(), effective_order))
    # Precisions and brevity penalty for display, as sacrebleu reports them.
    precisions, smooth = [0.0] * 4, 1.0
    if any(correct):
        for n in range(4):
            if total[n] == 0:
                break
            if correct[n] == 0:
                smooth *= 2
                precisions[n] = 100.0 / (smooth * total[n])
            else:
                precisions[n] = 100.0 * correct[n] / total[n]
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    return BLEUScore(score, tuple(correct), tuple(total), tuple(precisions), bp, sys_len, ref_len, signature)


class BLEU:
    """BLEU on token ids (or text through sacrebleu's tokenizers), sacrebleu-exact.

    Args:
        effective_order: stop at the highest n-gram order present (sacrebleu's sentence-level
            setting).  ``None`` means: on for sentence scores, off for corpus scores, as in sacrebleu.
        tokenize: ``'ids'`` for token-id inputs; for text, a sacrebleu tokenizer name
            (``'13a'``, ``'none'``, ``'intl'``, ``'char'``, ...).
        lowercase: lowercase text before tokenizing (signature ``case:lc``).
        device: where the kernels run (``'cpu'`` or ``'cuda'``).
    """

    def __init__(self, effective_order: bool | None = None, tokenize: str = "ids",
                 lowercase: bool = False, device: str | torch.device = "cpu") -> None:
        if effective_order is not None and not isinstance(effective_order, bool):
            raise TypeError(f"effective_order must be True, False or None, got {effective_order!r}")
        self.effective_order = effective_order
        self.tokenize = tokenize
        self.lowercase = lowercase
        self.device = torch.device(device)
        self._tokenizer = None
        if tokenize != "ids":
            from sacrebleu.metrics.bleu import _TOKENIZERS
            if tokenize not in _TOKENIZERS:
                raise ValueError(f"tokenize must be 'ids' or one of {sorted(_TOKENIZERS)}, got {tokenize!r}")
            from sacrebleu.metrics.bleu import BLEU as _SacreBLEU
            self._tokenizer = _SacreBLEU(tokenize=tokenize, lowercase=lowercase).tokenizer
        self._vocab: dict[str, int] = {}

    # -- inputs -------------------------------------------------------------------------------

    def token_ids(self, sentence: Sequence[int] | str) -> list[int]:
        """The ids a sentence is scored on: the ids themselves, or sacrebleu's tokens of the text
        mapped to ids (a vocabulary kept by this object, so ids are stable across calls)."""
        if self._tokenizer is None:
            if isinstance(sentence, str):
                raise TypeError("BLEU(tokenize='ids') scores token-id lists; pass tokenize='13a' "
                                "(or another sacrebleu tokenizer) to score text")
            return [int(t) for t in sentence]
        if not isinstance(sentence, str):
            raise TypeError(f"BLEU(tokenize={self.tokenize!r}) scores text, got {type(sentence).__name__}")
        text = sentence.lower() if self.lowercase else sentence
        words = self._tokenizer(text.rstrip()).split()
        return [self._vocab.setdefault(w, len(self._vocab)) for w in words]

    def _batch(self, hyps: Sequence, refs: Sequence[Sequence]) -> tuple[list[list[int]], list[list[list[int]]]]:
        if len(hyps) != len(refs):
            raise ValueError(f"refs holds references for {len(refs)} hypotheses but hyps holds {len(hyps)}")
        return ([self.token_ids(h) for h in hyps],
                [[self.token_ids(r) for r in row if r is not None] for row in refs])

    def signature(self, nrefs: int | str, effective_order: bool) -> BLEUSignature:
        return BLEUSignature(nrefs=str(nrefs), case="lc" if self.lowercase else "mixed",
                             effective_order=effective_order, tokenize=self.tokenize)

    # -- statistics and scores ----------------------------------------------------------------

    def collect_stats(self, hyps: Sequence, refs: Sequence[Sequence]) -> Tensor:
        """Per-sentence statistics (B, 10) int64; ``refs[b]`` lists the references of ``hyps[b]``."""
        hyp_ids, ref_ids = self._batch(hyps, refs)
        batch = bleu_ops.prepare_bleu_batch(hyp_ids, ref_ids)
        return torch.ops.mple.bleu_stats(*(t.to(self.device) for t in batch))

    def sentence_score(self, hyp: Sequence[int] | str, refs: Sequence) -> BLEUScore:
        """Sentence BLEU of one hypothesis against its references."""
        eff = True if self.effective_order is None else self.effective_order
        stats = self.collect_stats([hyp], [refs])[0]
        return _score_from_stats(stats, eff, self.signature(len(refs), eff))

    def batch_sentence_scores(self, hyps: Sequence, refs: Sequence[Sequence]) -> Tensor:
        """Sentence BLEU of every hypothesis: float64 (B,), 0-100 scale, one kernel call."""
        eff = True if self.effective_order is None else self.effective_order
        return bleu_ops.bleu_from_stats(self.collect_stats(hyps, refs), eff)

    def corpus_score(self, hyps: Sequence, refs: Sequence[Sequence]) -> BLEUScore:
        """Corpus BLEU from the summed statistics of all sentences (``refs[b]`` per hypothesis)."""
        eff = False if self.effective_order is None else self.effective_order
        stats = self.collect_stats(hyps, refs).sum(dim=0)
        counts = {len([r for r in row if r is not None]) for row in refs}
        nrefs = counts.pop() if len(counts) == 1 else "var"
        return _score_from_stats(stats, eff, self.signature(nrefs, eff))
