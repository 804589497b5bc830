"""Decoding options shared by ``mple translate``, ``mple distill`` and ``mple evaluate``."""

from __future__ import annotations

import argparse

from ..decode import DecodeOptions


def add_decoding_args(p: argparse.ArgumentParser, default_beam: int) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--beam", type=int, default=default_beam, help=f"AT beam size (1 = greedy; default {default_beam})")
    g.add_argument("--length-penalty", type=float, default=1.0, help="AT: final beams scored by logp / len**lp")
    g.add_argument("--max-len-a", type=float, default=1.5, help="AT: output length limit a * src_len + b")
    g.add_argument("--max-len-b", type=int, default=10)
    g.add_argument("--length-beam", type=int, default=1, help="NAT: decode the top-l predicted lengths (LPD)")
    g.add_argument("--length-factor", type=float, default=0.0, help="NAT: lengths become round(T (1 + factor))")
    g.add_argument("--dedup", action="store_true", help="remove consecutive repeated tokens")
    g.add_argument("--max-tokens", type=int, default=4096, help="padded source tokens per batch")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def decode_options(args: argparse.Namespace) -> DecodeOptions:
    return DecodeOptions(beam=args.beam, length_penalty=args.length_penalty, max_len_a=args.max_len_a,
                         max_len_b=args.max_len_b, length_beam=args.length_beam,
                         length_factor=args.length_factor, dedup=args.dedup)
