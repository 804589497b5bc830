"""``mple demo``: the paper's main results in miniature, on a controlled benchmark and the bundled corpus.

Trains tiny models and writes, in a resumable work directory (``demo_out/``), first on the
controlled benchmark (generated translation tasks whose true C is computed exactly; the truth beside
every estimate) and then on a sample of the bundled corpus: Table 1 (C and ΔBLEU on the corpus and its Synthetic A and B versions), Table 2
and Figure 5 (proxy targets: raw, KD, AXE, OaXE; L_NAT, L_target, L_MPLE, BLEU, their correlation),
Figure 1 (the landscape through an MLE NAT and its MLE and GLAT + KD fine-tunes), and
``report.md``/``report.json`` with the paper's numbers beside them.  ``--full`` adds Table 3 (proxy
inputs, Input Sampling, L_input) and dynamic KD; ``--smoke`` runs every step on a few hundred
sentences in about a minute (a check of the pipeline, not a result).  A second run in the same
directory reuses what is done.
"""

from __future__ import annotations

import argparse

from . import argument_types


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="reproduce the paper's main results in miniature (make demo)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_out", type=argument_types.output_dir,
                   help="work directory, resumable (default: demo_out)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="every step on a few hundred sentences (~1 minute)")
    mode.add_argument("--full", action="store_true", help="add Table 3 and dynamic KD (larger budget)")
    p.add_argument("--budget-minutes", type=argument_types.positive_float, default=None,
                   help="scale the bundled corpus' sample and epoch caps to this budget (default: 25, --full "
                        "90; the controlled benchmark does not scale; not with --smoke, whose plan is fixed)")
    p.add_argument("--size", choices=("tiny", "small", "base"), default="tiny", help="model size (default: tiny)")
    p.add_argument("--device", type=argument_types.device, default="cpu")
    p.add_argument("--no-controlled", action="store_true",
                   help="skip the controlled benchmark (generated tasks with exact C) and run the bundled corpus only")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or tables: only the report's path is printed")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import make_plan, run_demo
    from ..demo.pipeline import REPORT_JSON, REPORT_MD

    mode = "smoke" if args.smoke else "full" if args.full else "default"
    plan = make_plan(mode, budget_minutes=args.budget_minutes, size=args.size, device=args.device, quiet=args.quiet,
                     controlled=not args.no_controlled)
    run_demo(args.out, plan)
    if args.quiet:  # without --quiet the pipeline ends with this line and the time taken
        print(f"report: {(args.out / REPORT_MD).resolve()} and {(args.out / REPORT_JSON).resolve()}")
    return 0
