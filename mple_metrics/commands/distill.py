"""``mple distill``: sequence-level knowledge distillation data from AT teachers.

  mple distill --teacher runs/at-tiny --data bundled --out data/kd-tiny       (beam 5)
  mple distill --teacher runs/at-big --name big --teacher runs/at-small --name small --out data/kd-cand
  mple distill --teacher runs/at-third --out data/kd-cand                     (appended as kd2)
  torchrun --nproc_per_node 4 -m mple_metrics.cli distill --teacher runs/at-tiny --out data/kd-tiny

Translates the sources of every split (train, valid, test) and writes a dataset directory whose
targets are the teacher's outputs; originals are kept as {split}.raw.tgt / .raw.refN.  Resumable:
run the same command again after an interruption.  Chunks record the teacher checkpoint (SHA-256)
and decoding options that made them: a rerun with another teacher or other options is refused,
naming the difference, and so is an --out holding a finished KD dataset of other --data (its
sources, raw targets or references differ); --overwrite discards what is there and starts over.

Several --teacher (or --candidates, or an --out that already is one) make a KD candidate
directory: --out/kd0, --out/kd1, ... (one KD dataset per teacher, in order) and
--out/candidates.json listing them.  A teacher already listed (same checkpoint bytes) is resumed or
reused, a new one is appended.  Under torchrun the ranks share the chunks of every split; the
output is the same as one process's.
"""

from __future__ import annotations

import argparse
import json

from .argument_types import existing_path, output_dir, positive_int
from .decoding_args import add_decoding_args, decode_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("distill", help="sequence-level KD data from AT teachers (resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, action="append", type=existing_path,
                   help="teacher checkpoint file or run directory; repeat for several teachers (a KD "
                        "candidate directory)")
    p.add_argument("--name", action="append", default=None,
                   help="name of the candidate made by the --teacher in the same position (repeat once "
                        "per --teacher; default kd0, kd1, ...)")
    p.add_argument("--candidates", action="store_true",
                   help="write a KD candidate directory even for one teacher")
    p.add_argument("--data", default="bundled", help="dataset directory or 'bundled'")
    p.add_argument("--out", required=True, type=output_dir,
                   help="output dataset directory (a KD candidate directory with several teachers)")
    p.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    p.add_argument("--chunk-size", type=positive_int, default=1000, help="sentences per resumable chunk")
    p.add_argument("--overwrite", action="store_true",
                   help="discard chunks (and a KD dataset) in --out made by another teacher or with other "
                        "options, and start over (in a candidate directory: the given teachers' only)")
    add_decoding_args(p, default_beam=5)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..decode.distill import distill
    from ..train import setup_distributed

    context = setup_distributed(args.device)  # torchrun: one process group, cuda:LOCAL_RANK
    manifest = distill(args.teacher, args.data, args.out, args.splits, decode_options(args),
                       args.max_tokens, args.chunk_size, str(context.device), args.quiet,
                       overwrite=args.overwrite, names=args.name, candidates=args.candidates)
    if context.is_main:
        if "candidates" in manifest:
            print(json.dumps({entry["name"]: entry.get("splits") for entry in manifest["candidates"]}))
        else:
            print(json.dumps(manifest["splits"]))
    return 0
