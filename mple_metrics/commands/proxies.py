"""``mple proxies``: tools for the proxy distributions of the paper (Sec. 3, Appendices E, F).

  mple proxies tune-gamma --kd KD_DIR [--kd KD_DIR ...] --out gamma.json [--split valid]
                          [--beta 0.2] [--range 1 3] [--step 0.1]

``tune-gamma`` searches dynamic KD's candidate weights γ (one per teacher in --kd order, then the raw
target) the way Appendix F does, with BLEU only and no model: per sentence, T = argmin over the
candidates Γ_k of L'_target(Γ_k) = -β Σ_m γ_m S(Γ_m, Γ_k) (Eq. 21, m = k included), scored by the real
L_target = -β · mean sentence BLEU of T against the split's references (Eq. 14).  --kd takes KD
dataset directories (mple distill) or KD candidate directories; all must distill the same data.
Sentence BLEU is sacrebleu's (13a, 0-100), computed once by the kernels.  See docs/proxies.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .argument_types import non_negative_float, output_file, positive_float


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("proxies", help="proxy distributions: tune dynamic KD's weights γ",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="proxies_command", metavar="ACTION", required=True)
    tune = sub.add_parser("tune-gamma", help="search dynamic KD's candidate weights γ on a multi-reference "
                                             "split (Appendix F; BLEU only)",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tune.add_argument("--kd", action="append", required=True, type=_kd_directory, metavar="DIR",
                      help="a KD dataset directory or a KD candidate directory (repeat for more teachers; "
                           "the raw target is always the last candidate)")
    tune.add_argument("--split", default="valid", help="the multi-reference split to tune on (default: valid)")
    tune.add_argument("--beta", type=positive_float, default=0.2, help="β of Eq. 14 and 21 (default 0.2)")
    tune.add_argument("--range", nargs=2, type=non_negative_float, default=[1.0, 3.0], metavar=("LOW", "HIGH"),
                      action=_GammaRange, help="interval each weight is searched in (default: 1 3)")
    tune.add_argument("--step", type=positive_float, default=0.1, help="grid step of the weights (default 0.1)")
    tune.add_argument("--references", choices=("all", "extra"), default="extra",
                      help="references L_target is measured against: extra (the extra references only; default: "
                           "independent of the raw candidate) or all (raw target + extra references)")
    tune.add_argument("--search", choices=("auto", "coordinate", "exhaustive"), default="auto",
                      help="coordinate descent from all ones, every grid point, or auto (every grid point "
                           "when that is cheap, else coordinate descent; default)")
    tune.add_argument("--out", type=output_file, required=True, help="JSON file to write the results to")
    tune.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    tune.set_defaults(run=run_tune_gamma)


def _kd_directory(text: str) -> Path:
    """A KD dataset directory or a KD candidate directory (checked, not yet read)."""
    from ..data import kd_dataset_dirs

    try:
        kd_dataset_dirs(text)
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return Path(text)


class _GammaRange(argparse.Action):
    """``--range LOW HIGH``: both checked by the type, then LOW <= HIGH."""

    def __call__(self, parser, namespace, values, option_string=None):
        low, high = values
        if low > high:
            parser.error(f"argument {option_string}: must be LOW HIGH with LOW <= HIGH, got {low:g} {high:g}")
        setattr(namespace, self.dest, [low, high])


def format_gamma_table(report: dict) -> str:
    """The terminal table of a ``tune-gamma`` report (:meth:`GammaTuning.to_dict`)."""
    beta = report["beta"]
    lines = [f"split {report['split']}: {report['sentences_scored']} sentences, {len(report['candidates'])} "
             f"candidates, {report['references_per_sentence_mean']:.2f} references per sentence "
             f"({'raw target + extra' if report['references'] == 'all' else 'extra only'}), β = {beta:g}",
             f"{'candidate':<24}{'γ best':>8}{'chosen':>9}{'chosen γ=1':>12}{'BLEU alone':>12}"
             f"{'L_target alone':>16}"]
    for c in report["candidates"]:
        lines.append(f"{c['name'][:23]:<24}{c['gamma']:>8.2f}{100 * c['selection_frequency']:>8.1f}%"
                     f"{100 * c['selection_frequency_all_ones']:>11.1f}%{c['mean_bleu_vs_references']:>12.2f}"
                     f"{c['l_target_alone']:>16.3f}")
    lines.append(f"{'selection':<32}{'mean BLEU':>12}{'L_target':>12}")
    best_gamma = ", ".join(f"{g:g}" for g in report["best"]["gamma"])
    for label, row in ((f"best γ = [{best_gamma}]", report["best"]), ("γ = all ones", report["all_ones"]),
                       ("oracle (bound)", report["oracle"])):
        lines.append(f"{label[:31]:<32}{row['mean_bleu']:>12.2f}{row['l_target']:>12.3f}")
    search = report["search"]
    how = ("every grid point" if search["method"] == "exhaustive"
           else f"coordinate descent from {search['start'][0]:g}, {search['sweeps']} sweeps")
    lines.append(f"search: {how}, {search['evaluations']:,} weight vectors, γ in [{search['range'][0]:g}, "
                 f"{search['range'][1]:g}] step {search['step']:g} ({search['grid_values']} values)")
    lines.append("BLEU: sentence BLEU in points (0-100) against each reference, averaged; L_target in "
                 "BLEU×β units (-β × mean BLEU; lower is better); chosen: share of sentences")
    return "\n".join(lines)


def run_tune_gamma(args: argparse.Namespace) -> int:
    from ..atomic_write import atomic_write_text
    from ..proxies.gamma_search import gamma_grid, tune_gamma

    progress = None if args.quiet else (lambda message: print(f"tune-gamma: {message}", file=sys.stderr))
    low, high = args.range
    try:
        gamma_grid(low, high, args.step)
    except ValueError as error:
        raise ValueError(f"--range/--step: {error}") from None
    tuning = tune_gamma(args.kd, args.split, beta=args.beta, low=low, high=high, step=args.step,
                        references=args.references, method=args.search, progress=progress)
    report = tuning.to_dict()
    print(format_gamma_table(report))
    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0
