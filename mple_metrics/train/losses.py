"""Training losses, summed (not averaged) so that the trainer can divide by the global token count
of an update across gradient-accumulation steps and processes (exact DDP parity)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..data import PAD_ID


def smoothed_token_loss(logits: Tensor, target: Tensor, label_smoothing: float) -> Tensor:
    """Sum over non-pad positions of the label-smoothed cross-entropy in nats:
    ``(1 - eps) * NLL + eps * mean_v(-log p_v)``.  logits (N, L, V), target (N, L) with PAD_ID at
    padding."""
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD_ID,
                           label_smoothing=label_smoothing, reduction="sum")


def length_loss(length_logits: Tensor, length_targets: Tensor) -> Tensor:
    """Sum over sentences of the length predictor's cross-entropy in nats."""
    return F.cross_entropy(length_logits.float(), length_targets, reduction="sum")
