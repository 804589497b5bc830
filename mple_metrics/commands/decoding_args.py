"""Decoding options shared by ``mple translate``, ``mple distill`` and ``mple evaluate``."""

from __future__ import annotations

import argparse
import sys

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
    g.add_argument("--decode", choices=("default", "input-sampling"), default="default",
                   help="NAT: the vanilla input (default) or Input Sampling from the input predictor")
    g.add_argument("--samples", type=positive_int, default=1,
                   help="NAT Input Sampling: candidates per sentence, the most probable kept (default 1)")
    g.add_argument("--sampling-seed", type=non_negative_int, default=0, help="NAT Input Sampling: seed of the draws")
    g.add_argument("--input-predictor-nat", default=None, metavar="CKPT",
                   help="NAT Input Sampling: the frozen vanilla NAT that fills revealed positions (a "
                        "checkpoint or run directory with the model's tokenizer)")
    g.add_argument("--rerank", default=None, metavar="AT_CKPT",
                   help="NAT: an AT (same tokenizer) picks among the --length-beam or --samples candidates "
                        "(noisy parallel decoding)")
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
    """The decoding options of ``args``; a ValueError naming the option for a combination in which
    one would be ignored."""
    if args.decode == "input-sampling" and args.length_beam != 1:
        raise ValueError("--decode input-sampling decodes at the predicted length: use --samples, not --length-beam")
    if args.decode != "input-sampling":
        # Only Input Sampling draws candidates: default decoding would silently decode one.
        if args.samples != 1:
            raise ValueError(f"--samples {args.samples} sets the Input Sampling candidates per sentence: it needs "
                             f"--decode input-sampling (default decoding has no draws; use --length-beam for "
                             f"several length candidates)")
        if args.sampling_seed != 0:
            raise ValueError("--sampling-seed seeds the draws of --decode input-sampling; default decoding has none")
    return DecodeOptions(beam=args.beam, length_penalty=args.length_penalty, max_len_a=args.max_len_a,
                         max_len_b=args.max_len_b, length_beam=args.length_beam,
                         length_factor=args.length_factor, dedup=args.dedup, strategy=args.decode,
                         samples=args.samples, seed=args.sampling_seed)


def load_input_predictor(args: argparse.Namespace, model, tokenizers, device,
                         train_config: dict | None = None, warnings: list[str] | None = None):
    """The frozen NAT of Input Sampling (None for default decoding): ``--input-predictor-nat``.

    Refuses a checkpoint (``args.ckpt``, whose ``train_config`` may be passed to save reading it
    again) whose "is masked" head was never trained, and a predictor that is not a NAT of the same
    tokenizer; a predictor not trained with the vanilla input is appended to ``warnings`` (printed
    when None)."""
    from ..decode.input_sampling import check_mask_head, predictor_warning

    if args.decode != "input-sampling":
        if args.input_predictor_nat:
            raise ValueError("--input-predictor-nat is for --decode input-sampling")
        return None
    if model.config.kind != "nat":
        raise ValueError("--decode input-sampling decodes a NAT; this checkpoint is an AT")
    if train_config is None:
        from ..models import load_checkpoint

        train_config = load_checkpoint(args.ckpt)["train_config"]
    check_mask_head(train_config or {}, str(args.ckpt), "--decode input-sampling")
    if not args.input_predictor_nat:
        raise ValueError("--decode input-sampling needs --input-predictor-nat CKPT (a vanilla NAT trained with "
                         "the same tokenizer)")
    predictor, payload = _load_companion(args.input_predictor_nat, "--input-predictor-nat", "nat", tokenizers,
                                         device)
    warning = predictor_warning(payload.get("train_config") or {}, payload["path"], "--input-predictor-nat")
    if warning is not None:
        if warnings is None:
            print(f"warning: {warning}", file=sys.stderr)
        else:
            warnings.append(warning)
    return predictor


def load_reranker(args: argparse.Namespace, model, tokenizers, device):
    """The AT of noisy parallel decoding (``--rerank``), or None."""
    if not getattr(args, "rerank", None):
        return None
    if model.config.kind != "nat":
        raise ValueError("--rerank picks among a NAT's candidates; this checkpoint is an AT")
    if args.length_beam == 1 and args.samples == 1:
        raise ValueError("--rerank needs candidates to choose from: --length-beam > 1 or --samples > 1")
    return _load_companion(args.rerank, "--rerank", "at", tokenizers, device)[0]


def _load_companion(path, option: str, kind: str, tokenizers, device):
    """(model, checkpoint payload) of a second model that decoding uses beside the checkpoint (the
    input predictor's NAT, the NPD reranker): of model ``kind`` and with the checkpoint's tokenizer,
    else a ValueError naming ``option``."""
    from ..models import load_model
    from ..train import tokenizer_files

    model, model_tokenizers, payload = load_model(path, device)
    names = {"nat": "a NAT", "at": "an AT"}
    if model.config.kind != kind:
        raise ValueError(f"{option} {payload['path']} is {names[model.config.kind]}; it must be {names[kind]}")
    if tokenizer_files(model_tokenizers) != tokenizer_files(tokenizers):
        raise ValueError(f"{option} {payload['path']} has another tokenizer than the model; train both with one "
                         f"(--tokenizer)")
    return model, payload
