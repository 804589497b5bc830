"""``mple train``: train an AT or NAT model on a dataset directory.

  mple train --data bundled --model at --size tiny --out runs/at-tiny --max-epochs 5
  mple train --data DIR --model at --out RUN --lr 1e-3      (the rest of the schedule still derived)
  mple train --data DIR --model at --out RUN --schedule fixed   (lr 5e-4, warmup 1000, 4096 tokens)
  torchrun --nproc_per_node 2 -m mple_metrics.cli train --data DIR --model nat --out RUN   (DDP)
  mple train --out runs/at-tiny --resume ...same settings...   (continue a killed run exactly)
  mple train --model nat --target kd --kd data/kd-tiny --out runs/nat-kd          (proxy targets:
  mple train --model nat --target axe --skip-penalty 5 --out runs/nat-axe5         docs/proxies.md)
  mple train --model nat --target oaxe --init-from runs/nat-raw --lr 1e-4 --lr-schedule constant ...
  mple train --model nat --target dynamic-kd --kd data/kd-candidates --out runs/nat-dkd

Writes RUN/config.json, tokenizer/, last.pt, best.pt, step*.pt, average.pt, train.jsonl,
valid.jsonl and summary.json (see docs/training.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import Any

from ..proxies import CMLM_COUNTS, INPUT_NAMES, TARGET_NAMES, TRUNCATE_BASES
from ..train import LR_SCHEDULES, SCHEDULE_MODES, SELECT_METRICS, TrainConfig
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
    p.add_argument("--out", required=True, type=argument_types.output_dir, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--nat-input", choices=("uniform", "soft", "mask"), default=None,
                   help="a NAT's vanilla decoder input: uniform or soft copy of the source, or all <mask> "
                        "(default: mask for --input cmlm/cmlm-fixed, else uniform)")
    p.add_argument("--tokenizer", default=None, help="reuse this saved tokenizer directory "
                                                     "(e.g. another run's RUN/tokenizer)")
    p.add_argument("--tokenizer-kind", choices=("spm", "word"), default=d.tokenizer_kind)
    p.add_argument("--vocab-size", type=int, default=d.vocab_size)
    p.add_argument("--schedule", choices=SCHEDULE_MODES, default=d.schedule,
                   help="auto (default): derive --lr, --warmup-steps, --max-tokens and --min-updates from the "
                        "training data (about 150 updates an epoch, warmup 10%% of the planned updates, the "
                        "size's learning rate, no early stop before 2 warmups); fixed: lr 5e-4, warmup 1000, "
                        "4096 tokens, no minimum (a recipe for large data). Options given explicitly win; "
                        "config.json records what was derived and why")
    for name, kind in (("lr", float), ("warmup_steps", int), ("max_tokens", int), ("min_updates", int)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                       help="(default: from --schedule)")
    for name, kind in (("max_steps", int), ("max_epochs", int),
                       ("max_sentences", int), ("update_freq", int),
                       ("weight_decay", float), ("label_smoothing", float),
                       ("dropout", float), ("clip_norm", float), ("length_loss_weight", float),
                       ("valid_every_steps", int), ("valid_bleu_max_sentences", int),
                       ("valid_beam", int), ("patience", int), ("min_delta", float), ("keep_best", int),
                       ("save_every_steps", int), ("log_every", int), ("seed", argument_types.seed),
                       ("max_positions", int)):
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(d, name),
                       help=f"(default: {getattr(d, name)})")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                   help="after the warmup: inverse square root decay (default) or constant --lr")
    p.add_argument("--select-metric", choices=SELECT_METRICS, default=d.select_metric,
                   help="what picks best.pt and stops early: reference NLL, the proxy target's loss on "
                        "the validation split, or BLEU; auto (default) = nll for --target raw, else proxy")
    p.add_argument("--init-from", default=None, type=argument_types.existing_path, metavar="CKPT",
                   help="start from this checkpoint's weights (file or run directory; same architecture, "
                        "its tokenizer; fresh optimizer and schedule): fine-tuning")
    g = p.add_argument_group("proxy targets (NAT; docs/proxies.md)")
    g.add_argument("--target", choices=TARGET_NAMES, default=d.target,
                   help="how the training target T is chosen (default: raw)")
    g.add_argument("--kd", action="append", default=[], metavar="DIR",
                   help="mple distill output: the KD data of --target kd (or the reference of axe/oaxe); "
                        "for dynamic-kd repeat it or name a candidate directory")
    g.add_argument("--skip-penalty", type=float, default=d.skip_penalty,
                   help="AXE: the skip-target penalty delta (the paper's tau; default 1)")
    g.add_argument("--pred-length-scale", type=float, default=d.pred_length_scale,
                   help="AXE: predict round(s * target length) positions (s >= 1; default 1)")
    g.add_argument("--oaxe-pretrain-steps", type=int, default=d.oaxe_pretrain_steps,
                   help="OaXE: updates of MLE before switching to OaXE (default 0: use --init-from)")
    g.add_argument("--oaxe-truncate", type=float, default=None, metavar="P",
                   help="OaXE: drop assigned terms of probability below P")
    g.add_argument("--oaxe-truncate-base", choices=TRUNCATE_BASES, default=d.oaxe_truncate_base,
                   help="OaXE: compare log P < ln P (loss, default) or as the public code does (-log2 P "
                        "against a natural-log NLL)")
    g.add_argument("--gamma", type=float, nargs="+", default=None,
                   help="dynamic KD: one weight per candidate, the KD teachers in --kd order, raw last "
                        "(default: all 1; tune with mple proxies tune-gamma)")
    g.add_argument("--beta", type=float, default=d.beta, help="dynamic KD: beta of L'_target (default 0.2)")
    g.add_argument("--no-regularizer", dest="regularizer", action="store_false",
                   help="dynamic KD: choose T = argmin L_NAT only (the ablation of Table 9)")
    g = p.add_argument_group("proxy inputs (NAT; docs/proxies.md)")
    g.add_argument("--input", choices=INPUT_NAMES,
                   default=d.input, help="how much of the target the decoder is shown (default: vanilla)")
    g.add_argument("--cmlm-count", choices=CMLM_COUNTS, default=d.cmlm_count,
                   help="CMLM: hidden count uniform on 1..L (fairseq, default) or l = round(lambda L) "
                        "revealed (the paper's Appendix E.6)")
    g.add_argument("--glat-anneal-steps", type=int, default=d.glat_anneal_steps,
                   help="GLAT: anneal lambda from 0.5 to 0.3 over this many updates (default 0: the run)")
    g.add_argument("--mask-head-weight", type=float, default=d.mask_head_weight,
                   help="weight of the input predictor's 'is masked' head loss (default 1; 0 = off)")
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
                                "train_split", "valid_split", "schedule_derivation") and hasattr(args, f.name)}
    for name in ("init_from", "out"):  # paths from the argument types; the config stores strings
        if values.get(name) is not None:
            values[name] = str(values[name])
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
