"""Compact encoder-decoder Transformers: the autoregressive :class:`ATModel`, the
non-autoregressive :class:`NATModel` (copy input, length predictor, mask-token input, "is masked"
head), their :class:`ModelConfig` with presets, and scoring of given targets
(:func:`score_targets`, :func:`nat_log_probs`).  See docs/training.md."""

from __future__ import annotations

from .at import ATModel, teacher_forcing
from .config import MODEL_KINDS, NAT_INPUT_KINDS, POSITION_KINDS, PRESETS, ModelConfig
from .nat import NATModel, NATOutput, uniform_copy_index
from .scoring import (UNITS, at_token_nll, nat_length_nll, nat_log_probs, score_targets,
                      unit_divisor)
from .transformer import EncoderOut, LayerCache, padding_mask

Model = ATModel | NATModel


def build_model(config: ModelConfig) -> ATModel | NATModel:
    """A freshly initialised model of ``config.kind`` (initialisation uses the global torch RNG)."""
    return ATModel(config) if config.kind == "at" else NATModel(config)


from .checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError,  # noqa: E402
                         NonFiniteCheckpointWarning, check_state_dict, checkpoint_file,
                         load_checkpoint, load_model, load_state_dicts, nonfinite_entries,
                         restore_tokenizers)

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointError", "NonFiniteCheckpointWarning",
    "check_state_dict", "checkpoint_file", "load_checkpoint", "load_model", "load_state_dicts",
    "nonfinite_entries", "restore_tokenizers",
    "ATModel", "NATModel", "NATOutput", "ModelConfig", "EncoderOut", "LayerCache", "Model",
    "MODEL_KINDS", "NAT_INPUT_KINDS", "POSITION_KINDS", "PRESETS", "UNITS",
    "at_token_nll", "build_model", "nat_length_nll", "nat_log_probs", "padding_mask",
    "score_targets", "teacher_forcing", "uniform_copy_index", "unit_divisor",
]
