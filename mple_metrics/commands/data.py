"""``mple data``: inspect datasets and write synthetic and known-C ones.

  mple data info [DIR]                     split sizes, vocabularies, lengths, references per sentence
  mple data synth {a,b} --from DIR --out DIR2      Synthetic A/B (paper Appendix B)
  mple data known-c --kind kmodes --k 2 --m 8 --out DIR    dataset with exactly known C + truth.json

DIR is a dataset directory (see docs/data.md) or ``bundled`` for the corpus shipped with the
package (the default for ``info`` and ``synth --from``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ..atomic_write import atomic_write_text
from ..data import (BUNDLED_NAME, KNOWN_C_KINDS, SYNTHETIC_KINDS, TokenizerPair, load_dataset,
                    make_synthetic, resolve_dataset_path, write_dataset, write_known_c)
from .argument_types import output_dir, output_file, positive_float, positive_int, probability, seed


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="inspect datasets; write synthetic and known-C datasets",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info = sub.add_parser("info", help="split sizes, vocabulary sizes, mean lengths, references")
    info.add_argument("dataset", nargs="?", default=BUNDLED_NAME,
                      help="dataset directory or .tsv file, or 'bundled' (default)")
    info.add_argument("--tokenizer", choices=("spm", "word", "none"), default="spm",
                      help="also learn this tokenizer on train and report its vocabulary and token "
                           "lengths (default: spm, a joint SentencePiece BPE; none: skip)")
    info.add_argument("--vocab-size", type=positive_int, default=8000,
                      help="tokenizer vocabulary size (upper bound; default 8000)")
    info.add_argument("--json", type=output_file, default=None,
                      help="also write the numbers to this JSON file")
    info.set_defaults(run=run_info)

    synth = sub.add_parser("synth", help="Synthetic A/B: corrupted English -> English (Appendix B)")
    synth.add_argument("kind", choices=SYNTHETIC_KINDS,
                       help="a: replace 50%% of source words; b: a, then drop 10%% of them")
    synth.add_argument("--from", dest="source", default=BUNDLED_NAME,
                       help="dataset whose targets are used (default: bundled)")
    synth.add_argument("--out", type=output_dir, required=True, help="output dataset directory")
    synth.add_argument("--seed", type=seed, default=0)
    synth.add_argument("--replace-prob", type=probability, default=0.5)
    synth.add_argument("--drop-prob", type=_drop_prob, default=0.1, help="in [0, 1) (default 0.1)")
    synth.set_defaults(run=run_synth)

    known = sub.add_parser("known-c", help="dataset with exactly known conditional total correlation C")
    known.add_argument("--kind", choices=KNOWN_C_KINDS, required=True,
                       help="iid / deterministic (C = 0), kmodes (C = (M-1) log2 K), mixture")
    known.add_argument("--m", type=positive_int, default=8, help="target words per sentence (default 8)")
    known.add_argument("--k", type=positive_int, default=2, help="modes (kmodes) or components (mixture)")
    known.add_argument("--j", type=positive_int, default=2, help="variants per position (iid, mixture)")
    known.add_argument("--n-train", type=positive_int, default=20000)
    known.add_argument("--n-valid", type=positive_int, default=1000)
    known.add_argument("--n-test", type=positive_int, default=1000)
    known.add_argument("--source-words", type=positive_int, default=50, help="source vocabulary size")
    known.add_argument("--concentration", type=positive_float, default=1.0,
                       help="Dirichlet concentration of random parameters (iid, mixture)")
    known.add_argument("--seed", type=seed, default=0)
    known.add_argument("--out", type=output_dir, required=True, help="output dataset directory")
    known.set_defaults(run=run_known_c)


def _drop_prob(text: str) -> float:
    value = probability(text)
    if value == 1.0:
        raise argparse.ArgumentTypeError("must be below 1 (dropping every source word leaves nothing)")
    return value


def _summary(dataset, tokenizers: TokenizerPair | None) -> dict:
    out: dict = {"path": str(dataset.path), "splits": {}}
    for name, split in dataset.items():
        refs = split.refs_per_sentence()
        row = {
            "sentences": len(split),
            "src_words_mean": statistics.fmean(len(s.split()) for s in split.src),
            "tgt_words_mean": statistics.fmean(len(t.split()) for t in split.tgt),
            "refs_per_sentence_mean": statistics.fmean(refs),
            "refs_per_sentence_min": min(refs),
            "src_word_types": len({w for s in split.src for w in s.split()}),
            "tgt_word_types": len({w for t in split.tgt for w in t.split()}),
        }
        if tokenizers is not None:
            row["src_tokens_mean"] = statistics.fmean(len(x) for x in tokenizers.src.encode_batch(split.src))
            row["tgt_tokens_mean"] = statistics.fmean(len(x) for x in tokenizers.tgt.encode_batch(split.tgt))
        out["splits"][name] = row
    if tokenizers is not None:
        out["tokenizer"] = {"kind": tokenizers.src.kind, "joint": tokenizers.joint,
                            "src_vocab_size": tokenizers.src.vocab_size,
                            "tgt_vocab_size": tokenizers.tgt.vocab_size}
    return out


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def run_info(args: argparse.Namespace) -> int:
    path = resolve_dataset_path(args.dataset)
    if path.is_dir():
        present = [n for n in ("train", "valid", "test")
                   if any(path.glob(f"{n}.src*")) or any(path.glob(f"{n}.tsv*"))]
        if not present:
            raise FileNotFoundError(f"{path} holds no split (expected train/valid/test .src/.tgt or .tsv)")
        dataset = load_dataset(path, splits=present)
    else:
        dataset = load_dataset(path)
    tokenizers = None
    if args.tokenizer != "none":
        train = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
        tokenizers = TokenizerPair.train(train.src, train.tgt, kind=args.tokenizer,
                                         vocab_size=args.vocab_size, joint=True)
    summary = _summary(dataset, tokenizers)

    print(f"dataset: {path}")
    header = f"{'split':<8}{'sentences':>10}{'src words':>11}{'tgt words':>11}{'refs/sent':>11}{'min refs':>10}"
    if tokenizers is not None:
        header += f"{'src tokens':>12}{'tgt tokens':>12}"
    print(header)
    for name, row in summary["splits"].items():
        line = (f"{name:<8}{row['sentences']:>10,}{row['src_words_mean']:>11.2f}{row['tgt_words_mean']:>11.2f}"
                f"{row['refs_per_sentence_mean']:>11.2f}{row['refs_per_sentence_min']:>10}")
        if tokenizers is not None:
            line += f"{row['src_tokens_mean']:>12.2f}{row['tgt_tokens_mean']:>12.2f}"
        print(line)
    first = next(iter(summary["splits"]))
    print(f"word vocabulary ({first}): source {summary['splits'][first]['src_word_types']:,} types, "
          f"target {summary['splits'][first]['tgt_word_types']:,} types")
    if tokenizers is not None:
        t = summary["tokenizer"]
        print(f"tokenizer ({t['kind']}, {'joint' if t['joint'] else 'separate'}, learned on {first}): "
              f"source vocabulary {t['src_vocab_size']:,}, target vocabulary {t['tgt_vocab_size']:,}")
    print("lengths are means per sentence; refs/sent counts the target and the extra references")
    if args.json is not None:
        _write_json(args.json, summary)
    return 0


def run_synth(args: argparse.Namespace) -> int:
    source = load_dataset(resolve_dataset_path(args.source))
    synthetic = make_synthetic(source, args.kind, seed=args.seed, replace_prob=args.replace_prob,
                               drop_prob=args.drop_prob)
    write_dataset(args.out, synthetic)
    for name, split in synthetic.items():
        n_target = sum(len(t.split()) for t in split.tgt)
        n_source = sum(len(s.split()) for s in split.src)
        print(f"{name}: {len(split):,} pairs, {n_target:,} target words, {n_source:,} source words")
    print(f"wrote Synthetic {args.kind.upper()} to {args.out}", file=sys.stderr)
    return 0


def run_known_c(args: argparse.Namespace) -> int:
    truth = write_known_c(args.out, args.kind, m=args.m, k=args.k, j=args.j, n_train=args.n_train,
                          n_valid=args.n_valid, n_test=args.n_test, n_source_words=args.source_words,
                          seed=args.seed, concentration=args.concentration)
    print(f"kind {truth['kind']}: M={truth['m']} positions, K={truth['k']} components, "
          f"J={truth['j']} variants")
    print(f"C = {truth['c_bits_per_sentence']:.6f} bits/sentence = {truth['c_bits_per_token']:.6f} "
          f"bits/token (sum_i H(y_i|X) = {truth['sum_h_yi_given_x_bits']:.6f}, "
          f"H(Y|X) = {truth['h_y_given_x_bits']:.6f} bits)")
    if truth["closed_form_bits_per_sentence"] is not None:
        print(f"closed form: {truth['closed_form_bits_per_sentence']:.6f} bits/sentence")
    print(f"wrote {args.out} and {args.out / 'truth.json'}", file=sys.stderr)
    return 0
