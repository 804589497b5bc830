"""``mple demo``: the main job on the bundled corpus.

For now it measures how much three human English translations of the bundled test split agree
(King James, World English Bible, American Standard Version): corpus BLEU of each against the other
two, checked against sacrebleu, and the mean pairwise sentence BLEU matrix that dynamic KD uses to
compare candidates (Eq. 21).  All scores come from the compiled kernels.
"""

from __future__ import annotations

import argparse

import sacrebleu

from .. import build_info
from ..data import bundled_corpus, load_dataset
from ..metrics import BLEU
from ..ops import pairwise_bleu

VERSIONS = ("KJV", "WEB", "ASV")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the demonstration job on the bundled corpus",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="test", choices=("valid", "test"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"mple_metrics build: {build_info()}")
    split = load_dataset(bundled_corpus(), splits=(args.split,))[args.split]
    versions = list(zip(*[row[:3] for row in split.refs]))  # KJV (target), WEB (ref1), ASV (ref2)
    print(f"bundled corpus, {args.split} split: {len(split)} verses, English versions {', '.join(VERSIONS)}")

    metric = BLEU(tokenize="13a")
    print("\ncorpus BLEU (0-100) of each version against the other two as references:")
    for k, name in enumerate(VERSIONS):
        others = [j for j in range(3) if j != k]
        refs = [[versions[j][i] for j in others] for i in range(len(split))]
        ours = metric.corpus_score(list(versions[k]), refs)
        theirs = sacrebleu.corpus_bleu(list(versions[k]), [list(versions[j]) for j in others])
        print(f"  {name}: {ours}")
        print(f"       sacrebleu on the same text: {theirs.score:.6f} "
              f"(difference {abs(theirs.score - ours.score):.1e})")

    # Pairwise sentence BLEU among the three versions of every verse, on 13a tokens mapped to ids.
    ids = [[metric.token_ids(versions[k][i]) for k in range(3)] for i in range(len(split))]
    matrix = pairwise_bleu(ids).mean(dim=0)
    print("\nmean pairwise sentence BLEU (0-100), row = hypothesis, column = reference:")
    print("        " + "".join(f"{name:>8s}" for name in VERSIONS))
    for k, name in enumerate(VERSIONS):
        print(f"  {name:6s}" + "".join(f"{float(v):8.2f}" for v in matrix[k]))
    return 0
