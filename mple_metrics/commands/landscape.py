"""``mple landscape``: metrics on a plane through checkpoints in weight space (Figure 1).

  mple landscape --ckpt INIT --ckpt A --ckpt B [--data DIR|bundled] [--split valid] [--grid 21x21]
                 [--margin 0.25] [--axes affine|orthonormal] [--metrics nll,bleu[,l_nat]]
                 [--max-sentences N] [decoding options] --out OUT_DIR
  mple landscape --ckpt A --ckpt B --grid 41 ... --out OUT_DIR          # the line between two
  mple landscape --ckpt A --directions random --seed S ... --out OUT_DIR # two random directions
  mple landscape plot OUT_DIR [--pdf] [--levels N]                       # redraw from the npz alone

The first word ``plot`` selects the redraw; anything else is a landscape run.  Affine axes put the
checkpoints at (0,0), (1,0), (0,1); orthonormal axes (Gram-Schmidt) give Euclidean weight-space
coordinates.  A NAT decodes at its predicted length in every cell.  Each checkpoint is also evaluated
at its own weights (what the table reports for it).  --data defaults to the data the checkpoints were
trained on; other --data is used with a warning.  Writes OUT_DIR/landscape.npz (resumed when rerun
with the same settings), landscape.png (.pdf with --pdf) and landscape.json, and prints a short
table.  Under torchrun the cells are split across the ranks.  See docs/landscape.md.
"""

from __future__ import annotations

import argparse

from . import argument_types
from .decoding_args import add_decoding_args


def _grid(text: str) -> str:
    from ..landscape import parse_grid

    try:
        parse_grid(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("grid must", "must")) from None
    return text


def _metrics(text: str) -> str:
    from ..landscape import parse_metrics

    try:
        parse_metrics(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("metrics must", "must")) from None
    return text


