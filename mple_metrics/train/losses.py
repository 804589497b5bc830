"""Training losses, summed (not averaged) so that the trainer can divide by the global token count
of an update across gradient-accumulation steps and processes (exact DDP parity)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..data import PAD_ID
from ..models import padding_mask


def smoothed_token_loss(logits: Tensor, target: Tensor, label_smoothing: float) -> Tensor:
    """Sum over non-pad positions of the label-smoothed cross-entropy in nats:
    ``(1 - eps) * NLL + eps * mean_v(-log p_v)``.  logits (N, L, V), target (N, L) with PAD_ID at
    padding."""
    return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD_ID,
                           label_smoothing=label_smoothing, reduction="sum")


def length_loss(length_logits: Tensor, length_targets: Tensor) -> Tensor:
    """Sum over sentences of the length predictor's cross-entropy in nats."""
    return F.cross_entropy(length_logits.float(), length_targets, reduction="sum")


def mask_head_loss(mask_logits: Tensor, hidden: Tensor, lengths: Tensor) -> Tensor:
    """Sum over target positions of the "is masked" head's binary cross-entropy in nats: it learns
    P_θ(z_i is masked | X) from the hidden positions (B, L) bool of the sampled proxy inputs."""
    inside = ~padding_mask(lengths, mask_logits.shape[1])
    bce = F.binary_cross_entropy_with_logits(mask_logits.float(), hidden.float(), reduction="none")
    return bce.masked_fill(~inside, 0.0).sum()
