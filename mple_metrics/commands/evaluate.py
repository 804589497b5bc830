"""``mple evaluate``: BLEU (multi-reference, with signature) and NLL of a checkpoint on a split.

  mple evaluate --ckpt runs/at-tiny/best.pt --data bundled --split test --beam 5 --json out.json

BLEU is reported on detokenized text (sacrebleu's 13a tokenization, against the references as
written in the dataset) and on token ids, both by the batched BLEU kernels; NLL of the references
in bits per token and per sentence (AT counts </s>; NAT scores at the gold length, its length term
reported separately).

The data default to the dataset the checkpoint was trained on (as its config records it); another
--data is used with a warning naming both.  Warnings go to stderr as ``warning: ...`` lines and
into the JSON's "warnings" list.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .argument_types import existing_path, output_file
from .decoding_args import add_decoding_args, check_beam, decode_options, load_input_predictor, load_reranker


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="BLEU (with signature) and NLL of a checkpoint on a split",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, type=existing_path,
                   help="checkpoint file or run directory (uses best.pt)")
    p.add_argument("--data", default=None,
                   help="dataset directory or 'bundled' (default: the data the checkpoint was trained on)")
    p.add_argument("--split", default="test")
    p.add_argument("--json", default=None, type=output_file, help="also write the results to this JSON file")
    p.add_argument("--hyps", default=None, type=output_file,
                   help="also write the detokenized outputs to this file")
    p.add_argument("--confidence", action="store_true",
                   help="NAT: also report the decoding confidence (Figure 7): mean log P(Z|X) and log P(T|Z,X) "
                        "per position of what was decoded")
    add_decoding_args(p, default_beam=5)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data import EncodedSplit, load_dataset, resolve_dataset_path
    from ..decode import translate_encoded
    from ..atomic_write import atomic_write_text
    from ..models.checkpoint import evaluation_data
    from ..train import bleu_scores, load_model, reference_nll, resolve_device

    device = resolve_device(args.device)
    options = decode_options(args)
    model, tokenizers, payload = load_model(args.ckpt, device)
    check_beam(args, model)
    data, warning = evaluation_data(args.data, payload)
    warnings = [] if warning is None else [warning]
    predictor = load_input_predictor(args, model, tokenizers, device, payload.get("train_config") or {}, warnings)
    reranker = load_reranker(args, model, tokenizers, device)
    for warning in warnings:  # before the work, where a user sees them in time
        print(f"warning: {warning}", file=sys.stderr)
    split = load_dataset(resolve_dataset_path(data), splits=(args.split,))[args.split]
    encoded = EncodedSplit.encode(split, tokenizers)
    too_long = [i + 1 for i in range(len(split)) if max(len(encoded.src[i]), len(encoded.tgt[i])) >=
                model.config.max_positions]
    if too_long:
        raise ValueError(f"split {args.split!r}: sentence {too_long[0]} ({len(too_long)} in all) is longer "
                         f"than the model's max_positions={model.config.max_positions} - 1 tokens")
    bar = None
    if not args.quiet:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(split), unit="sent", desc="evaluate", dynamic_ncols=True, file=sys.stderr)
    hyps = translate_encoded(model, encoded.src, options, max_tokens=args.max_tokens, device=device,
                             progress=bar.update if bar is not None else None, input_predictor=predictor, reranker=reranker)
    if bar is not None:
        bar.close()
    result = {"checkpoint": payload["path"], "model": payload["model_config"]["kind"], "data": data,
              "split": args.split, "sentences": len(split), "decode": options.to_dict(), "warnings": warnings}
    result.update(bleu_scores(hyps, split.refs, tokenizers))  # the references as written
    result.update(reference_nll(model, encoded, args.max_tokens, device))
    print(f"{result['bleu_signature']} = {result['bleu']:.2f}")
    print(f"{result['bleu_ids_signature']} = {result['bleu_ids']:.2f}")
    print(f"NLL = {result['nll_bits_per_token']:.4f} bits/token, {result['nll_bits_per_sentence']:.2f} "
          f"bits/sentence ({result['sentences']} sentences)")
    if args.confidence:
        if model.config.kind != "nat":
            raise ValueError("--confidence is for a NAT (the input predictor's terms)")
        from ..decode import decoding_confidence
        result["confidence"] = decoding_confidence(model, predictor, encoded.src, options.strategy, options.samples,
                                                   options.seed, args.max_tokens, device)
        c = result["confidence"]
        print(f"confidence ({c['strategy']}): log P(Z|X) {c['input_logp_nats'] / math.log(2):.4f} bits/position, "
              f"log P(T|Z,X) {c['output_logp_nats'] / math.log(2):.4f} bits/position, "
              f"{100 * c['revealed_fraction']:.1f}% revealed")
    if args.hyps:
        atomic_write_text(Path(args.hyps), "".join(tokenizers.tgt.decode(h) + "\n" for h in hyps))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result, indent=1) + "\n")
    return 0
