"""``mple translate``: translate a file (one sentence per line) with a trained model.

  mple translate --ckpt runs/at-tiny/best.pt --input test.es --output test.hyp --beam 5
  mple translate --ckpt runs/nat-tiny --input - --length-beam 3 --dedup     (stdin -> stdout)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .argument_types import existing_path, input_file_or_stdin, output_file_or_stdout
from .decoding_args import add_decoding_args, check_beam, decode_options, load_input_predictor, load_reranker


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("translate", help="translate a file with a trained AT or NAT checkpoint",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, type=existing_path,
                   help="checkpoint file or run directory (uses best.pt)")
    p.add_argument("--input", required=True, type=input_file_or_stdin,
                   help="source file, one sentence per line ('-' = stdin)")
    p.add_argument("--output", default="-", type=output_file_or_stdout,
                   help="output file ('-' = stdout, the default)")
    add_decoding_args(p, default_beam=5)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data import read_lines, split_lines
    from ..decode.distill import translate_lines
    from ..atomic_write import atomic_write_text
    from ..train import load_model, resolve_device

    device = resolve_device(args.device)
    # Lines end at "\n" only (one trailing "\r" stripped), as in files read by read_lines.
    lines = split_lines(sys.stdin.read()) if args.input == "-" else read_lines(args.input)
    model, tokenizers, _ = load_model(args.ckpt, device)
    check_beam(args, model)
    predictor = load_input_predictor(args, model, tokenizers, device)
    reranker = load_reranker(args, model, tokenizers, device)
    bar = None
    if not args.quiet:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(lines), unit="sent", desc="translate", dynamic_ncols=True, file=sys.stderr)
    outputs = translate_lines(model, tokenizers, lines, decode_options(args), args.max_tokens, device,
                              progress=bar.update if bar is not None else None, input_predictor=predictor, reranker=reranker)
    if bar is not None:
        bar.close()
    text = "".join(line + "\n" for line in outputs)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(args.output), text)
    return 0