def _levels(text: str) -> int:
    value = argument_types.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..landscape.metrics import L_NAT_PROXIES

    p = subparsers.add_parser("landscape", help="NLL and BLEU on a plane through checkpoints (Figure 1)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", action="append", type=argument_types.existing_path, default=[],
                   help="checkpoint file or run directory; 3 span a plane (the first is the origin), 2 a "
                        "line, 1 with --directions random")
    p.add_argument("--data", default=None,
                   help="dataset directory or 'bundled' (default: the data the checkpoints were trained on, "
                        "their train_config.data; other data is used with a warning)")
    p.add_argument("--split", default="valid", help="evaluation split (default: valid)")
    p.add_argument("--out", type=argument_types.output_dir, default=None, help="output directory (required)")
    p.add_argument("--grid", type=_grid, default=None,
                   help="NXxNY cells, or N (N x N; N points on a line); default 21x21, 41 on a line")
    p.add_argument("--margin", type=argument_types.non_negative_float, default=0.25,
                   help="extend the grid past the checkpoints by this fraction of their extent (default 0.25)")
    p.add_argument("--axes", choices=("affine", "orthonormal"), default="affine",
                   help="affine: theta0 + a(theta1-theta0) + b(theta2-theta0); orthonormal: Gram-Schmidt, "
                        "Euclidean coordinates (default: affine)")
    p.add_argument("--directions", choices=("checkpoints", "random"), default="checkpoints",
                   help="random: two filter-normalised Gaussian directions around one --ckpt")
    p.add_argument("--seed", type=argument_types.seed, default=0, help="seed of --directions random")
    p.add_argument("--include-1d", action="store_true",
                   help="--directions random: also move 1-D tensors (biases, LayerNorm)")
    p.add_argument("--metrics", type=_metrics, default="nll,bleu",
                   help="comma-separated: nll (bits/token), bleu (0-100), l_nat (NAT, under --proxy)")
    p.add_argument("--proxy", choices=L_NAT_PROXIES, default="raw",
                   help="proxy target of l_nat, with its default options (default: raw); kd needs a KD "
                        "dataset (mple distill's output) as --data, raw a dataset that is not one")
    p.add_argument("--max-sentences", type=argument_types.non_negative_int, default=0,
                   help="evaluate the first N sentences of the split (0 = all)")
    p.add_argument("--save-every", type=argument_types.positive_int, default=1,
                   help="write landscape.npz after every N cells (default 1)")
    p.add_argument("--pdf", action="store_true", help="also write landscape.pdf")
    p.add_argument("--levels", type=_levels, default=20, help="contour levels (default 20)")
    add_decoding_args(p, default_beam=1)
    p.set_defaults(run=run)
    sub = p.add_subparsers(dest="landscape_action", metavar="plot", required=False)
    redraw = sub.add_parser("plot", help="redraw OUT_DIR/landscape.png from landscape.npz alone",
                            description="Redraw the picture of a landscape from its saved grid alone "
                                        "(a directory holding landscape.npz, or the npz file).")
    redraw.add_argument("source", type=argument_types.existing_path, metavar="OUT_DIR",
                        help="output directory of 'mple landscape' or a landscape .npz file")
    redraw.add_argument("--pdf", action="store_true", help="also write the PDF")
    redraw.add_argument("--levels", type=_levels, default=20, help="contour levels (default 20)")
    redraw.set_defaults(run=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    from ..landscape import Landscape, format_table, plot

    landscape = Landscape.load(args.source)
    written = plot(args.source, pdf=args.pdf, levels=args.levels)
    print(format_table(landscape))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..landscape import LandscapeSettings, format_table, run_landscape
    from ..train import setup_distributed
    from .decoding_args import decode_options

    if args.out is None:
        raise ValueError("--out is required: the output directory (or use 'mple landscape plot OUT_DIR')")
    if not args.ckpt:
        raise ValueError("--ckpt is required: 3 checkpoints (a plane), 2 (a line) or 1 with --directions random")
    if args.directions == "random" and len(args.ckpt) != 1:
        raise ValueError(f"--directions random takes one --ckpt (the centre), got {len(args.ckpt)}")
    if args.directions == "checkpoints" and len(args.ckpt) not in (2, 3):
        raise ValueError(f"--ckpt: give 3 checkpoints (a plane), 2 (a line) or 1 with --directions random; "
                         f"got {len(args.ckpt)}")
    if args.decode != "default" or args.rerank or args.input_predictor_nat:
        raise ValueError("--decode input-sampling, --input-predictor-nat and --rerank are not landscape metrics; "
                         "the landscape decodes with the default strategy")
    line = args.directions == "checkpoints" and len(args.ckpt) == 2
    grid = args.grid or ("41" if line else "21x21")
    if line:
        from ..landscape import parse_grid
        try:
            parse_grid(grid, line=True)
        except ValueError as error:
            raise ValueError(f"--grid: {error}") from None
    context = setup_distributed(args.device)
    settings = LandscapeSettings(
        checkpoints=[str(c) for c in args.ckpt], data=args.data, out=str(args.out), split=args.split, grid=grid,
        margin=args.margin, axes=args.axes, directions=args.directions, seed=args.seed,
        include_1d=args.include_1d, metrics=args.metrics, proxy=args.proxy, max_sentences=args.max_sentences,
        max_tokens=args.max_tokens, decode=decode_options(args), device=args.device,
        save_every=args.save_every, quiet=args.quiet, pdf=args.pdf, levels=args.levels)
    try:
        landscape = run_landscape(settings, context)
    finally:
        if context.distributed:
            import torch.distributed as dist
            dist.destroy_process_group()
    if context.is_main:
        print(format_table(landscape))
        files = ["landscape.npz", "landscape.png"] + (["landscape.pdf"] if args.pdf else []) + ["landscape.json"]
        print(f"wrote {', '.join(str(args.out / f) for f in files)}")
    return 0
