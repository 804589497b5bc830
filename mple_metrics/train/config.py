"""Training configuration: one dataclass, saved as JSON beside every checkpoint (``config.json``)
and inside it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_text
from ..models.config import MODEL_KINDS, NAT_INPUT_KINDS, PRESETS, dataclass_from_dict

AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")

#: Settings that may differ when a run is resumed (they do not change what a step computes).
RESUMABLE_OVERRIDES: frozenset[str] = frozenset({
    "max_steps", "max_epochs", "quiet", "log_every", "patience", "save_every_steps", "resume",
    "valid_bleu_max_sentences", "device",
})


@dataclass
class TrainConfig:
    """Every setting of a training run (defaults in parentheses are the ``mple train`` defaults).

    Data: ``data`` dataset directory (or ``"bundled"``); ``tokenizer`` a saved tokenizer directory
    to reuse, else one is learnt on the training split (``tokenizer_kind``, ``vocab_size``);
    ``max_positions`` longer training pairs are skipped (their count is logged).
    Model: ``model`` at/nat, ``size`` preset, ``model_overrides`` explicit ModelConfig fields,
    ``dropout``, ``nat_input`` uniform/soft, ``length_loss_weight`` (NAT, 0.1).
    Optimisation: AdamW (``lr``, ``betas``, ``adam_eps``, ``weight_decay``), inverse-sqrt schedule
    with linear ``warmup_steps`` from ``warmup_init_lr``, ``label_smoothing`` (0.1), ``clip_norm``
    (0 = off), ``update_freq`` gradient accumulation, ``amp`` (CUDA only).
    Batching: ``max_tokens`` padded tokens per batch per process, ``max_sentences``.
    Schedule: ``max_steps`` (0 = no limit) and ``max_epochs``; validation every epoch or every
    ``valid_every_steps``; early stop after ``patience`` validations without a better validation
    NLL (0 = never); ``keep_best`` checkpoints kept and averaged; ``save_every_steps`` extra
    ``last.pt`` writes between validations.
    """

    data: str = "bundled"
    out: str = "run"
    model: str = "at"
    size: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.1
    nat_input: str = "uniform"
    length_loss_weight: float = 0.1
    tokenizer: str | None = None
    tokenizer_kind: str = "spm"
    vocab_size: int = 8000
    max_positions: int = 256
    train_split: str = "train"
    valid_split: str = "valid"
    lr: float = 5e-4
    warmup_steps: int = 1000
    warmup_init_lr: float = 1e-7
    betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    update_freq: int = 1
    amp: str = "none"
    max_tokens: int = 4096
    max_sentences: int | None = None
    max_steps: int = 0
    max_epochs: int = 100
    valid_every_steps: int = 0
    valid_bleu_max_sentences: int = 0
    valid_beam: int = 1
    patience: int = 5
    keep_best: int = 3
    save_every_steps: int = 0
    log_every: int = 50
    seed: int = 1
    device: str = "cpu"
    quiet: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON gives a list
        if self.model not in MODEL_KINDS:
            raise ValueError(f"model must be one of {MODEL_KINDS}, got {self.model!r}")
        if self.size not in PRESETS:
            raise ValueError(f"size must be one of {tuple(PRESETS)}, got {self.size!r}")
        if self.nat_input not in NAT_INPUT_KINDS:
            raise ValueError(f"nat_input must be one of {NAT_INPUT_KINDS}, got {self.nat_input!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        positive = ("lr", "max_tokens", "update_freq", "max_epochs", "log_every", "keep_best",
                    "valid_beam", "max_positions", "vocab_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        non_negative = ("warmup_steps", "warmup_init_lr", "weight_decay", "clip_norm", "max_steps",
                        "valid_every_steps", "valid_bleu_max_sentences", "patience",
                        "save_every_steps", "length_loss_weight")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.max_sentences is not None and self.max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {self.max_sentences}")
        if not isinstance(self.model_overrides, dict):
            raise TypeError("model_overrides must be a dict of ModelConfig fields")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return dataclass_from_dict(cls, values, "training config")

    def save_json(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def resume_differences(self, saved: TrainConfig) -> list[str]:
        """Settings that differ from the ``saved`` run's and may not change on ``--resume``."""
        return [f"{f.name}: run has {getattr(saved, f.name)!r}, now {getattr(self, f.name)!r}"
                for f in fields(self) if f.name not in RESUMABLE_OVERRIDES
                and getattr(self, f.name) != getattr(saved, f.name)]
