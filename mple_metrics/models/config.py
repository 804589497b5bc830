"""Model configuration: one dataclass for AT and NAT models, with size presets.

Presets (``d`` model width, layers encoder+decoder, heads, feed-forward width):

=======  ====  ======  =====  =====
name     d     layers  heads  ffn
=======  ====  ======  =====  =====
tiny     64    2+2     4      256
small    128   3+3     4      512
base     512   6+6     8      2048   (the paper's Transformer-base)
=======  ====  ======  =====  =====
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MODEL_KINDS: tuple[str, ...] = ("at", "nat")
POSITION_KINDS: tuple[str, ...] = ("learned", "sinusoidal")
NAT_INPUT_KINDS: tuple[str, ...] = ("uniform", "soft", "mask")

PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=64, encoder_layers=2, decoder_layers=2, n_heads=4, ffn_dim=256),
    "small": dict(d_model=128, encoder_layers=3, decoder_layers=3, n_heads=4, ffn_dim=512),
    "base": dict(d_model=512, encoder_layers=6, decoder_layers=6, n_heads=8, ffn_dim=2048),
}


def dataclass_from_dict(cls, values: dict[str, Any], what: str):
    """``cls(**values)`` for a config dataclass; keys that are not fields are an error naming them."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(unknown)}")
    return cls(**values)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an encoder-decoder Transformer (pre-norm).

    Attributes:
        kind: ``"at"`` (causal decoder) or ``"nat"`` (non-causal decoder + length predictor).
        src_vocab_size, tgt_vocab_size: vocabulary sizes (special ids as in ``mple_metrics.data``).
        share_embeddings: one embedding table for source, target and output projection (needs
            equal vocabularies, i.e. a joint tokenizer).  The decoder's input embedding and output
            projection are always tied.
        positions: ``"learned"`` or ``"sinusoidal"`` position embeddings, ``max_positions`` of them.
        nat_input: NAT decoder input: ``"mask"``, the ``<mask>`` embedding at every position (CMLM's
            fully masked input), ``"uniform"`` copy of source embeddings (Gu et al. 2018) or
            ``"soft"`` copy (a softmax over source positions by distance, temperature
            ``soft_copy_tau``).
        max_length_offset: the NAT length predictor classifies ``target_len - source_len`` into
            ``2 * max_length_offset + 1`` classes (offsets outside are clipped to the end classes
            when training; documented, not silent: :meth:`NATModel.length_targets`).
    """

    kind: str = "at"
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 8000
    d_model: int = 64
    n_heads: int = 4
    ffn_dim: int = 256
    encoder_layers: int = 2
    decoder_layers: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.0
    max_positions: int = 256
    positions: str = "learned"
    share_embeddings: bool = True
    nat_input: str = "uniform"
    soft_copy_tau: float = 1.0
    max_length_offset: int = 64

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.positions not in POSITION_KINDS:
            raise ValueError(f"positions must be one of {POSITION_KINDS}, got {self.positions!r}")
        if self.nat_input not in NAT_INPUT_KINDS:
            raise ValueError(f"nat_input must be one of {NAT_INPUT_KINDS}, got {self.nat_input!r}")
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "ffn_dim",
                     "encoder_layers", "decoder_layers", "max_positions", "max_length_offset"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        tau = self.soft_copy_tau
        if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"soft_copy_tau must be a finite number > 0, got {tau!r}")
        if not isinstance(self.share_embeddings, bool):
            raise ValueError(f"share_embeddings must be True or False, got {self.share_embeddings!r}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"share_embeddings needs equal vocabularies, got src_vocab_size="
                             f"{self.src_vocab_size} and tgt_vocab_size={self.tgt_vocab_size}")

    @classmethod
    def preset(cls, size: str, **overrides: Any) -> ModelConfig:
        """The preset ``size`` (``tiny``/``small``/``base``) with explicit ``overrides``."""
        if size not in PRESETS:
            raise ValueError(f"size must be one of {tuple(PRESETS)}, got {size!r}")
        return cls.from_dict({**PRESETS[size], **overrides})

    @property
    def num_length_classes(self) -> int:
        return 2 * self.max_length_offset + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a dict; unknown keys are an error naming them."""
        return dataclass_from_dict(cls, values, "model config")

    def replace(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)

    def architecture_differences(self, other: ModelConfig) -> list[str]:
        """Fields that change parameter shapes or meaning and differ from ``other`` (dropout
        excluded): what makes two checkpoints incompatible."""
        ignore = {"dropout", "attention_dropout"}
        return [f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
                for f in fields(self) if f.name not in ignore
                and getattr(self, f.name) != getattr(other, f.name)]
