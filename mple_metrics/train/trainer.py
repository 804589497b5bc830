"""The training loop: data and tokenizer set-up, AdamW + inverse-sqrt schedule, label smoothing,
gradient accumulation, clipping, optional AMP on CUDA, DDP under torchrun, validation with early
stopping, best/last/top-k checkpoints and averaging, exact resumption.

Output directory (rank 0 writes)::

    config.json      the TrainConfig, schedule resolved     tokenizer/     the tokenizers
    last.pt          latest state (resume)      best.pt        best validation NLL
    step{N}.pt       the keep_best best         average.pt     mean of the keep_best best
    train.jsonl      a line every log_every updates    valid.jsonl   a line per validation
    summary.json     final numbers

Exactness: batches are a function of (seed, epoch); a checkpoint records the update number, the
epoch, the micro-batches consumed in it, the optimizer state and every rank's RNG state, so a
resumed run repeats the uninterrupted run's updates bit for bit (same device and thread count).
DDP parity: the loss of an update is divided by the token count summed over its micro-batches and
ranks, so N processes with update_freq u train exactly like one process with update_freq N*u on
the same batches (up to floating-point summation order).

Schedule: ``lr``, ``warmup_steps``, ``max_tokens`` and ``min_updates`` left None are derived from
the kept training pairs (schedule.py) when a run starts and stored in its config; a resumed run
takes the stored values, so it continues with the schedule it began with.

Resuming: ``resume=True`` continues from ``last.pt``; in a run directory that has no checkpoint yet
(killed before its first one) it starts from step 0 with the saved settings checked.  The run
directory is where the run is now (a moved or copied one resumes).  A run that does not resume
starts its logs afresh.  Temporary files that killed atomic writes left behind are removed.
Divergence: a NaN or infinite loss (or gradient norm, where clipping computes it) stops training
with :class:`TrainingDivergedError` naming the update, before the update is applied, so no
checkpoint holds the diverged weights.  With fp16 AMP only the forward loss is checked: overflowing
scaled gradients are the GradScaler's to skip.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .. import __version__
from ..atomic_write import atomic_write_text, remove_orphan_temporaries
from ..data import (BatchIterator, EncodedSplit, TokenizerPair, check_dataset_tokenizers, collate,
                    dataset_tokenizers, load_dataset, resolve_dataset_path)
from ..decode import DecodeOptions
from ..models import ATModel, ModelConfig, NATModel, build_model, teacher_forcing
from ..proxies import (InputProxy, TargetProxy, encode_candidates, input_generator, proxies_from_settings,
                       read_target_text)
from .checkpoint import (CheckpointError, average_checkpoints, check_state_dict,
                         load_checkpoint, restore_tokenizers, save_checkpoint, tokenizer_files)
from .fine_tuning import load_initial_weights
from .config import TrainConfig
from .distributed import DistributedContext, setup_distributed
from .losses import length_loss, mask_head_loss, smoothed_token_loss
from .schedule import SCHEDULE_FIELDS, learning_rate, resolve_schedule, set_lr
from .validation import proxy_validation, validate

LN2 = math.log(2.0)


class TrainingDivergedError(FloatingPointError, ValueError):
    """The loss (or gradient norm) of an update became NaN or infinite; raised before the update
    is applied.  A ValueError too: the usual cause is a setting (learning rate, loss weight)."""


def kept_pairs(encoded: EncodedSplit, max_length: int) -> list[int]:
    """Indices of the pairs whose source and target are non-empty and at most ``max_length`` long."""
    return [i for i in range(len(encoded))
            if 0 < len(encoded.src[i]) <= max_length and 0 < len(encoded.tgt[i]) <= max_length]


def filter_long(encoded: EncodedSplit, max_length: int) -> tuple[EncodedSplit, int]:
    """Drop pairs whose source or target is longer than ``max_length`` or empty; returns the
    kept pairs and how many were dropped."""
    keep = kept_pairs(encoded, max_length)
    return EncodedSplit([encoded.src[i] for i in keep], [encoded.tgt[i] for i in keep]), len(encoded) - len(keep)


@dataclass
class Progress:
    step: int = 0                 # optimizer updates done
    epoch: int = 0                # current epoch (0-based)
    batches_in_epoch: int = 0     # this rank's micro-batches of the current epoch consumed
    tokens: int = 0               # target tokens trained on (all ranks)
    planned_updates: int = 0      # the run's length as planned when it started (GLAT's annealing)


class Trainer:
    """Train one model as configured.  ``Trainer(config).train()`` returns the summary dict."""

    def __init__(self, config: TrainConfig, context: DistributedContext | None = None) -> None:
        self.config = config
        self.ctx = context if context is not None else setup_distributed(config.device)
        self.device = self.ctx.device
        self.out = Path(config.out)
        if config.amp != "none" and self.device.type != "cuda":
            raise ValueError(f"amp={config.amp!r} needs device cuda; on the CPU use amp='none'")
        self.progress = Progress()
        self._mask_loss: torch.Tensor | None = None
        self._validated_step: int | None = None  # update of the last validation (from a checkpoint)
        self._resumed_metrics: dict[str, Any] = {}
        # value: the selection metric oriented lower-is-better (-BLEU for bleu); nll: the
        # reference NLL at the best step; top: [[value, step, file], ...] of the kept checkpoints;
        # counted: the value of the last validation that reset the patience (min_delta).
        self.best: dict[str, Any] = {"metric": config.selection_metric, "value": None, "nll": None,
                                     "step": None, "bad_validations": 0, "top": [], "counted": None}
        self.history: list[dict[str, Any]] = []
        self._saved_config: TrainConfig | None = None  # the settings of the run resumed
        resume_payload = self._resume_payload()
        self._setup_data(resume_payload)
        self._setup_model(resume_payload)
        if resume_payload is not None:
            self._restore(resume_payload)

    # ------------------------------------------------------------------ set-up
    def _resume_payload(self) -> dict[str, Any] | None:
        last = self.out / "last.pt"
        if not self.config.resume:
            if last.exists():
                raise ValueError(f"{self.out} already holds a run (last.pt); pass --resume to continue "
                                 f"it or choose another --out")
            return None
        if not last.exists():
            saved_config = self.out / "config.json"
            if not saved_config.is_file():
                raise FileNotFoundError(f"--resume: no {last} to resume from (and no run was started "
                                        f"in {self.out}: no config.json)")
            # Killed before its first checkpoint: nothing to restore, so start from step 0, with
            # the settings of the run that was started there.
            try:
                saved = TrainConfig.load_json(saved_config)
            except (ValueError, TypeError) as error:
                raise ValueError(f"--resume: {saved_config} is not a valid training config ({error})") from None
            differences = self.config.resume_differences(saved)
            if differences:
                raise ValueError(f"--resume: the run in {self.out} was started with other settings: "
                                 f"{'; '.join(differences)}")
            self._saved_config = saved
            if self.ctx.is_main and not self.config.quiet:
                print(f"--resume: {self.out} has no checkpoint yet (killed before its first one); "
                      f"starting from step 0", file=sys.stderr)
            return None
        payload = load_checkpoint(last, nonfinite="error")
        saved = TrainConfig.from_dict(payload["train_config"])
        differences = self.config.resume_differences(saved)
        if differences:
            raise CheckpointError(f"--resume: {last} was trained with other settings: "
                                  f"{'; '.join(differences)}")
        self._saved_config = saved
        return payload

    def _setup_data(self, payload: dict[str, Any] | None) -> None:
        c = self.config
        data_path = resolve_dataset_path(c.data)
        data = load_dataset(data_path, splits=(c.train_split, c.valid_split))
        self.initial = None  # the --init-from checkpoint (a fresh run only)
        if payload is None and c.init_from:
            self.initial = load_checkpoint(c.init_from, nonfinite="error")
        if payload is not None:
            self.tokenizers = restore_tokenizers(payload["tokenizer"])
        elif self.initial is not None:  # fine-tuning keeps the origin's vocabulary
            self.tokenizers = restore_tokenizers(self.initial["tokenizer"])
            if c.tokenizer and tokenizer_files(TokenizerPair.load(c.tokenizer)) != self.initial["tokenizer"]:
                raise ValueError(f"--tokenizer {c.tokenizer} differs from the tokenizer of --init-from "
                                 f"{self.initial['path']}; drop --tokenizer (fine-tuning uses the checkpoint's)")
            check_dataset_tokenizers(data_path, self.tokenizers, "--init-from", str(self.initial["path"]))
        elif c.tokenizer:
            self.tokenizers = TokenizerPair.load(c.tokenizer)
            check_dataset_tokenizers(data_path, self.tokenizers, "--tokenizer", c.tokenizer)
        elif (carried := dataset_tokenizers(data_path)) is not None:
            self.tokenizers = carried  # the dataset is written for it (token-level Synthetic A/B)
        else:
            train = data[c.train_split]
            self.tokenizers = TokenizerPair.train(train.src, train.tgt, kind=c.tokenizer_kind,
                                                  vocab_size=c.vocab_size)
        limit = c.max_positions - 1
        train = data[c.train_split]
        train_text = read_target_text(c.target, c.kd, train)
        encoded = EncodedSplit(self.tokenizers.src.encode_batch(train.src),
                               self.tokenizers.tgt.encode_batch(train_text.targets))
        kept = kept_pairs(encoded, limit)
        self.dropped = len(encoded) - len(kept)
        encoded = EncodedSplit([encoded.src[i] for i in kept], [encoded.tgt[i] for i in kept])
        if not len(encoded):
            raise ValueError(f"no training pair fits max_positions={c.max_positions}")
        self._resolve_schedule(encoded)
        c = self.config
        self.train_batches = BatchIterator(encoded, max_tokens=c.max_tokens, max_sentences=c.max_sentences,
                                           shuffle=True, seed=c.seed, rank=self.ctx.rank,
                                           world_size=self.ctx.world_size)
        # Validation keeps every reference of a sentence as written (multi-reference BLEU on the
        # text, never on decode(encode(reference))); the NLL scores the first one.
        valid = data[c.valid_split]
        src_ids = self.tokenizers.src.encode_batch(valid.src)
        refs_ids = [[self.tokenizers.tgt.encode(r) for r in refs] for refs in valid.refs]
        valid_kept = [i for i in range(len(valid))
                      if 0 < len(src_ids[i]) <= limit and 0 < len(refs_ids[i][0]) <= limit]
        self.valid_encoded = EncodedSplit([src_ids[i] for i in valid_kept], [refs_ids[i][0] for i in valid_kept])
        self.valid_refs = [list(valid.refs[i]) for i in valid_kept]
        # The proxy's own targets on both splits (KD outputs, dynamic KD's candidates).
        self.proxy_valid_encoded = self.valid_encoded
        self._candidate_text: dict[str, tuple[list[int], list[list[str]]]] = {}
        if train_text.candidates is not None:
            self._candidate_text["train"] = (kept, train_text.candidates)
        if c.target != "raw" and c.model == "nat":
            valid_text = self._valid_target_text(valid)
            if valid_text is not None:
                proxy_ids = self.tokenizers.tgt.encode_batch(valid_text.targets)
                self.proxy_valid_encoded = EncodedSplit([src_ids[i] for i in valid_kept],
                                                        [proxy_ids[i][:limit] or refs_ids[i][0] for i in valid_kept])
                if valid_text.candidates is not None:
                    self._candidate_text["valid"] = (valid_kept, valid_text.candidates)

    def _resolve_schedule(self, encoded: EncodedSplit) -> None:
        """Fill the schedule values the config leaves None: a resumed run takes those it started
        with (stored in its config), never derives them again; a new run derives them from its
        training pairs (or takes the fixed recipe) and records how in ``schedule_derivation``."""
        c = self.config
        missing = [name for name in SCHEDULE_FIELDS if getattr(c, name) is None]
        if self._saved_config is not None:
            saved = self._saved_config
            values = {name: getattr(saved, name) for name in missing}
            if values.get("min_updates") is None and "min_updates" in values:
                values["min_updates"] = 0  # a run started before early stopping had a minimum
            record = saved.schedule_derivation
        else:
            values, record = resolve_schedule(c, encoded, self.ctx.world_size)
        self.config = TrainConfig.from_dict({**c.to_dict(), **values, "schedule_derivation": record})

    def _valid_target_text(self, valid):
        """The proxy's targets on the validation split, or None when the KD data lacks that split
        (the proxy loss is then taken on the raw references; a warning says so)."""
        try:
            return read_target_text(self.config.target, self.config.kd, valid)
        except FileNotFoundError as error:
            if self.ctx.is_main:
                print(f"warning: {error}; the validation proxy loss uses the raw references", file=sys.stderr)
            return None

    def _setup_proxy(self) -> None:
        """The proxy target of the run (``raw`` for an AT) and, for dynamic KD, its candidates."""
        c = self.config
        texts = {split: [rows[i] for i in kept] for split, (kept, rows) in self._candidate_text.items()}
        candidates, pairwise = encode_candidates(texts, self.tokenizers.tgt, Path(c.kd[0]) if c.kd else None)
        self.proxy: TargetProxy
        self.input_proxy: InputProxy
        self.proxy, self.input_proxy = proxies_from_settings(
            c.to_dict(), candidates=candidates or None, pairwise=pairwise or None,
            max_positions=self.model_config.max_positions, train_mask_head=c.mask_head_weight > 0)
        # Dynamic KD scores its proxy on the validation split only where the KD data has it.
        self._proxy_validates = c.target != "dynamic-kd" or "valid" in candidates
        if c.selection_metric == "proxy" and not self._proxy_validates:
            raise ValueError("--select-metric proxy: the --kd data has no valid split to choose dynamic KD's "
                             "targets on; distill the valid split or pass --select-metric nll")
        del self._candidate_text

    def _setup_model(self, payload: dict[str, Any] | None) -> None:
        c = self.config
        if payload is not None:
            self.model_config = ModelConfig.from_dict(payload["model_config"])
        else:
            overrides = dict(kind=c.model, src_vocab_size=self.tokenizers.src.vocab_size,
                             tgt_vocab_size=self.tokenizers.tgt.vocab_size, dropout=c.dropout,
                             nat_input=c.nat_input, max_positions=c.max_positions,
                             share_embeddings=self.tokenizers.joint)
            overrides.update(c.model_overrides)
            self.model_config = ModelConfig.preset(c.size, **overrides)
        torch.manual_seed(c.seed)
        self.raw_model = build_model(self.model_config).to(self.device)
        self.init_from: dict[str, Any] | None = payload.get("init_from") if payload is not None else None
        if self.initial is not None:
            self.init_from = load_initial_weights(self.raw_model, self.model_config, self.initial)
        del self.initial
        self._setup_proxy()
        self.model: torch.nn.Module = self.raw_model
        if self.ctx.distributed:
            # A NAT's "is masked" head is trained only by proxy-input objectives: tell DDP that
            # some parameters may receive no gradient.
            self.model = DistributedDataParallel(
                self.raw_model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=isinstance(self.raw_model, NATModel))
        self.optimizer = torch.optim.AdamW(self.raw_model.parameters(), lr=c.lr, betas=c.betas,
                                           eps=c.adam_eps, weight_decay=c.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda") if c.amp == "fp16" else None
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(c.amp)

    def _restore(self, payload: dict[str, Any]) -> None:
        check_state_dict(self.raw_model, payload["model"], f"checkpoint {payload['path']}")
        self.raw_model.load_state_dict(payload["model"])
        if payload.get("optimizer") is None:
            raise CheckpointError(f"checkpoint {payload['path']} has no optimizer state (an averaged "
                                  f"checkpoint?); it cannot be resumed")
        try:
            self.optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError) as error:
            raise CheckpointError(f"checkpoint {payload['path']}: optimizer state does not fit the "
                                  f"model ({error})") from None
        if self.scaler is not None and payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        self.progress = Progress(**payload["progress"])
        self.best = payload["best"]
        if "value" not in self.best:  # written before selection metrics existed: selected by NLL
            self.best.update(metric="nll", value=self.best["nll"])
        self.best.setdefault("counted", self.best["value"])  # written before min_delta: counts from the best
        self._resumed_metrics = payload.get("metrics") or {}
        self._validated_step = self._resumed_metrics.get("step")
        rng = payload["rng"]
        states = rng["torch"]
        if len(states) != self.ctx.world_size:
            raise CheckpointError(f"checkpoint {payload['path']} was written by {len(states)} process(es) "
                                  f"but this run has {self.ctx.world_size}; resume with the same number")
        torch.set_rng_state(states[self.ctx.rank])
        if self.device.type == "cuda" and rng.get("cuda"):
            torch.cuda.set_rng_state(rng["cuda"][self.ctx.rank], self.device)
        if self.ctx.is_main:  # forget validations logged after the checkpoint (killed in between)
            self._truncate_log("valid.jsonl")
            self._truncate_log("train.jsonl")

    def _truncate_log(self, name: str) -> None:
        """Keep the log lines of updates up to the restored one (a line cut short by a kill is
        dropped); a run that starts at step 0 starts its logs afresh."""
        path = self.out / name
        if path.exists():
            kept = []
            for line in path.read_text(encoding="utf-8").split("\n"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("step"), int) \
                        and record["step"] <= self.progress.step:
                    kept.append(line)
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------ one update
    def _losses(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Summed smoothed token loss and (NAT) summed length loss of a micro-batch, nats.  A NAT's
        token loss is its proxy target's (``raw``: MLE at the gold length)."""
        model = self.model
        if isinstance(self.raw_model, ATModel):
            logits = model(batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths)
            _, outputs = teacher_forcing(batch.tgt, batch.tgt_lengths)
            return smoothed_token_loss(logits, outputs, self.config.label_smoothing), None
        out = self.proxy.forward(model, batch)
        token, _ = self.proxy.loss(batch, out, self.config.label_smoothing)
        targets = self.raw_model.length_targets(batch.src_lengths, out.pred_lengths)
        self._mask_loss = None
        if out.mask_logits is not None:  # the input predictor's "is masked" head, on the vanilla pass
            self._mask_loss = mask_head_loss(out.mask_logits, batch.hidden, batch.tgt_lengths)
        return token, length_loss(out.length_logits, targets)

    def _positions(self, batch) -> int:
        """Target positions the token loss is taken on (AT: with </s>; a proxy input: hidden only)."""
        return batch.loss_tokens + (len(batch) if isinstance(self.raw_model, ATModel) else 0)

    def train_step(self, batches: list) -> torch.Tensor:
        """One optimizer update over micro-batches (already on the device).  Returns the summed
        smoothed token loss (nats) of this rank's micro-batches, detached."""
        c = self.config
        if isinstance(self.raw_model, NATModel):
            self.proxy.update = self.input_proxy.update = self.progress.step
            batches = [self.proxy.prepare(self.raw_model, b, "train") for b in batches]  # e.g. dynamic KD's choice
            if c.input != "vanilla":  # Z ~ Q(Z|T, X), after T is chosen
                batches = [self.input_proxy.sample(self.raw_model, b, input_generator(c.seed, self.progress.step,
                                                                                   b.indices, self.device))
                           for b in batches]
        counts = torch.tensor([sum(self._positions(b) for b in batches), sum(len(b) for b in batches),
                               sum(b.num_tokens for b in batches)], dtype=torch.float64, device=self.device)
        positions, sentences, target_tokens = self.ctx.all_reduce_sum(counts).tolist()
        scale = float(self.ctx.world_size)  # DDP averages gradients over ranks; undo it
        loss_sum = torch.zeros((), device=self.device)
        objective = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, batch in enumerate(batches):
            sync = not self.ctx.distributed or i == len(batches) - 1
            with (contextlib.nullcontext() if sync else self.model.no_sync()), self._autocast():
                token_loss, len_loss = self._losses(batch)
                loss = token_loss / positions
                if len_loss is not None:
                    loss = loss + c.length_loss_weight * len_loss / sentences
                if self._mask_loss is not None:
                    loss = loss + c.mask_head_weight * self._mask_loss / target_tokens
                loss = loss * scale
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            loss_sum += token_loss.detach()
            objective += loss.detach().double()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = None
        if c.clip_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), c.clip_norm)
        self._check_finite(objective, grad_norm if self.scaler is None else None)
        set_lr(self.optimizer, learning_rate(c.lr_schedule, self.progress.step + 1, c.lr, c.warmup_steps,
                                             c.warmup_init_lr))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.step += 1
        self.progress.tokens += int(positions)
        self._window_positions += int(positions)
        return loss_sum

    def _check_finite(self, objective: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        """Raise :class:`TrainingDivergedError` (on every rank alike) when this update's loss or
        gradient norm is not finite; called before the optimizer applies the update."""
        checks = [torch.isfinite(objective)]
        if grad_norm is not None:
            checks.append(torch.isfinite(grad_norm))
        bad = (~torch.stack(checks)).double()
        if not bool(self.ctx.all_reduce_sum(bad).any()):
            return
        c = self.config
        if not bool(torch.isfinite(objective)):
            what = f"its loss is {objective.item()}"
        elif grad_norm is not None and not bool(torch.isfinite(grad_norm)):
            what = f"its gradient norm is {grad_norm.item()}"
        else:
            what = "its loss is not finite on another process"
        raise TrainingDivergedError(
            f"training diverged at update {self.progress.step + 1}: {what}; stopped before applying it "
            f"(the checkpoints keep the last finite weights). Lower --lr (now {c.lr:g}) or "
            f"--length-loss-weight, or keep --clip-norm > 0")

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ checkpoints
    def _rng_states(self) -> dict[str, Any]:
        state = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        if self.ctx.distributed:
            gathered: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(gathered, (state, cuda))
            return {"torch": [g[0] for g in gathered],
                    "cuda": [g[1] for g in gathered] if cuda is not None else None}
        return {"torch": [state], "cuda": [cuda] if cuda is not None else None}

    def _payload(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": "mple_metrics.checkpoint", "version": 1, "mple_version": __version__,
            "model_config": self.model_config.to_dict(), "train_config": self.config.to_dict(),
            "model": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": self._rng_states(), "progress": vars(self.progress).copy(), "metrics": metrics,
            "best": self.best, "tokenizer": self._tokenizer_files, "init_from": self.init_from,
            "proxy": {**self.proxy.settings(), **self.input_proxy.settings()},
        }

    def save_last(self, metrics: dict[str, Any] | None = None) -> None:
        payload = self._payload(metrics or {})  # every rank joins the RNG gather
        if self.ctx.is_main:
            save_checkpoint(self.out / "last.pt", payload)

    # ------------------------------------------------------------------ validation
    def _selection_value(self, metrics: dict[str, Any]) -> float:
        """The validation number that picks best.pt, oriented so that lower is better."""
        metric = self.config.selection_metric
        if metric == "bleu":
            return -metrics["bleu"]
        if metric == "proxy" and "proxy_loss_bits_per_token" in metrics:
            return metrics["proxy_loss_bits_per_token"]
        return metrics["nll_bits_per_token"]

    def run_validation(self) -> tuple[dict[str, Any], bool]:
        """Validate on rank 0, update best/top-k checkpoints; returns (metrics, stop early)."""
        c = self.config
        stop = torch.zeros(1, device=self.device)
        metrics: dict[str, Any] = {}
        if self.ctx.is_main:
            started = time.perf_counter()
            metrics = validate(self.raw_model, self.valid_encoded, self.valid_refs, self.tokenizers,
                               max_tokens=c.max_tokens, device=self.device,
                               options=DecodeOptions(beam=c.valid_beam),
                               bleu_max_sentences=c.valid_bleu_max_sentences, bleu=c.valid_bleu)
            if isinstance(self.raw_model, NATModel) and (c.target != "raw" or c.input != "vanilla") \
                    and self._proxy_validates:
                metrics.update(proxy_validation(self.raw_model, self.proxy, self.proxy_valid_encoded,
                                                c.max_tokens, self.device, input_proxy=self.input_proxy,
                                                seed=c.seed))
            metrics.update(step=self.progress.step, epoch=self.progress.epoch,
                           seconds=round(time.perf_counter() - started, 3))
            value = self._selection_value(metrics)
            improved = self.best["value"] is None or value < self.best["value"]
            if improved:
                self.best.update(value=value, nll=metrics["nll_bits_per_token"], step=self.progress.step)
            # The patience counts validations that do not better the last counted one by min_delta
            # (any improvement when it is 0).
            counted = self.best["counted"]
            if counted is None or value < counted - c.min_delta:
                self.best.update(counted=value, bad_validations=0)
            else:
                self.best["bad_validations"] += 1
            metrics["best_nll_bits_per_token"] = self.best["nll"]
            metrics["selection"] = {"metric": self.best["metric"], "best": abs(self.best["value"])
                                    if self.best["metric"] == "bleu" else self.best["value"],
                                    "best_step": self.best["step"]}
            with open(self.out / "valid.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(metrics) + "\n")
            if c.patience and self.best["bad_validations"] >= c.patience \
                    and self.progress.step >= c.min_updates:
                stop += 1
        stop = self.ctx.all_reduce_sum(stop)
        payload = self._payload(metrics)
        if self.ctx.is_main:
            self._keep_top(payload, self._selection_value(metrics))
            if self.best["step"] == self.progress.step:
                save_checkpoint(self.out / "best.pt", payload)
            payload["best"] = self.best
            save_checkpoint(self.out / "last.pt", payload)
        self.last_metrics = metrics
        return metrics, bool(stop.item() > 0)

    def _keep_top(self, payload: dict[str, Any], value: float) -> None:
        top = [entry for entry in self.best["top"] if entry[1] != self.progress.step]
        if len(top) < self.config.keep_best or value < max(entry[0] for entry in top):
            name = f"step{self.progress.step}.pt"
            top.append([value, self.progress.step, name])
            top.sort(key=lambda entry: (entry[0], entry[1]))
            save_checkpoint(self.out / name, payload)
            for evicted in top[self.config.keep_best:]:
                (self.out / evicted[2]).unlink(missing_ok=True)
            top = top[:self.config.keep_best]
        self.best["top"] = top

    # ------------------------------------------------------------------ loop
    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.ctx.is_main:
            with open(self.out / "train.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")

    def train(self) -> dict[str, Any]:
        c = self.config
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_orphan_temporaries(self.out)  # left by writes a kill interrupted
            remove_orphan_temporaries(self.out / "tokenizer", recursive=True)
            if self.progress.step == 0:  # a new run, or one killed before its first checkpoint
                self._truncate_log("valid.jsonl")
                self._truncate_log("train.jsonl")
            c.save_json(self.out / "config.json")
            self.tokenizers.save(self.out / "tokenizer")
        self._tokenizer_files = tokenizer_files(self.tokenizers)
        self.last_metrics: dict[str, Any] = dict(self._resumed_metrics)
        updates_per_epoch = math.ceil(len(self.train_batches) / c.update_freq)
        total = c.max_steps if c.max_steps else updates_per_epoch * c.max_epochs
        # GLAT anneals its ratio over the run as planned when it started: a resumed run with a new
        # --max-steps keeps the schedule it began with.
        if not self.progress.planned_updates:
            self.progress.planned_updates = total
        self.input_proxy.total_updates = self.progress.planned_updates
        bar = None
        if self.ctx.is_main and not c.quiet:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, initial=min(self.progress.step, total), unit="step", dynamic_ncols=True,
                       desc=f"train {c.model}-{c.size}")
        self.raw_model.train()
        stopped_early, validated_at = False, self._validated_step
        window_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self._window_positions, window_start = 0, time.perf_counter()
        done = bool(c.max_steps and self.progress.step >= c.max_steps)
        while not done and self.progress.epoch < c.max_epochs:
            self.train_batches.set_epoch(self.progress.epoch)
            indices = self.train_batches.batch_indices()[self.progress.batches_in_epoch:]
            for start in range(0, len(indices), c.update_freq):
                group = indices[start:start + c.update_freq]
                batches = [collate(self.train_batches.encoded, i).to(self.device) for i in group]
                window_loss += self.train_step(batches).double()
                self.progress.batches_in_epoch += len(group)
                step = self.progress.step
                if step % c.log_every == 0:  # every rank reaches this together (collective)
                    # positions are already summed over ranks; the loss is this rank's
                    stats = self.ctx.all_reduce_sum(torch.stack([window_loss, window_loss.new_zeros(())]))
                    stats[1] = self._window_positions
                    elapsed = time.perf_counter() - window_start
                    record = {"step": step, "epoch": self.progress.epoch,
                              "loss_bits_per_token": float(stats[0] / max(float(stats[1]), 1) / LN2),
                              "lr": self.optimizer.param_groups[0]["lr"],
                              "tokens_per_second": float(stats[1]) / max(elapsed, 1e-9)}
                    counts = self.proxy.take_counts()
                    if counts is not None:  # e.g. how often dynamic KD chose each candidate
                        summed = self.ctx.all_reduce_sum(torch.tensor(counts, dtype=torch.float64,
                                                                      device=self.device)).tolist()
                        record["proxy_choice_fraction"] = [c / max(sum(summed), 1.0) for c in summed]
                    self._log(record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{record['loss_bits_per_token']:.3f}",
                                        tok_s=f"{record['tokens_per_second']:.0f}", refresh=False)
                    window_loss.zero_()
                    self._window_positions, window_start = 0, time.perf_counter()
                if bar is not None:
                    bar.update(1)
                if c.valid_every_steps and step % c.valid_every_steps == 0:
                    _, stopped_early = self.run_validation()
                    validated_at = step
                elif c.save_every_steps and step % c.save_every_steps == 0:
                    self.save_last()
                if stopped_early or (c.max_steps and step >= c.max_steps):
                    done = True
                    break
            if not done:  # the epoch ran to its end
                self.progress.epoch += 1
                self.progress.batches_in_epoch = 0
                if not c.valid_every_steps:
                    _, stopped_early = self.run_validation()
                    validated_at = self.progress.step
                    done = stopped_early
        if validated_at != self.progress.step:
            self.run_validation()
        if bar is not None:
            bar.close()
        return self._finish(stopped_early)

    def _finish(self, stopped_early: bool) -> dict[str, Any]:
        summary = {"steps": self.progress.step, "epochs_completed": self.progress.epoch,
                   "tokens": self.progress.tokens, "stopped_early": stopped_early,
                   "best_step": self.best["step"], "best_nll_bits_per_token": self.best["nll"],
                   "last_validation": self.last_metrics, "dropped_long_pairs": self.dropped,
                   "model_config": self.model_config.to_dict(), "world_size": self.ctx.world_size,
                   "selection": {"metric": self.best["metric"], "best_step": self.best["step"]},
                   "proxy": {**self.proxy.settings(), **self.input_proxy.settings()},
                   "init_from": self.init_from}
        if self.ctx.is_main:
            top = self.best["top"]
            if self.config.keep_best > 1 and len(top) > 1:
                average_checkpoints([self.out / entry[2] for entry in top], self.out / "average.pt")
                summary["averaged"] = [entry[2] for entry in top]
            atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=1) + "\n")
        self.ctx.barrier()
        return summary


def train(config: TrainConfig) -> dict[str, Any]:
    """Run :class:`Trainer` (under torchrun: one process per rank) and return its summary."""
    return Trainer(config).train()
