"""``mple bleu``: corpus BLEU of a hypothesis file against one or more reference files.

Text is tokenized by sacrebleu's own tokenizers (``13a`` by default, as the sacrebleu command) and
scored by the batched kernels, so the score equals sacrebleu's; ``--tokenize ids`` reads lines of
integer token ids.  Output: sacrebleu's one-line form with the signature, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data import read_lines
from ..metrics import BLEU
from .argument_types import device, input_file


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bleu", help="corpus BLEU (0-100) of a hypothesis file against references",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hypothesis", type=input_file, help="one hypothesis per line")
    p.add_argument("references", type=input_file, nargs="+",
                   help="reference files, line-aligned with the hypothesis (an empty line = no reference "
                        "in that file for that sentence)")
    p.add_argument("--tokenize", "-tok", default="13a", type=_tokenizer_name,
                   help="sacrebleu tokenizer for text ('13a', 'none', 'intl', 'char', ...) or 'ids' for "
                        "lines of integer token ids (default: 13a)")
    p.add_argument("--lowercase", "-lc", action="store_true", help="lowercase before tokenizing")
    p.add_argument("--sentence", action="store_true",
                   help="also print the sentence BLEU (effective order) of every line")
    p.add_argument("--json", action="store_true", help="print JSON instead of the one-line form")
    p.add_argument("--device", default="cpu", type=device, help="device for the kernels (cpu or cuda)")
    p.set_defaults(run=run)


def _tokenizer_name(text: str) -> str:
    from sacrebleu.metrics.bleu import _TOKENIZERS

    if text != "ids" and text not in _TOKENIZERS:
        raise argparse.ArgumentTypeError(f"must be 'ids' or one of {', '.join(sorted(_TOKENIZERS))}; "
                                         f"got {text!r}")
    return text


def _parse_ids(line: str, path: Path, number: int) -> list[int]:
    try:
        return [int(tok) for tok in line.split()]
    except ValueError:
        raise ValueError(f"{path}:{number}: --tokenize ids expects integer token ids, got {line!r}") from None


def run(args: argparse.Namespace) -> int:
    # Lines end at "\n" only (one trailing "\r" stripped), as sacrebleu reads files: U+2028, form
    # feed and the other str.splitlines() breaks stay inside their line.
    hyp_lines = read_lines(args.hypothesis)
    ref_files = [read_lines(path) for path in args.references]
    for path, lines in zip(args.references, ref_files):
        if len(lines) != len(hyp_lines):
            raise ValueError(f"reference file {path} has {len(lines)} lines but the hypothesis file "
                             f"{args.hypothesis} has {len(hyp_lines)}")
    # An empty line in a reference file means "no reference from this file" when others exist.
    # Each kept reference remembers its file, so an error names the file it came from.
    sources = []
    for number in range(len(hyp_lines)):
        row = [(path, lines[number]) for path, lines in zip(args.references, ref_files)]
        sources.append([(path, r) for path, r in row if r.strip()] or row[:1])
    refs: list = [[r for _, r in row] for row in sources]
    hyps: list = hyp_lines
    if args.tokenize == "ids":
        hyps = [_parse_ids(h, args.hypothesis, i + 1) for i, h in enumerate(hyp_lines)]
        refs = [[_parse_ids(r, path, i + 1) for path, r in row] for i, row in enumerate(sources)]
    metric = BLEU(tokenize=args.tokenize, lowercase=args.lowercase, device=args.device)
    score = metric.corpus_score(hyps, refs)
    sentence_scores = metric.batch_sentence_scores(hyps, refs).tolist() if args.sentence else None
    if args.json:
        payload = score.to_dict()
        if sentence_scores is not None:
            payload["sentence_scores"] = sentence_scores
        print(json.dumps(payload, indent=1))
    else:
        if sentence_scores is not None:
            for number, value in enumerate(sentence_scores, 1):
                print(f"{number}\tsentence BLEU (0-100) = {value:.2f}")
        print(score.format())
    return 0
