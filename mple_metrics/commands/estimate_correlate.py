"""``mple estimate correlate``: the table of the paper's Tables 2/3 from per-method result files, and
Pearson's r between L_MPLE and BLEU over the methods (Sec. 4.2-4.3).

  mple estimate correlate raw.json kd.json axe1.json axe5.json oaxe.json [--bleu default|sample]
                          [--beta B] [--beta-sweep 0.1:0.5:0.05] [--out table.md] [--plot scatter.png]
                          [--json out.json] [--fig5 tc.json --fig5-plot fig5.png] [--seed S] [--bootstrap N]
                          [--allow-mixed]

Each RESULT.json is one trained model's output of 'mple estimate mple'.  L_NAT and L_input are in
bits/token, L_target = -beta x mean sentence BLEU (BLEU points x beta); L_MPLE adds them as the
paper does.  r comes with a bootstrap 95% interval over methods (resampled with replacement).
--beta recomputes every L_target and L_MPLE at one beta; --beta-sweep reports r on a grid of beta.
Files measured on different data (dataset, split, references, sentence counts) are refused, and so
is a --fig5 tc.json of other data, unless --allow-mixed (then a warning).  See docs/estimators.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from . import argument_types


def beta_grid(text: str) -> tuple[float, ...]:
    """``A:B:STEP``, a grid of beta (see ``parse_beta_grid``), for argparse."""
    from ..estimators.correlation import parse_beta_grid

    try:
        return parse_beta_grid(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def image_file(text: str) -> Path:
    """An output file for a figure, its format named by its extension (``.png``, ``.pdf``, ``.svg``)."""
    from ..estimators.correlation_plots import image_format

    path = argument_types.output_file(text)
    try:
        image_format(path)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return path


#: argparse reads ``-0.1:0.5:0.1`` as an option, not as the value of --beta-sweep ("expected one
#: argument"); a value that starts like a negative number is a value (no option of this command
#: starts with a digit), so that a negative beta gets --beta-sweep's own message.
NEGATIVE_VALUE = re.compile(r"^-\.?\d")


def register_correlate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("correlate", help="Tables 2/3: L_MPLE vs BLEU over methods, Pearson r with a bootstrap CI",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p._negative_number_matcher = NEGATIVE_VALUE
    p.add_argument("results", nargs="+", type=argument_types.input_file, metavar="RESULT.json",
                   help="one result file of 'mple estimate mple' per trained model (at least 3)")
    p.add_argument("--bleu", choices=("default", "sample"), default="default",
                   help="correlate with default-decoding BLEU (bleu_default, the default) or Input Sampling "
                        "BLEU (bleu_sample)")
    p.add_argument("--beta", type=argument_types.positive_float, default=None,
                   help="recompute L_target = -B x mean BLEU and L_MPLE for every file (default: each file's own)")
    p.add_argument("--beta-sweep", type=beta_grid, default=None, metavar="A:B:STEP",
                   help="r for every beta on the grid A, A+STEP, ..., B (e.g. 0.1:0.5:0.05)")
    p.add_argument("--out", type=argument_types.output_file, default=None, metavar="TABLE.md",
                   help="write the table, r and the sweep as markdown")
    p.add_argument("--plot", type=image_file, default=None, metavar="SCATTER.png",
                   help="scatter of L_MPLE against BLEU (.png, .pdf or .svg, by the name's extension)")
    p.add_argument("--json", type=argument_types.output_file, default=None, metavar="OUT.json",
                   help="everything (rows, r, interval, sweep) as JSON")
    p.add_argument("--fig5", type=argument_types.input_file, default=None, metavar="TC.json",
                   help="tc.json of 'mple estimate tc': the dataset's C for --fig5-plot")
    p.add_argument("--fig5-plot", type=image_file, default=None, metavar="FIG5.png",
                   help="Figure 5: each method's L_NAT as a bar and C as a line (needs --fig5; .png, .pdf or "
                        ".svg)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="correlate result files measured on different data (dataset, split, references, "
                        "sentence counts), and draw a --fig5 C of other data, with a warning instead of refusing")
    p.add_argument("--seed", type=argument_types.seed, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument("--bootstrap", type=argument_types.bootstrap_resamples, default=1000, metavar="N",
                   help="bootstrap resamples of the methods (at least 100; default: 1000)")
    p.set_defaults(run=run_correlate)


def _check_outputs(args: argparse.Namespace) -> None:
    if (args.fig5 is None) != (args.fig5_plot is None):
        raise ValueError("--fig5 TC.json and --fig5-plot FIG5.png go together: give both")
    named = [(flag, path) for flag, path in (("--out", args.out), ("--plot", args.plot), ("--json", args.json),
                                             ("--fig5-plot", args.fig5_plot)) if path is not None]
    seen: dict[str, str] = {}
    inputs = {os.path.realpath(p) for p in args.results}
    for flag, path in named:
        real = os.path.realpath(path)
        if real in seen:
            raise ValueError(f"{flag} {path} is also {seen[real]}: give each output its own file")
        if real in inputs:
            raise ValueError(f"{flag} {path} is one of the result files: it would be overwritten")
        seen[real] = flag


def run_correlate(args: argparse.Namespace) -> int:
    from ..atomic_write import atomic_write_bytes, atomic_write_text
    from ..estimators.correlation import (MIN_METHODS, correlate, fig5_warnings, format_correlation_table,
                                          markdown_table, number_text, read_results, read_tc_json)
    from ..estimators.correlation_plots import figure5_plot, image_format, scatter_plot

    if len(args.results) < MIN_METHODS:
        raise ValueError(f"a correlation needs at least {MIN_METHODS} result files (one per method), got "
                         f"{len(args.results)}")
    _check_outputs(args)
    results = read_results(args.results)
    report = correlate(results, bleu=args.bleu, beta=args.beta, betas=args.beta_sweep,
                       n_resamples=args.bootstrap, seed=args.seed, allow_mixed=args.allow_mixed)
    tc = read_tc_json(args.fig5) if args.fig5 is not None else None
    warnings = list(report.warnings)
    if tc is not None:
        warnings += fig5_warnings(report.rows, tc, allow_mixed=args.allow_mixed)
    document = report.to_dict()
    document["warnings"] = warnings
    document["inputs"] = [str(path) for path in args.results]
    if tc is not None:
        document["fig5"] = {**tc.to_dict(), "l_nat_below_c": [row.method for row in report.rows
                                                               if row.l_nat < tc.c_bits_per_token]}
    # Everything is computed and drawn before anything is written.
    images = {}
    if args.plot is not None:
        images[args.plot] = scatter_plot(report, format=image_format(args.plot))
    if tc is not None:
        images[args.fig5_plot] = figure5_plot(report.rows, tc, format=image_format(args.fig5_plot))
    print(format_correlation_table(report))
    if tc is not None:
        below = document["fig5"]["l_nat_below_c"]
        state = ", not converged" if tc.converged is False else ""
        print(f"C = {number_text(tc.c_bits_per_token, '.4f')} bits/token ({tc.path}{state}); L_NAT below C: "
              f"{len(below)} of {len(report.rows)} methods" + (f" ({', '.join(below)})" if below else ""))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    written = []
    for path, data in images.items():
        atomic_write_bytes(path, data)
        written.append(path)
    if args.out is not None:
        atomic_write_text(args.out, markdown_table(report))
        written.append(args.out)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(document, indent=2, allow_nan=False, ensure_ascii=False) + "\n")
        written.append(args.json)
    if written:
        print(f"wrote {', '.join(str(path) for path in written)}")
    return 0
