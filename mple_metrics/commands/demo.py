"""``mple demo``: the main job on the bundled data.  For now: sentence, corpus and pairwise BLEU on
token ids through the compiled kernels, checked against sacrebleu on the same sentences."""

from __future__ import annotations

import argparse

import torch

from .. import build_info
from ..metrics import BLEU
from ..ops import pairwise_bleu
from ..ops.reference.bleu import sacrebleu_corpus

_HYPOTHESES = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "non autoregressive models predict all tokens at once",
    "knowledge distillation makes the targets easier to learn",
]
_REFERENCES = [
    ["the cat is sitting on the mat", "there is a cat on the mat"],
    ["the quick brown fox jumps over the lazy dog"],
    ["non autoregressive transformers predict every token in parallel",
     "a non autoregressive model predicts all the tokens at once"],
    ["distillation makes targets easier to learn", "knowledge distillation simplifies the training data"],
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the demonstration job on bundled data")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"mple_metrics build: {build_info()}")
    vocab: dict[str, int] = {}
    ids = lambda s: [vocab.setdefault(w, len(vocab)) for w in s.split()]  # noqa: E731
    hyps = [ids(h) for h in _HYPOTHESES]
    refs = [[ids(r) for r in row] for row in _REFERENCES]
    metric = BLEU()
    scores = metric.batch_sentence_scores(hyps, refs)
    print("\nsentence BLEU (0-100) on token ids:")
    for text, value in zip(_HYPOTHESES, scores.tolist()):
        print(f"  {value:6.2f}  {text}")
    corpus = metric.corpus_score(hyps, refs)
    print(f"\n{corpus}")
    reference = sacrebleu_corpus(hyps, refs).score
    print(f"sacrebleu on the same ids: {reference:.6f} (difference {abs(reference - corpus.score):.1e})")
    cands = [[hyps[k]] + refs[k][:1] for k in range(len(hyps))]
    print("\npairwise BLEU (0-100) between each hypothesis and its first reference [b, i, j]:")
    print(torch.round(pairwise_bleu(cands), decimals=2))
    return 0
