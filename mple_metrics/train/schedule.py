"""The learning-rate schedule: inverse square root with linear warmup (Vaswani et al. 2017;
fairseq's ``inverse_sqrt``) or constant after the warmup, a pure function of the update number so
resuming needs no scheduler state; and the schedule derived from the training data (batch size,
warmup, peak learning rate, the first update early stopping may stop at) that ``mple train`` and
the C estimator use by default."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..data import BatchIterator, EncodedSplit


def inverse_sqrt_lr(step: int, peak_lr: float, warmup_steps: int, warmup_init_lr: float = 1e-7) -> float:
    """Learning rate of update ``step`` (1-based): linear from ``warmup_init_lr`` to ``peak_lr``
    over ``warmup_steps`` updates, then ``peak_lr * sqrt(warmup_steps / step)``."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if warmup_steps == 0:
        return peak_lr / math.sqrt(step)
    if step <= warmup_steps:
        return warmup_init_lr + (peak_lr - warmup_init_lr) * step / warmup_steps
    return peak_lr * math.sqrt(warmup_steps / step)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def constant_lr(step: int, peak_lr: float, warmup_steps: int, warmup_init_lr: float = 1e-7) -> float:
    """Linear warmup as :func:`inverse_sqrt_lr`, then ``peak_lr`` for good (the fixed learning
    rate at which the paper fine-tunes OaXE)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if warmup_steps and step <= warmup_steps:
        return warmup_init_lr + (peak_lr - warmup_init_lr) * step / warmup_steps
    return peak_lr


_SCHEDULES = {"inverse-sqrt": inverse_sqrt_lr, "constant": constant_lr}


def learning_rate(schedule: str, step: int, peak_lr: float, warmup_steps: int,
                  warmup_init_lr: float = 1e-7) -> float:
    """Learning rate of update ``step`` under ``schedule`` (``inverse-sqrt`` or ``constant``)."""
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule must be one of {tuple(_SCHEDULES)}, got {schedule!r}")
    return _SCHEDULES[schedule](step, peak_lr, warmup_steps, warmup_init_lr)


# ---------------------------------------------------------------------------------------------
# The schedule derived from the data (``--schedule auto``, the default of ``mple train`` and of the
# C estimator).  A fixed recipe made for large corpora (warmup 1,000 updates, 4,096 tokens per
# batch) never leaves its warmup on a small dataset: 3,000 pairs of 6 words are 5 batches of 4,096
# tokens, so 100 epochs are 500 updates and end at half the peak learning rate.  Derived instead:

#: An epoch of about this many updates: the token budget per batch is the padded training tokens
#: over this, within [MIN_MAX_TOKENS, MAX_MAX_TOKENS].
MIN_UPDATES_PER_EPOCH = 150
MIN_MAX_TOKENS = 256
MAX_MAX_TOKENS = 4096
#: Warmup: the planned updates over this (10%), at least 1 and at most MAX_WARMUP_STEPS.
WARMUP_DIVISOR = 10
MAX_WARMUP_STEPS = 1000
#: Peak learning rate by model size: small Transformers train stably (and many times faster) at
#: rates the base model would diverge at.
DEFAULT_LR = {"tiny": 2e-3, "small": 1e-3, "base": 5e-4}
#: Early stopping may not stop a run before this many warmups are done: until then the learning
#: rate rises or sits near its peak (at 2 warmups it is down to 1/sqrt(2) of it), and a validation
#: NLL that stalls there says little about the plateau the decaying rate reaches.
MIN_UPDATES_WARMUPS = 2
#: ``--schedule fixed``: the recipe of earlier versions, made for large data (fairseq's base).
FIXED_SCHEDULE: dict[str, float | int] = {"lr": 5e-4, "warmup_steps": 1000, "max_tokens": 4096, "min_updates": 0}
SCHEDULE_MODES: tuple[str, ...] = ("auto", "fixed")
#: The TrainConfig fields a schedule fills when they are not given (None).
SCHEDULE_FIELDS: tuple[str, ...] = ("lr", "warmup_steps", "max_tokens", "min_updates")


@dataclass
class Schedule:
    """A derived optimisation schedule (every value concrete), as recorded in the outputs.
    ``min_updates``: early stopping may stop the run only after this update."""

    max_tokens: int
    updates_per_epoch: int
    planned_updates: int
    warmup_steps: int
    max_epochs: int
    max_steps: int
    patience: int
    lr: float
    label_smoothing: float = 0.0
    min_updates: int = 0
    padded_train_tokens: int = 0


def padded_tokens(encoded: EncodedSplit) -> int:
    """Padded tokens of one epoch: each pair as long as its longer side (the AT's target with </s>)."""
    return int(sum(max(s, t + 1) for s, t in zip(encoded.src_lengths(), encoded.tgt_lengths())))


def derived_max_tokens(padded: int) -> int:
    """Tokens per batch for about :data:`MIN_UPDATES_PER_EPOCH` batches an epoch, within bounds."""
    return min(MAX_MAX_TOKENS, max(MIN_MAX_TOKENS, padded // MIN_UPDATES_PER_EPOCH))


def derived_warmup(planned_updates: int) -> int:
    return max(1, min(MAX_WARMUP_STEPS, planned_updates // WARMUP_DIVISOR))


def updates_per_epoch(encoded: EncodedSplit, max_tokens: int, max_sentences: int | None = None,
                      world_size: int = 1, update_freq: int = 1) -> int:
    """Optimizer updates of one epoch, counted as the trainer counts them (rank 0's batches)."""
    batches = BatchIterator(encoded, max_tokens=max_tokens, max_sentences=max_sentences, shuffle=True,
                            seed=0, rank=0, world_size=world_size)
    return max(1, math.ceil(len(batches) / update_freq))


def derive_schedule(encoded: EncodedSplit, size: str, max_epochs: int, max_steps: int = 0,
                    patience: int = 0, lr: float | None = None, max_tokens: int | None = None,
                    warmup_steps: int | None = None, min_updates: int | None = None,
                    label_smoothing: float = 0.0, max_sentences: int | None = None,
                    world_size: int = 1, update_freq: int = 1) -> Schedule:
    """The schedule of a run on the training pairs ``encoded``: values given (not None) are kept,
    the others derived — batch size from the epoch's padded tokens, warmup from the planned
    updates (``max_epochs`` epochs, capped by ``max_steps`` > 0), peak learning rate from the
    model size, the first update early stopping may stop at from the warmup."""
    if size not in DEFAULT_LR:
        raise ValueError(f"--size must be one of {tuple(DEFAULT_LR)}, got {size!r}")
    padded = padded_tokens(encoded)
    tokens = max_tokens if max_tokens is not None else derived_max_tokens(padded)
    per_epoch = updates_per_epoch(encoded, tokens, max_sentences, world_size, update_freq)
    planned = per_epoch * max_epochs
    if max_steps:
        planned = min(max_steps, planned)
    warmup = warmup_steps if warmup_steps is not None else derived_warmup(planned)
    return Schedule(max_tokens=tokens, updates_per_epoch=per_epoch, planned_updates=planned,
                    warmup_steps=warmup, max_epochs=max_epochs, max_steps=max_steps, patience=patience,
                    lr=lr if lr is not None else DEFAULT_LR[size], label_smoothing=label_smoothing,
                    min_updates=min_updates if min_updates is not None else MIN_UPDATES_WARMUPS * warmup,
                    padded_train_tokens=padded)


def schedule_reasons(schedule: Schedule, derived: list[str], size: str) -> dict[str, str]:
    """Why each derived value is what it is (recorded beside the values)."""
    why = {
        "max_tokens": (f"{schedule.padded_train_tokens} padded training tokens / {MIN_UPDATES_PER_EPOCH} updates "
                       f"per epoch = {schedule.padded_train_tokens // MIN_UPDATES_PER_EPOCH}, within "
                       f"[{MIN_MAX_TOKENS}, {MAX_MAX_TOKENS}]: {schedule.updates_per_epoch} updates per epoch"),
        "warmup_steps": (f"1/{WARMUP_DIVISOR} of the {schedule.planned_updates} planned updates "
                         f"({schedule.updates_per_epoch} per epoch x {schedule.max_epochs} epochs"
                         + (f", at most --max-steps {schedule.max_steps}" if schedule.max_steps else "")
                         + f"), within [1, {MAX_WARMUP_STEPS}]"),
        "lr": f"peak learning rate of a {size} model",
        "min_updates": (f"{MIN_UPDATES_WARMUPS} x the {schedule.warmup_steps}-update warmup: early stopping waits "
                        f"until the run is past its peak learning rate"),
    }
    return {name: why[name] for name in derived}


def resolve_schedule(config: Any, encoded: EncodedSplit, world_size: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values a run trains with for the :data:`SCHEDULE_FIELDS` of ``config`` (a TrainConfig)
    left None, and the record of them written into config.json (``schedule_derivation``): the mode,
    what was derived or taken from the fixed recipe and why, what was given, and the plan."""
    missing = [name for name in SCHEDULE_FIELDS if getattr(config, name) is None]
    given = {name: getattr(config, name) for name in SCHEDULE_FIELDS if name not in missing}
    if config.schedule == "fixed":
        values = {name: FIXED_SCHEDULE[name] for name in missing}
        schedule = derive_schedule(encoded, config.size, config.max_epochs, config.max_steps, config.patience,
                                   label_smoothing=config.label_smoothing, max_sentences=config.max_sentences,
                                   world_size=world_size, update_freq=config.update_freq,
                                   **{**FIXED_SCHEDULE, **given})
        why = {name: "the fixed schedule (--schedule fixed)" for name in missing}
    else:
        schedule = derive_schedule(encoded, config.size, config.max_epochs, config.max_steps, config.patience,
                                   label_smoothing=config.label_smoothing, max_sentences=config.max_sentences,
                                   world_size=world_size, update_freq=config.update_freq, **given)
        values = {name: getattr(schedule, name) for name in missing}
        why = schedule_reasons(schedule, missing, config.size)
    record = {"mode": config.schedule, "derived" if config.schedule == "auto" else "fixed": values,
              "given": given, "why": why, "train_pairs": len(encoded),
              "padded_train_tokens": schedule.padded_train_tokens,
              "updates_per_epoch": schedule.updates_per_epoch, "planned_updates": schedule.planned_updates}
    return values, record
