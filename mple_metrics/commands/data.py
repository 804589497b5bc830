"""``mple data``: inspect datasets and write synthetic and known-C ones.

  mple data info [DIR]                     split sizes, vocabularies, lengths, references per sentence,
                                           corpus BLEU among the references
  mple data synth {a,b} --from DIR --out DIR2      Synthetic A/B (paper Appendix B, model tokens)
  mple data known-c --kind kmodes --k 2 --m 8 --out DIR    dataset with exactly known C + truth.json
  mple data controlled --kind phrasing --out DIR           generated translation task with exact C
                                                           (truth.json) and its word tokenizer

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
from ..data import (BUNDLED_NAME, CONTROLLED_KINDS, KNOWN_C_KINDS, SYNTHETIC_KINDS, SYNTHETIC_LEVELS, TokenizerPair,
                    dataset_tokenizers, load_dataset, load_tokenizer, make_synthetic, resolve_dataset_path,
                    write_known_c)
from ..data.controlled import ControlledTask, write_controlled
from ..data.reference_agreement import NEAR_COPY_BLEU, format_matrix, near_copy_pairs, reference_matrix
from .argument_types import (non_negative_float, non_negative_int, output_dir, output_file, positive_float,
                             positive_int, probability, seed)


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
    info.add_argument("--near-copy-bleu", type=_bleu_threshold, default=NEAR_COPY_BLEU,
                      help="warn when two of target and references score a corpus BLEU above this "
                           f"(0-100; default {NEAR_COPY_BLEU:g}): one is a near-copy of the other")
    info.add_argument("--json", type=output_file, default=None,
                      help="also write the numbers to this JSON file")
    info.set_defaults(run=run_info)

    synth = sub.add_parser("synth", help="Synthetic A/B: corrupted English -> English (Appendix B)")
    synth.add_argument("kind", choices=SYNTHETIC_KINDS,
                       help="a: replace 50%% of the target's tokens in the source; b: a, then drop 10%% of them")
    synth.add_argument("--from", dest="source", default=BUNDLED_NAME,
                       help="dataset whose targets are used (default: bundled)")
    synth.add_argument("--out", type=output_dir, required=True, help="output dataset directory")
    synth.add_argument("--level", choices=SYNTHETIC_LEVELS, default="token",
                       help="token (default, the paper's): corrupt the model's tokens and store the tokenizer "
                            "with the dataset; word: corrupt whitespace words, plain text")
    synth.add_argument("--tokenizer", default=None,
                       help="token level: the tokenizer the models will use (a saved tokenizer or tokenizer-pair "
                            "directory; of a pair, its target side); default: the one --from carries, else a "
                            "SentencePiece BPE learnt on the training targets")
    synth.add_argument("--vocab-size", type=_spm_vocab_size, default=None,
                       help="pieces of the learnt tokenizer (upper bound, >= 300; default 8000)")
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

    controlled = sub.add_parser("controlled", help="generated translation task whose C is computed exactly")
    controlled.add_argument("--kind", choices=CONTROLLED_KINDS, required=True,
                            help="none (deterministic, C = 0), phrasing (K registers per sentence), insertion "
                                 "(optional particle that shifts the rest), reordering (modifier before or "
                                 "after the noun, per sentence), mixed")
    controlled.add_argument("--out", type=output_dir, required=True, help="output dataset directory")
    controlled.add_argument("--seed", type=seed, default=0)
    controlled.add_argument("--train", type=positive_int, default=4000, help="training pairs (default 4000)")
    controlled.add_argument("--valid", type=positive_int, default=500, help="validation pairs (default 500)")
    controlled.add_argument("--test", type=positive_int, default=500, help="test pairs (default 500)")
    controlled.add_argument("--refs", type=non_negative_int, default=3,
                            help="extra references per valid/test sentence, drawn independently (default 3)")
    controlled.add_argument("--source-words", type=positive_int, default=30,
                            help="content words of the source language (default 30)")
    controlled.add_argument("--min-clause-words", type=positive_int, default=2,
                            help="shortest clause (default 2; a source is two clauses and a conjunction)")
    controlled.add_argument("--max-clause-words", type=positive_int, default=7, help="longest clause (default 7)")
    for option, kinds, default, what in _CONTROLLED_KIND_OPTIONS:
        controlled.add_argument(option, type=_CONTROLLED_OPTION_TYPES[option], default=None,
                                help=f"{what} (kinds {', '.join(kinds)}; default {default:g})")
    controlled.set_defaults(run=run_controlled)


#: Options that only some kinds use: (option, kinds, default, help).
_CONTROLLED_KIND_OPTIONS = (
    ("--registers", ("phrasing", "mixed"), 2, "registers (alternative phrasings) K"),
    ("--shared-fraction", ("phrasing", "mixed"), 0.2, "fraction of content words translated alike in "
                                                     "every register, in [0, 1)"),
    ("--insert-prob", ("insertion", "mixed"), 0.5, "probability of inserting the particle, in (0, 1]"),
    ("--swap-prob", ("reordering", "mixed"), 0.5, "probability of placing every modifier after its noun "
                                                 "(sentence-level), in (0, 1)"),
    ("--modifier-fraction", ("reordering", "mixed"), 0.5, "fraction of content words that are modifiers"),
)
_CONTROLLED_OPTION_TYPES = {"--registers": positive_int, "--shared-fraction": probability,
                            "--insert-prob": probability, "--swap-prob": probability,
                            "--modifier-fraction": probability}


def _bleu_threshold(text: str) -> float:
    value = non_negative_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be a BLEU score in [0, 100], got {text}")
    return value


def _drop_prob(text: str) -> float:
    value = probability(text)
    if value == 1.0:
        raise argparse.ArgumentTypeError("must be below 1 (dropping every source token leaves nothing)")
    return value


def _spm_vocab_size(text: str) -> int:
    value = positive_int(text)
    if value < 300:  # 6 specials + 256 byte pieces + pieces
        raise argparse.ArgumentTypeError(f"must be >= 300 (6 specials and 256 byte pieces are part of it), "
                                         f"got {value}")
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


def _reference_agreement(dataset, threshold: float) -> tuple[dict, list[str], list[str]]:
    """Corpus-BLEU matrix among target and extra references of each split that has them: its JSON
    form by split, the lines to print, and a warning for every pair above ``threshold``."""
    matrices: dict = {}
    lines: list[str] = []
    warnings: list[str] = []
    for name, split in dataset.items():
        matrix = reference_matrix(split)
        if matrix is None:
            continue
        matrices[name] = matrix.to_json()
        covered = ("" if matrix.sentences == len(split) else
                   f" of {len(split):,}, those with every reference")
        lines.append(f"corpus BLEU among the references ({name}, {matrix.sentences:,} sentences{covered}; "
                     f"sacrebleu 13a; row as hypothesis, column as reference):")
        lines.extend("  " + line for line in format_matrix(matrix))
        for first, second, score in near_copy_pairs(matrix, threshold):
            if first == "target":
                pair = f"{second} and the target"
                what = (f"{second} is a near-copy of the target, so multi-reference scores favour the "
                        f"target's wording")
            else:
                pair = f"{first} and {second}"
                what = "one is a near-copy of the other, so they count as one reference twice"
            warnings.append(f"{name}: {pair} have corpus BLEU {score:.1f} (above --near-copy-bleu "
                            f"{threshold:g}): {what}")
    return matrices, lines, warnings


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
    summary["reference_bleu"], lines, summary["warnings"] = _reference_agreement(dataset, args.near_copy_bleu)
    for line in lines:
        print(line)
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json is not None:
        _write_json(args.json, summary)
    return 0


def _synth_tokenizer(args: argparse.Namespace, source_path: Path):
    """The tokenizer of a token-level synthetic dataset: --tokenizer, else the one --from carries,
    else None (make_synthetic learns one)."""
    if args.tokenizer is None:
        carried = dataset_tokenizers(source_path)
        return carried.tgt if carried is not None else None
    path = Path(args.tokenizer)
    try:
        return TokenizerPair.load(path).tgt
    except FileNotFoundError:
        pass
    try:
        return load_tokenizer(path)
    except FileNotFoundError:
        raise ValueError(f"--tokenizer {path}: no saved tokenizer there (expected tokenizer.json, or joint/ "
                         f"or src/ + tgt/ of a tokenizer pair)") from None


def run_synth(args: argparse.Namespace) -> int:
    source_path = resolve_dataset_path(args.source)
    source = load_dataset(source_path)
    if args.level == "word" and args.tokenizer is not None:
        raise ValueError("--tokenizer is used at --level token only (word level corrupts whitespace words)")
    tokenizer = _synth_tokenizer(args, source_path) if args.level == "token" else None
    if args.vocab_size is not None and (tokenizer is not None or args.level == "word"):
        origin = "--level word" if args.level == "word" else \
            "--tokenizer" if args.tokenizer is not None else f"the tokenizer {source_path / 'tokenizer'}"
        print(f"warning: --vocab-size {args.vocab_size} is not used: {origin} decides the vocabulary",
              file=sys.stderr)
    synthetic = make_synthetic(source, args.kind, seed=args.seed, replace_prob=args.replace_prob,
                               drop_prob=args.drop_prob, level=args.level, tokenizer=tokenizer,
                               vocab_size=args.vocab_size or 8000)
    synthetic.write(args.out)
    # Counted as the models will read the dataset: with its own tokenizers at token level.
    pair = synthetic.tokenizers
    unit = f"{pair.tgt.kind} tokens" if pair is not None else "words"
    for name, split in synthetic.dataset.items():
        if pair is not None:
            sources, targets = pair.src.encode_batch(split.src), pair.tgt.encode_batch(split.tgt)
        else:
            sources, targets = [s.split() for s in split.src], [t.split() for t in split.tgt]
        n_target, n_source = sum(map(len, targets)), sum(map(len, sources))
        line = f"{name}: {len(split):,} pairs, {n_target:,} target {unit}, {n_source:,} source {unit}"
        if args.kind == "a":
            changed = sum(a != b for s, t in zip(sources, targets) for a, b in zip(s, t))
            line += f", {100 * changed / max(n_target, 1):.2f}% replaced"
        else:
            line += f", {100 * (1 - n_source / max(n_target, 1)):.2f}% dropped"
        print(line)
    where = f" and its tokenizer ({pair.tgt.kind}, {pair.tgt.vocab_size:,} tokens) in {args.out / 'tokenizer'}" \
        if pair is not None else ""
    print(f"wrote Synthetic {args.kind.upper()} ({args.level} level) to {args.out}{where}", file=sys.stderr)
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


def run_controlled(args: argparse.Namespace) -> int:
    warnings = []
    values = {}
    for option, kinds, default, _ in _CONTROLLED_KIND_OPTIONS:
        given = getattr(args, option[2:].replace("-", "_"))
        if given is not None and args.kind not in kinds:
            warnings.append(f"{option} {given:g} is not used by --kind {args.kind} (only by {', '.join(kinds)})")
        values[option[2:].replace("-", "_")] = default if given is None else given
    task = ControlledTask(args.kind, n_source_words=args.source_words, registers=values["registers"],
                          shared_fraction=values["shared_fraction"], insert_prob=values["insert_prob"],
                          swap_prob=values["swap_prob"], modifier_fraction=values["modifier_fraction"],
                          min_clause=args.min_clause_words,
                          max_clause=args.max_clause_words, seed=args.seed)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    truth = write_controlled(args.out, task, n_train=args.train, n_valid=args.valid, n_test=args.test,
                             n_refs=args.refs, warnings=warnings)
    print(f"kind {truth['kind']}: exact C (length terms included), bits; per token = per expected target word")
    print(f"{'split':<8}{'sentences':>10}{'C bits/token':>14}{'C bits/sentence':>17}{'targets/source':>16}")
    for name, row in truth["splits"].items():
        print(f"{name:<8}{row['sentences']:>10,}{row['c_true_bits_per_token']:>14.6f}"
              f"{row['c_true_bits_per_sentence']:>17.6f}{row['targets_per_source_mean']:>16.2f}")
    print(f"wrote {args.out}, its word tokenizer {args.out / 'tokenizer'} and {args.out / 'truth.json'}",
          file=sys.stderr)
    return 0
