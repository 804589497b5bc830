"""``mple train``: train an AT or NAT model on a dataset directory.

  mple train --data bundled --model at --size tiny --out runs/at-tiny --max-epochs 5
  torchrun --nproc_per_node 2 -m mple_metrics.cli train --data DIR --model nat --out RUN   (DDP)
  mple train --out runs/at-tiny --resume ...same settings...   (continue a killed run exactly)

Writes RUN/config.json, tokenizer/, last.pt, best.pt, step*.pt, average.pt, train.jsonl,
valid.jsonl and summary.json (see docs/training.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import Any

from ..train import TrainConfig
from . import argument_types

_DEFAULTS = TrainConfig()


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _model_args(pairs: list[str]) -> dict[str, Any]:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--model-arg expects KEY=VALUE (a ModelConfig field), got {pair!r}")
        key, value = pair.split("=", 1)
        overrides[key.strip().replace("-", "_")] = _value(value)
    return overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train an AT or NAT model (checkpoints, validation, resume, DDP)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = _DEFAULTS
    p.add_argument("--data", default=d.data, help="dataset directory or 'bundled' (default)")
    p.add_argument("--model", choices=("at", "nat"), required=True)
    p.add_argument("--size", choices=("tiny", "small", "base"), default=d.size)
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="override a ModelConfig field, e.g. --model-arg d_model=96 (repeatable)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--nat-input", choices=("uniform", "soft"), default=d.nat_input)
    p.add_argument("--tokenizer", default=None, help="reuse this saved tokenizer directory "
                                                     "(e.g. another run's RUN/tokenizer)")
    p.add_argument("--tokenizer-kind", choices=("spm", "word"), default=d.tokenizer_kind)
    p.add_argument("--vocab-size", type=int, default=d.vocab_size)
    for name, kind in (("max_steps", int), ("max_epochs", int), ("max_tokens", int),
                       ("max_sentences", int), ("update_freq", int), ("lr", float),
                       ("warmup_steps", int), ("weight_decay", float), ("label_smoothing", float),
                       ("dropout", float), ("clip_norm", float), ("length_loss_weight", float),
                       ("valid_every_steps", int), ("valid_bleu_max_sentences", int),
                       ("valid_beam", int), ("patience", int), ("keep_best", int),
                       ("save_every_steps", int), ("log_every", int), ("seed", argument_types.seed),
                       ("max_positions", int)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(d, name),
                       help=f"(default: {getattr(d, name)})")
    p.add_argument("--no-valid-bleu", dest="valid_bleu", action="store_false",
                   help="validate the NLL only: no decoding, no BLEU (faster; what the estimators need)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default=d.amp, help="mixed precision (CUDA)")
    p.add_argument("--device", default=d.device, type=argument_types.device,
                   help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
              if f.name not in ("model_overrides", "betas", "adam_eps", "warmup_init_lr",
                                "train_split", "valid_split") and hasattr(args, f.name)}
    return TrainConfig(model_overrides=_model_args(args.model_arg), **values)


def run(args: argparse.Namespace) -> int:
    from ..train import train

    summary = train(config_from_args(args))
    if summary.get("world_size", 1) > 1:
        import torch.distributed as dist
        rank = dist.get_rank()
        dist.destroy_process_group()
        if rank != 0:
            return 0
    last = summary["last_validation"]
    print(f"steps {summary['steps']}  best valid NLL {summary['best_nll_bits_per_token']:.4f} bits/token "
          f"(step {summary['best_step']})")
    if last and "bleu" in last:
        print(f"last validation: NLL {last['nll_bits_per_token']:.4f} bits/token  BLEU {last['bleu']:.2f} "
              f"({last['bleu_signature']})  BLEU on ids {last['bleu_ids']:.2f}")
    elif last:
        print(f"last validation: NLL {last['nll_bits_per_token']:.4f} bits/token (no BLEU: --no-valid-bleu)")
    return 0
