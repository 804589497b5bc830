"""``mple estimate tc``: the conditional total correlation C of a dataset (Theorem 1, Table 1).

  mple estimate tc --data DIR|bundled --out OUT_DIR [--tokenizer-kind word|spm] [--size tiny]
                   [--seeds 1] [--max-epochs N | --budget-steps N]        # trains an MLE NAT and AT
  mple estimate tc --nat RUN_OR_CKPT --at RUN_OR_CKPT --data DIR --out OUT_DIR   # given models
  mple estimate tc --nat-scores FILE --at-scores FILE --out OUT_DIR [--data DIR]  # any toolkit

Ĉ per sentence = NLL_NAT(Y|X) - NLL_AT(Y|X) in bits on the evaluation split (--split, default
test), both models of one family and tokenizer trained by plain MLE (no label smoothing) and
early-stopped on the valid split.  Writes OUT_DIR/tc.json, per_sentence.tsv and c_hist.png, and
prints a short table.  See docs/estimators.md.
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
    tc.add_argument("--split", default="test", help="evaluation split (default: test)")
    tc.add_argument("--length-terms", choices=("include", "exclude"), default="include",
                    help="include each model's length term (AT </s>, NAT length predictor) or none "
                         "(default: include)")
    train = tc.add_argument_group("training both models (the default form)")
    train.add_argument("--tokenizer-kind", choices=("word", "spm"), default="word")
    train.add_argument("--vocab-size", type=argument_types.positive_int, default=8000)
    train.add_argument("--size", choices=("tiny", "small", "base"), default="tiny")
    train.add_argument("--seeds", type=argument_types.positive_int, default=1,
                       help="independent training seeds 1..N (default: 1)")
    train.add_argument("--max-epochs", type=argument_types.positive_int, default=None,
                       help="epoch cap of each model (default: 30; early stopping usually ends sooner)")
    train.add_argument("--budget-steps", type=argument_types.positive_int, default=None,
                       help="update cap of each model instead of an epoch cap")
    train.add_argument("--patience", type=argument_types.positive_int, default=3,
                       help="early stop after this many validations without a better NLL (default: 3)")
    train.add_argument("--lr", type=argument_types.positive_float, default=None,
                       help="peak learning rate (default: 2e-3 tiny, 1e-3 small, 5e-4 base)")
    train.add_argument("--max-tokens", type=argument_types.positive_int, default=None,
                       help="padded tokens per batch (default: derived from the data size)")
    models = tc.add_argument_group("given models")
    models.add_argument("--nat", type=argument_types.existing_path, default=None, help="NAT run or checkpoint")
    models.add_argument("--at", type=argument_types.existing_path, default=None, help="AT run or checkpoint")
    models.add_argument("--at-beam", type=argument_types.positive_int, default=5,
                        help="AT beam for ΔBLEU (default: 5; the NAT decodes by argmax)")
    models.add_argument("--no-bleu", dest="bleu", action="store_false", help="skip decoding and ΔBLEU")
    scores = tc.add_argument_group("given per-sentence scores")
    scores.add_argument("--nat-scores", type=argument_types.input_file, default=None,
                        help="NAT NLL per sentence, one per line, or fairseq --score-reference output")
    scores.add_argument("--at-scores", type=argument_types.input_file, default=None, help="AT NLL per sentence")
    scores.add_argument("--scores-unit", choices=("bits", "nats"), default="bits")
    scores.add_argument("--scores-sign", choices=("nll", "logprob"), default=None,
                        help="plain files hold NLLs (default) or log-probabilities")
    scores.add_argument("--tokens", type=argument_types.input_file, default=None,
                        help="target tokens per sentence, one integer per line (default: from the "
                             "fairseq files, else whitespace words of --data's targets)")
    tc.add_argument("--resamples", type=argument_types.positive_int, default=1000,
                    help="bootstrap resamples (default: 1000)")
    tc.add_argument("--bootstrap-seed", type=argument_types.seed, default=0)
    tc.add_argument("--device", type=argument_types.device, default="cpu")
    tc.add_argument("--quiet", action="store_true", help="no progress bars")
    tc.set_defaults(run=run_tc)
    from .estimate_correlate import register_correlate
    register_correlate(sub)
    register_mple(sub)


def _form(args: argparse.Namespace) -> str:
    given_models = args.nat is not None or args.at is not None
    given_scores = args.nat_scores is not None or args.at_scores is not None
    if given_models and given_scores:
        raise ValueError("--nat/--at and --nat-scores/--at-scores are alternatives; give one pair")
    if given_models:
        if args.nat is None or args.at is None:
            raise ValueError("--nat and --at go together: give both checkpoints")
        if args.data is None:
            raise ValueError("--data is required with --nat/--at (the split to score)")
        return "models"
    if given_scores:
        if args.nat_scores is None or args.at_scores is None:
            raise ValueError("--nat-scores and --at-scores go together: give both files")
        return "scores"
    if args.data is None:
        raise ValueError("--data is required: the dataset to train on (or give --nat/--at or "
                         "--nat-scores/--at-scores)")
    return "train"


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


def _from_scores(args: argparse.Namespace):
    from ..data import load_dataset, resolve_dataset_path
    from ..estimators import read_score_file
    from ..estimators.tc_pipeline import estimate_tc_from_scores

    nat = read_score_file(args.nat_scores, unit=args.scores_unit, sign=args.scores_sign)
    at = read_score_file(args.at_scores, unit=args.scores_unit, sign=args.scores_sign)
    if len(nat.nll_bits) != len(at.nll_bits):
        raise ValueError(f"--nat-scores has {len(nat.nll_bits)} sentences but --at-scores has {len(at.nll_bits)}")
    sources = references = None
    if args.data is not None:
        split = load_dataset(resolve_dataset_path(args.data), splits=(args.split,))[args.split]
        if len(split) != len(nat.nll_bits):
            raise ValueError(f"--data split {args.split!r} has {len(split)} sentences but the score files "
                             f"have {len(nat.nll_bits)}")
        sources, references = split.src, split.tgt
    if args.tokens is not None:
        tokens, origin = _read_tokens(args.tokens, len(nat.nll_bits)), f"--tokens {args.tokens}"
    elif at.n_positions is not None:
        # fairseq's positional scores include </s>: the same count on both sides.
        tokens, origin = np.asarray(at.n_positions, dtype=np.int64), "fairseq positions (with </s>)"
    elif references is not None:
        tokens = np.array([max(len(r.split()), 1) for r in references], dtype=np.int64)
        origin = f"whitespace words of the {args.split} targets"
    else:
        raise ValueError("per-token values need token counts: give --tokens FILE or --data DIR")
    return estimate_tc_from_scores(nat.nll_bits, at.nll_bits, tokens, args.out, sources=sources,
                                   references=references, length_terms=args.length_terms,
                                   n_resamples=args.resamples, bootstrap_seed=args.bootstrap_seed,
                                   extra={"scores": {"nat": str(args.nat_scores), "at": str(args.at_scores),
                                                     "unit": args.scores_unit, "tokens": origin}})


def run_tc(args: argparse.Namespace) -> int:
    from ..estimators import format_tc_table
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
        defaults = TCTrainingSettings(data=args.data, out=str(args.out))
        settings = TCTrainingSettings(
            data=args.data, out=str(args.out), tokenizer_kind=args.tokenizer_kind,
            vocab_size=args.vocab_size, size=args.size,
            max_epochs=args.max_epochs if args.max_epochs is not None else defaults.max_epochs,
            budget_steps=args.budget_steps or 0, patience=args.patience,
            lr=args.lr, max_tokens=args.max_tokens,
            device=args.device, quiet=args.quiet)
        report = estimate_tc_by_training(settings, seeds=range(1, args.seeds + 1), split=args.split,
                                         length_terms=args.length_terms, at_beam=args.at_beam,
                                         bleu=args.bleu, n_resamples=args.resamples,
                                         bootstrap_seed=args.bootstrap_seed)
    extra = report.extra
    rows = {"BLEU AT (0-100)": extra.get("bleu_at"), "BLEU NAT (0-100)": extra.get("bleu_nat"),
            "ΔBLEU = BLEU_AT - BLEU_NAT": extra.get("delta_bleu"), "converged": extra.get("converged")}
    print(format_tc_table(report.estimate, {k: v for k, v in rows.items() if v is not None}))
    print(f"wrote {', '.join(str(p) for p in report.files.values())}")
    if extra.get("converged") is False:
        print(f"warning: the estimate has not converged: {extra.get('convergence_note')}; train longer "
              "(--max-epochs/--budget-steps) before trusting it", file=sys.stderr)
    return 0
