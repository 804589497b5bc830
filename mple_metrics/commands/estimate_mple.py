"""``mple estimate mple``: L_NAT, L_input, L_target and L_MPLE of a NAT checkpoint (Eq. 8-15).

  mple estimate mple --nat runs/nat-axe5 --data bundled --split valid --out axe5.json
  mple estimate mple --nat runs/nat-glat --input-predictor runs/nat-kd --samples 4 --out glat.json
  mple estimate mple --nat runs/nat-raw --targets raw,kd,axe:1,axe:5,oaxe --kd data/kd --out screen.json

The method and its settings default to what the checkpoint was trained with (its config);
--target/--input score it under another proxy.  --targets is the screening mode: one fixed
checkpoint scored under several proxy targets, ranked by L_MPLE (theta fixed, Q varies: not the
same as training with each).  --data defaults to the data the checkpoint was trained on; warnings
(another dataset, a non-vanilla input predictor, few sentences, many <unk>) go to stderr and into
the JSON's "warnings" list.  See docs/estimators.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..proxies import INPUT_NAMES, TARGET_NAMES
from . import argument_types


def register_mple(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mple", help="L_NAT, L_input, L_target, L_MPLE of a NAT checkpoint, with BLEU",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nat", required=True, type=argument_types.existing_path, help="NAT run or checkpoint")
    p.add_argument("--data", default=None,
                   help="dataset directory or 'bundled' (default: the data the checkpoint was trained on)")
    p.add_argument("--split", default="valid", help="split with extra references (default: valid)")
    p.add_argument("--target", default=None, choices=TARGET_NAMES,
                   help="proxy target to score (default: the checkpoint's)")
    p.add_argument("--input", default=None,
                   choices=INPUT_NAMES,
                   help="proxy input to score (default: the checkpoint's)")
    p.add_argument("--kd", action="append", default=None, metavar="DIR",
                   help="KD data for --target kd/dynamic-kd (default: the checkpoint's)")
    p.add_argument("--targets", default=None, metavar="LIST",
                   help="screening: score several proxy targets, e.g. raw,kd,axe:1,axe:5,oaxe")
    p.add_argument("--input-predictor", type=argument_types.existing_path, default=None, metavar="CKPT",
                   help="frozen vanilla NAT of the input predictor (L_input, Input Sampling BLEU)")
    p.add_argument("--beta", type=argument_types.non_negative_float, default=0.2, help="beta of L_target (0.2)")
    p.add_argument("--samples", type=argument_types.positive_int, default=4,
                   help="draws of Z per sentence for L_NAT and L_input (default 4)")
    p.add_argument("--seed", type=argument_types.seed, default=0, help="seed of the draws and the bootstrap")
    p.add_argument("--count", choices=("all", "hidden-only"), default="all",
                   help="L_NAT per position of T (default; revealed count with log-prob 0) or per hidden one")
    p.add_argument("--target-refs", choices=("extra", "all"), default="extra",
                   help="references of L_target: the extra ones (default) or all, the target included")
    p.add_argument("--bleu-tokenize", choices=("13a", "ids"), default="13a")
    p.add_argument("--resamples", type=argument_types.bootstrap_resamples, default=1000,
                   help="bootstrap resamples (at least 100; default: 1000)")
    p.add_argument("--no-bleu", dest="bleu", action="store_false", help="skip decoding (no corpus BLEU)")
    p.add_argument("--max-tokens", type=argument_types.positive_int, default=4096)
    p.add_argument("--device", type=argument_types.device, default="cpu")
    p.add_argument("--out", required=True, type=argument_types.output_file, help="result JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run_mple)


def _table(results: list[dict]) -> str:
    lines = [f"{'method':<24}{'L_NAT':>9}{'L_input':>9}{'L_target':>10}{'L_MPLE':>9}{'BLEU':>8}{'BLEU(IS)':>9}",
             f"{'':<24}{'bits/tok':>9}{'bits/tok':>9}{'β·BLEU':>10}{'':>9}{'':>8}{'':>9}"]
    for r in results:
        sample = "-" if r["bleu_sample"] is None else f"{r['bleu_sample']:.2f}"
        default = "-" if r["bleu_default"] is None else f"{r['bleu_default']:.2f}"
        lines.append(f"{r['method']:<24}{r['l_nat_bits_per_token']:>9.3f}{r['l_input_bits_per_token']:>9.3f}"
                     f"{r['l_target']:>10.3f}{r['l_mple']:>9.3f}{default:>8}{sample:>9}")
    return "\n".join(lines)


def run_mple(args: argparse.Namespace) -> int:
    from ..atomic_write import atomic_write_text
    from ..estimators.proxy_metrics import (ProxyMetricSettings, check_kd_use, parse_screen_targets, proxy_metrics,
                                            screen_targets)
    from ..train import resolve_device

    if args.targets and args.target:
        raise ValueError("--targets (screening) and --target exclude each other")
    check_kd_use(args.target, args.kd)
    settings = ProxyMetricSettings(split=args.split, target=args.target, input=args.input, beta=args.beta,
                                   samples=args.samples, seed=args.seed, count=args.count,
                                   target_refs=args.target_refs, bleu_tokenize=args.bleu_tokenize,
                                   n_resamples=args.resamples, max_tokens=args.max_tokens, decode_bleu=args.bleu)
    device = resolve_device(args.device)
    if args.targets:
        report = screen_targets(args.nat, args.data, parse_screen_targets(args.targets), settings, args.kd,
                                args.input_predictor, device)
        rows = report["results"]
    else:
        overrides = {"kd": list(args.kd)} if args.kd else None
        report = proxy_metrics(args.nat, args.data, settings, args.input_predictor, device, overrides=overrides)
        rows = [report]
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(_table(rows))
    if args.targets:
        print("ranking by L_MPLE (one fixed checkpoint, Q varies; not the same as training with each): "
              + " < ".join(report["ranking"]))
    elif report["ci95"] is None:
        print(f"{report['signature']}  L_MPLE: no interval ({report['n_sentences_l_target']} sentence)")
    else:
        ci = report["ci95"]["l_mple"]
        print(f"{report['signature']}  L_MPLE 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]", file=sys.stdout)
    if not args.targets:
        refs = report["l_target_references"]
        print(f"L_target against {refs['used']}: {refs['per_sentence_mean']:.2g} per sentence")
    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
    return 0
