"""``mple distill``: sequence-level knowledge distillation data from an AT teacher.

  mple distill --teacher runs/at-tiny --data bundled --out data/kd-tiny       (beam 5)

Translates the sources of every split (train, valid, test) and writes a dataset directory whose
targets are the teacher's outputs; originals are kept as {split}.raw.tgt / .raw.refN.  Resumable:
run the same command again after an interruption.  Chunks record the teacher checkpoint (SHA-256)
and decoding options that made them: a rerun with another teacher or other options is refused,
naming the difference; --overwrite discards what is there and starts over.
"""

from __future__ import annotations

import argparse
import json

from .argument_types import existing_path, output_dir, positive_int
from .decoding_args import add_decoding_args, decode_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("distill", help="sequence-level KD data from an AT teacher (resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, type=existing_path,
                   help="teacher checkpoint file or run directory")
    p.add_argument("--data", default="bundled", help="dataset directory or 'bundled'")
    p.add_argument("--out", required=True, type=output_dir, help="output dataset directory")
    p.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    p.add_argument("--chunk-size", type=positive_int, default=1000, help="sentences per resumable chunk")
    p.add_argument("--overwrite", action="store_true",
                   help="discard chunks (and a KD dataset) in --out made by another teacher or with other "
                        "options, and start over")
    add_decoding_args(p, default_beam=5)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..decode.distill import distill
    from ..train import resolve_device

    manifest = distill(args.teacher, args.data, args.out, args.splits, decode_options(args),
                       args.max_tokens, args.chunk_size, str(resolve_device(args.device)), args.quiet,
                       overwrite=args.overwrite)
    print(json.dumps(manifest["splits"]))
    return 0
