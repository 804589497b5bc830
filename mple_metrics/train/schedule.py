"""Inverse square-root learning-rate schedule with linear warmup (Vaswani et al. 2017; fairseq's
``inverse_sqrt``).  A pure function of the update number, so resuming needs no scheduler state."""

from __future__ import annotations

import math

import torch


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
