"""The compact trainer: :class:`TrainConfig`, :class:`Trainer` / :func:`train`, checkpoints
(atomic, validated, averaged), torchrun/DDP set-up, losses, the learning-rate schedule (and
the schedule derived from the data) and validation.  See docs/training.md."""

from __future__ import annotations

from .checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError,
                         NonFiniteCheckpointWarning, average_checkpoints, average_state_dicts,
                         check_state_dict, load_checkpoint, load_model, load_state_dicts,
                         nonfinite_entries, restore_tokenizers, save_checkpoint, tokenizer_files)
from .config import AMP_MODES, LR_SCHEDULES, RESUMABLE_OVERRIDES, SELECT_METRICS, TrainConfig
from .distributed import DistributedContext, resolve_device, setup_distributed
from .losses import length_loss, mask_head_loss, smoothed_token_loss
from .fine_tuning import load_initial_weights
from .schedule import (DEFAULT_LR, FIXED_SCHEDULE, MIN_UPDATES_PER_EPOCH, SCHEDULE_FIELDS, SCHEDULE_MODES,
                       Schedule, constant_lr, derive_schedule, inverse_sqrt_lr, learning_rate,
                       resolve_schedule, set_lr)
from .trainer import Trainer, TrainingDivergedError, filter_long, kept_pairs, train
from .validation import bleu_scores, proxy_validation, reference_nll, validate

__all__ = [
    "AMP_MODES", "LR_SCHEDULES", "SELECT_METRICS", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "DistributedContext",
    "NonFiniteCheckpointWarning", "RESUMABLE_OVERRIDES", "TrainConfig", "Trainer",
    "TrainingDivergedError", "average_checkpoints",
    "average_state_dicts", "bleu_scores", "check_state_dict", "filter_long", "inverse_sqrt_lr",
    "length_loss", "load_checkpoint", "load_model", "load_state_dicts", "nonfinite_entries",
    "reference_nll",
    "resolve_device", "restore_tokenizers", "save_checkpoint", "set_lr", "setup_distributed",
    "smoothed_token_loss", "tokenizer_files", "train", "validate",
    "DEFAULT_LR", "FIXED_SCHEDULE", "MIN_UPDATES_PER_EPOCH", "SCHEDULE_FIELDS", "SCHEDULE_MODES", "Schedule",
    "derive_schedule", "resolve_schedule",
    "constant_lr", "kept_pairs", "mask_head_loss", "learning_rate", "load_initial_weights", "proxy_validation",
]
