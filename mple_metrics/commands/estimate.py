"""``mple estimate tc``: the conditional total correlation C of a dataset (Theorem 1, Table 1).

  mple estimate tc --data DIR|bundled --out OUT_DIR [--tokenizer-kind spm|word] [--size tiny]
                   [--seeds 1] [--max-epochs N | --budget-steps N]        # trains an MLE NAT and AT
  mple estimate tc --nat RUN_OR_CKPT --at RUN_OR_CKPT --data DIR --out OUT_DIR   # given models
  mple estimate tc --nat-scores FILE --at-scores FILE --out OUT_DIR [--data DIR]  # any toolkit

Ĉ per sentence = NLL_NAT(Y|X) - NLL_AT(Y|X) in bits on the evaluation split (--split, default
test), both models of one family and tokenizer trained by plain MLE (no label smoothing) and
early-stopped on the valid split.  Writes OUT_DIR/tc.json, per_sentence.tsv and c_hist.png, and
prints a short table.  Each option belongs to one or two of the three forms; given to another it is
refused, not ignored.  See docs/estimators.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import argument_types
from .estimate_mple import register_mple


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("estimate", help="estimators of the paper: the conditional total correlation C",
                              description="Estimators of Huang et al. (ICML 2022).")
    sub = p.add_subparsers(dest="estimator", metavar="ESTIMATOR", required=True)
    tc = sub.add_parser("tc", help="conditional total correlation C (bits), with bootstrap intervals",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tc.add_argument("--out", required=True, type=argument_types.output_dir, help="output directory")
    tc.add_argument("--data", default=None,
                    help="dataset directory or 'bundled' (needed to train or to score given models)")
    tc.add_argument("--split", default=None, help="evaluation split of --data (default: test)")
    tc.add_argument("--length-terms", choices=("include", "exclude"), default="include",
                    help="include each model's length term (AT </s>, NAT length predictor) or none "
                         "(default: include)")
    train = tc.add_argument_group("training both models (the default form)")
    train.add_argument("--tokenizer-kind", choices=("spm", "word"), default=None,
                       help="spm: SentencePiece with byte fallback (no <unk>; the default); word: whole "
                            "words, <unk> outside the vocabulary (for the known-C datasets)")
    train.add_argument("--vocab-size", type=argument_types.positive_int, default=None,
                       help="tokenizer vocabulary size (default: 8000)")
    train.add_argument("--size", choices=("tiny", "small", "base"), default=None, help="model size (default: tiny)")
    train.add_argument("--seeds", type=argument_types.positive_int, default=None,
                       help="independent training seeds 1..N (default: 1)")
    train.add_argument("--max-epochs", type=argument_types.positive_int, default=None,
                       help="epoch cap of each model (default: 30; early stopping usually ends sooner)")
    train.add_argument("--budget-steps", type=argument_types.positive_int, default=None,
                       help="update cap of each model instead of an epoch cap")
    train.add_argument("--patience", type=argument_types.positive_int, default=None,
                       help="early stop after this many validations without a better NLL (default: 3)")
    train.add_argument("--min-delta", type=argument_types.non_negative_float, default=None,
                       help="bits/token an epoch must gain to count as better for --patience (default: 0.001)")
    train.add_argument("--lr", type=argument_types.positive_float, default=None,
                       help="peak learning rate (default: 2e-3 tiny, 1e-3 small, 5e-4 base)")
    train.add_argument("--max-tokens", type=argument_types.positive_int, default=None,
                       help="padded tokens per batch (default: derived from the data size)")
    models = tc.add_argument_group("given models")
    models.add_argument("--nat", type=argument_types.existing_path, default=None, help="NAT run or checkpoint")
    models.add_argument("--at", type=argument_types.existing_path, default=None, help="AT run or checkpoint")
    models.add_argument("--at-beam", type=argument_types.positive_int, default=None,
                        help="AT beam for ΔBLEU (default: 5; the NAT decodes by argmax)")
    models.add_argument("--no-bleu", dest="bleu", action="store_false", default=None,
                        help="skip decoding and ΔBLEU")
    scores = tc.add_argument_group("given per-sentence scores")
    scores.add_argument("--nat-scores", type=argument_types.input_file, default=None,
                        help="NAT NLL per sentence, one per line, or fairseq --score-reference output")
    scores.add_argument("--at-scores", type=argument_types.input_file, default=None, help="AT NLL per sentence")
    scores.add_argument("--scores-unit", choices=("bits", "nats"), default=None,
                        help="log base of the score files (default: bits)")
    scores.add_argument("--scores-sign", choices=("nll", "logprob"), default=None,
                        help="plain files hold NLLs (default) or log-probabilities")
    scores.add_argument("--tokens", type=argument_types.input_file, default=None,
                        help="target tokens per sentence, one integer per line (default: the fairseq "
                             "files' positions without </s>, else whitespace words of --data's targets)")
    tc.add_argument("--resamples", type=argument_types.bootstrap_resamples, default=1000,
                    help="bootstrap resamples (at least 100; default: 1000)")
    tc.add_argument("--bootstrap-seed", type=argument_types.seed, default=0)
    tc.add_argument("--device", type=argument_types.device, default=None,
                    help="where models train and score (default: cpu)")
    tc.add_argument("--quiet", action="store_true", help="no progress bars")
    tc.set_defaults(run=run_tc)
    from .estimate_correlate import register_correlate
    register_correlate(sub)
    register_mple(sub)


#: (attribute, option) of the options that only the training form uses (default None: "not given").
TRAINING_OPTIONS: tuple[tuple[str, str], ...] = (
    ("tokenizer_kind", "--tokenizer-kind"), ("vocab_size", "--vocab-size"), ("size", "--size"),
    ("seeds", "--seeds"), ("max_epochs", "--max-epochs"), ("budget_steps", "--budget-steps"),
    ("patience", "--patience"), ("min_delta", "--min-delta"), ("lr", "--lr"), ("max_tokens", "--max-tokens"))
#: Options that only the score-file form uses.
SCORE_FILE_OPTIONS: tuple[tuple[str, str], ...] = (
    ("scores_unit", "--scores-unit"), ("scores_sign", "--scores-sign"), ("tokens", "--tokens"))
#: Options of the forms that run models here (training, --nat/--at), not of score files.
MODEL_OPTIONS: tuple[tuple[str, str], ...] = (("at_beam", "--at-beam"), ("bleu", "--no-bleu"),
                                              ("device", "--device"))
#: Defaults of the options above that are not training settings (those are TCTrainingSettings').
DEFAULTS: dict[str, object] = {"seeds": 1, "at_beam": 5, "bleu": True, "device": "cpu", "scores_unit": "bits",
                               "split": "test"}


def _refuse_options_of_other_forms(args: argparse.Namespace, form: str) -> None:
    """Options another form uses are refused, naming the option and why: silently ignored, they
    would make a user believe the estimate followed them."""
    why = {"models": "--nat/--at give trained models",
           "scores": "--nat-scores/--at-scores give scores computed elsewhere",
           "train": "the models are trained and scored here"}[form]
    given = [(options, option) for options in (TRAINING_OPTIONS, SCORE_FILE_OPTIONS, MODEL_OPTIONS)
             for name, option in options if getattr(args, name) is not None]
    for options, option in given:
        if options is TRAINING_OPTIONS and form != "train":
            raise ValueError(f"{option} only applies when training both models (the form without --nat/--at "
                             f"or --nat-scores/--at-scores); {why}")
        if options is SCORE_FILE_OPTIONS and form != "scores":
            raise ValueError(f"{option} only applies to --nat-scores/--at-scores files; {why}")
        if options is MODEL_OPTIONS and form == "scores":
            raise ValueError(f"{option} only applies when models are trained or scored here; {why}")
    if form != "scores" and args.at_beam is not None and args.bleu is False:
        raise ValueError("--at-beam only applies to the decoding for ΔBLEU, which --no-bleu skips")
    if form == "scores" and args.split is not None and args.data is None:
        raise ValueError("--split only applies with --data (the split the score files cover); give --data")


def _form(args: argparse.Namespace) -> str:
    """Which form the arguments ask for; refuses what does not fit it, then fills in the defaults."""
    given_models = args.nat is not None or args.at is not None
    given_scores = args.nat_scores is not None or args.at_scores is not None
    if given_models and given_scores:
        raise ValueError("--nat/--at and --nat-scores/--at-scores are alternatives; give one pair")
    if given_models:
        if args.nat is None or args.at is None:
            raise ValueError("--nat and --at go together: give both checkpoints")
        if args.data is None:
            raise ValueError("--data is required with --nat/--at (the split to score)")
        form = "models"
    elif given_scores:
        if args.nat_scores is None or args.at_scores is None:
            raise ValueError("--nat-scores and --at-scores go together: give both files")
        form = "scores"
    elif args.data is None:
        raise ValueError("--data is required: the dataset to train on (or give --nat/--at or "
                         "--nat-scores/--at-scores)")
    else:
        form = "train"
    _refuse_options_of_other_forms(args, form)
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return form


def _read_tokens(path: Path, count: int) -> np.ndarray:
    from ..data import read_lines

    lines = read_lines(path)
    if len(lines) != count:
        raise ValueError(f"--tokens {path} has {len(lines)} lines but the score files have {count}")
    try:
        values = np.array([int(line) for line in lines], dtype=np.int64)
    except ValueError:
        raise ValueError(f"--tokens {path}: expected one integer per line") from None
    if (values < 1).any():
        raise ValueError(f"--tokens {path}:{int(np.argmax(values < 1)) + 1}: token counts must be >= 1")
    return values


def _text_unk_rate(targets: tuple[str, ...]):
    """``<unk>`` among the whitespace tokens of fairseq ``T-`` lines (printed ``<unk>``, or
    ``<<unk>>`` when fairseq escapes it)."""
    from ..data import UnkRate

    tokens = [t for line in targets for t in line.split()]
    return UnkRate(unk_tokens=sum(t in ("<unk>", "<<unk>>") for t in tokens), tokens=len(tokens))


def _from_scores(args: argparse.Namespace):
    from ..data import load_dataset, resolve_dataset_path, unk_rate_warning
    from ..estimators import read_score_file
    from ..estimators.score_files import check_same_targets
    from ..estimators.tc_pipeline import estimate_tc_from_scores

    nat = read_score_file(args.nat_scores, unit=args.scores_unit, sign=args.scores_sign)
    at = read_score_file(args.at_scores, unit=args.scores_unit, sign=args.scores_sign)
    check_same_targets(nat, at, ("--nat-scores", "--at-scores"))
    sources = references = None
    if args.data is not None:
        split = load_dataset(resolve_dataset_path(args.data), splits=(args.split,))[args.split]
        if len(split) != len(nat.nll_bits):
            raise ValueError(f"--data split {args.split!r} has {len(split)} sentences but the score files "
                             f"have {len(nat.nll_bits)}")
        sources, references = split.src, split.tgt
    if args.tokens is not None:
        tokens, origin = _read_tokens(args.tokens, len(nat.nll_bits)), f"--tokens {args.tokens}"
    elif at.n_target_tokens is not None:
        # The T target tokens: fairseq's positions less the final </s> (the same on both sides).
        tokens, origin = at.n_target_tokens, "fairseq positions without </s>"
        empty = np.flatnonzero(tokens < 1)
        if empty.size:
            raise ValueError(f"--at-scores {args.at_scores}: sentence id {int(empty[0])} scores </s> only (an "
                             f"empty target); per-token values need >= 1 target token (give --tokens FILE)")
    elif references is not None:
        tokens = np.array([max(len(r.split()), 1) for r in references], dtype=np.int64)
        origin = f"whitespace words of the {args.split} targets"
    else:
        raise ValueError("per-token values need token counts: give --tokens FILE or --data DIR")
    extra = {"scores": {"nat": str(args.nat_scores), "at": str(args.at_scores),
                        "unit": args.scores_unit, "tokens": origin}, "warnings": []}
    if at.targets is not None:
        rate = _text_unk_rate(at.targets)
        extra["target_unk"] = rate.to_dict()
        message = unk_rate_warning(rate, "the score files' T- target tokens")
        if message:
            extra["warnings"].append(message)
    return estimate_tc_from_scores(nat.nll_bits, at.nll_bits, tokens, args.out, sources=sources,
                                   references=references, length_terms=args.length_terms,
                                   n_resamples=args.resamples, bootstrap_seed=args.bootstrap_seed, extra=extra)


def _check_carried_tokenizer(data: str, given: dict) -> None:
    """A dataset that carries its tokenizer (token-level Synthetic A/B) is written in its pieces:
    the models must use it, so a tokenizer option would be ignored; refuse it instead."""
    from ..data import dataset_tokenizers, resolve_dataset_path

    named = [option for name, option in TRAINING_OPTIONS if name in ("tokenizer_kind", "vocab_size") and name in given]
    if named and dataset_tokenizers(resolve_dataset_path(data)) is not None:
        raise ValueError(f"{named[0]}: --data {data} carries its own tokenizer (its text is written in that "
                         f"tokenizer's pieces), which both models use; leave out {' and '.join(named)}")


def run_tc(args: argparse.Namespace) -> int:
    from ..estimators import format_tc_table
    from ..estimators.bootstrap import interval_warning
    from ..estimators.tc_pipeline import estimate_tc_by_training, estimate_tc_with_models
    from ..estimators.tc_training import TCTrainingSettings

    form = _form(args)
    if form == "scores":
        report = _from_scores(args)
    elif form == "models":
        report = estimate_tc_with_models(args.nat, args.at, args.data, args.out, split=args.split,
                                         length_terms=args.length_terms, device=args.device,
                                         at_beam=args.at_beam, bleu=args.bleu, n_resamples=args.resamples,
                                         bootstrap_seed=args.bootstrap_seed)
    else:
        # Options left out take TCTrainingSettings' defaults (spm tokens, tiny, 30 epochs, patience 3).
        given = {name: getattr(args, name) for name, _ in TRAINING_OPTIONS
                 if name != "seeds" and getattr(args, name) is not None}
        _check_carried_tokenizer(args.data, given)
        settings = TCTrainingSettings(data=args.data, out=str(args.out), device=args.device, quiet=args.quiet,
                                      **given)
        report = estimate_tc_by_training(settings, seeds=range(1, args.seeds + 1), split=args.split,
                                         length_terms=args.length_terms, at_beam=args.at_beam,
                                         bleu=args.bleu, n_resamples=args.resamples,
                                         bootstrap_seed=args.bootstrap_seed)
    extra = report.extra
    unk = extra.get("target_unk")
    rows = {"BLEU AT (0-100)": extra.get("bleu_at"), "BLEU NAT (0-100)": extra.get("bleu_nat"),
            "ΔBLEU = BLEU_AT - BLEU_NAT": extra.get("delta_bleu"), "converged": extra.get("converged"),
            "<unk> share of the target tokens": (f"{unk['rate']:.2%} ({unk['unk_tokens']} of {unk['tokens']})"
                                                 if unk else None)}
    print(format_tc_table(report.estimate, {k: v for k, v in rows.items() if v is not None}))
    print(f"wrote {', '.join(str(p) for p in report.files.values())}")
    small_sample = interval_warning(report.estimate.n_sentences)
    for warning in [*extra.get("warnings", []), *([small_sample] if small_sample else [])]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
