"""Decoding options shared by ``mple translate``, ``mple distill`` and ``mple evaluate``."""

from __future__ import annotations

import argparse

from ..decode import DecodeOptions
from .argument_types import device, finite_float, non_negative_float, non_negative_int, positive_int


def add_decoding_args(p: argparse.ArgumentParser, default_beam: int) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--beam", type=positive_int, default=default_beam,
                   help=f"AT beam size (1 = greedy; at most the target vocabulary; default {default_beam})")
    g.add_argument("--length-penalty", type=finite_float, default=1.0,
                   help="AT: final beams scored by logp / len**lp")
    g.add_argument("--max-len-a", type=non_negative_float, default=1.5,
                   help="AT: output length limit a * src_len + b")
    g.add_argument("--max-len-b", type=non_negative_int, default=10)
    g.add_argument("--length-beam", type=positive_int, default=1,
                   help="NAT: decode the top-l predicted lengths (LPD)")
    g.add_argument("--length-factor", type=_length_factor, default=0.0,
                   help="NAT: lengths become round(T (1 + factor)); factor > -1")
    g.add_argument("--dedup", action="store_true", help="remove consecutive repeated tokens")
    g.add_argument("--max-tokens", type=positive_int, default=4096, help="padded source tokens per batch")
    g.add_argument("--device", default="cpu", type=device, help="cpu, cuda or cuda:N")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _length_factor(text: str) -> float:
    value = finite_float(text)
    if value <= -1.0:
        raise argparse.ArgumentTypeError(f"must be > -1 (lengths are round(T (1 + factor))), got {value:g}")
    return value


def check_beam(args: argparse.Namespace, model) -> None:
    """Refuse an AT ``--beam`` wider than the model's target vocabulary: the first step has only
    that many candidate tokens, so the beam cannot be filled (and a huge one runs for minutes)."""
    vocab = model.config.tgt_vocab_size
    if model.config.kind == "at" and args.beam > vocab:
        raise ValueError(f"--beam {args.beam} is larger than the model's target vocabulary ({vocab} "
                         f"tokens): the first step has only {vocab} candidates, so the beam cannot be "
                         f"filled; use --beam {vocab} or less")


def decode_options(args: argparse.Namespace) -> DecodeOptions:
    return DecodeOptions(beam=args.beam, length_penalty=args.length_penalty, max_len_a=args.max_len_a,
                         max_len_b=args.max_len_b, length_beam=args.length_beam,
                         length_factor=args.length_factor, dedup=args.dedup)
