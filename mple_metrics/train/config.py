"""Training configuration: one dataclass, saved as JSON beside every checkpoint (``config.json``)
and inside it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_text
from ..data import TOKENIZER_KINDS, dataset_location
from ..models.config import MODEL_KINDS, NAT_INPUT_KINDS, PRESETS, ModelConfig, dataclass_from_dict
from ..proxies import (CMLM_COUNTS, INPUT_NAMES, TARGET_NAMES, TARGETS_WITH_INPUTS, TRUNCATE_BASES,
                       check_target_options)
from .schedule import SCHEDULE_FIELDS, SCHEDULE_MODES

AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")
LR_SCHEDULES: tuple[str, ...] = ("inverse-sqrt", "constant")
#: What picks best.pt and early stopping: ``nll`` of the references, the ``proxy`` loss of the
#: method's own target on the validation split, ``bleu``, or ``auto`` (nll for raw, proxy otherwise).
SELECT_METRICS: tuple[str, ...] = ("auto", "nll", "proxy", "bleu")

#: Options that belong to one proxy target: given with another ``--target`` they are an error.
TARGET_OPTIONS: dict[str, tuple[str, ...]] = {
    "skip_penalty": ("axe",), "pred_length_scale": ("axe",), "oaxe_pretrain_steps": ("oaxe",),
    "oaxe_truncate": ("oaxe",), "oaxe_truncate_base": ("oaxe",), "gamma": ("dynamic-kd",),
    "beta": ("dynamic-kd",), "regularizer": ("dynamic-kd",),
}
#: Options that belong to some proxy inputs only.
INPUT_OPTIONS: dict[str, tuple[str, ...]] = {
    "cmlm_count": ("cmlm",), "glat_anneal_steps": ("glat", "glat-lev", "glat-pref", "glat-1-pref"),
}

#: Settings that may differ when a run is resumed (they do not change what a step computes).
#: ``out`` is where the run is now: a moved or copied run directory resumes.
RESUMABLE_OVERRIDES: frozenset[str] = frozenset({
    "max_steps", "max_epochs", "quiet", "log_every", "patience", "min_delta", "save_every_steps", "resume",
    "valid_bleu_max_sentences", "valid_bleu", "device", "out", "min_updates", "schedule_derivation",
})

#: Fields that ``mple train`` does not expose as options (errors name the field, not an option).
API_ONLY_FIELDS: frozenset[str] = frozenset({
    "model_overrides", "betas", "adam_eps", "warmup_init_lr", "train_split", "valid_split",
    "schedule_derivation",
})

#: ModelConfig fields that a named training option sets (``model_overrides`` may not contradict
#: them) and the fields the tokenizer determines (``model_overrides`` may not set them).
NAMED_MODEL_FIELDS: dict[str, str] = {"kind": "model", "dropout": "dropout", "nat_input": "nat_input",
                                      "max_positions": "max_positions"}
TOKENIZER_MODEL_FIELDS: frozenset[str] = frozenset({"src_vocab_size", "tgt_vocab_size"})

_INT_RANGES: dict[str, int] = {  # integer settings: the smallest allowed value
    "vocab_size": 1, "max_positions": 2, "warmup_steps": 0, "update_freq": 1, "max_tokens": 1,
    "max_steps": 0, "max_epochs": 1, "min_updates": 0, "valid_every_steps": 0, "valid_bleu_max_sentences": 0,
    "valid_beam": 1, "patience": 0, "keep_best": 1, "save_every_steps": 0, "log_every": 1,
    "oaxe_pretrain_steps": 0, "glat_anneal_steps": 0,
}
_FLOAT_RANGES: dict[str, tuple[float, bool]] = {  # float settings: (bound, bound allowed) from below
    "lr": (0.0, False), "warmup_init_lr": (0.0, True), "adam_eps": (0.0, False),
    "weight_decay": (0.0, True), "clip_norm": (0.0, True), "length_loss_weight": (0.0, True),
    "skip_penalty": (0.0, True), "pred_length_scale": (1.0, True), "beta": (0.0, True),
    "mask_head_weight": (0.0, True), "min_delta": (0.0, True),
}
_UNIT_INTERVAL: tuple[str, ...] = ("label_smoothing", "dropout")  # [0, 1)
MAX_SEED = 2 ** 63


def option_name(name: str) -> str:
    """How an error names the setting ``name``: its ``mple train`` option, else the field."""
    return name if name in API_ONLY_FIELDS else "--" + name.replace("_", "-")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class TrainConfig:
    """Every setting of a training run (defaults in parentheses are the ``mple train`` defaults).

    Data: ``data`` dataset directory (or ``"bundled"``); ``tokenizer`` a saved tokenizer directory
    to reuse, else one is learnt on the training split (``tokenizer_kind``, ``vocab_size``);
    ``max_positions`` longer training pairs are skipped (their count is logged).
    Model: ``model`` at/nat, ``size`` preset, ``model_overrides`` explicit ModelConfig fields,
    ``dropout``, ``nat_input`` the NAT's vanilla decoder input uniform/soft/mask (None: ``mask``
    for the CMLM inputs, whose vanilla input is the fully masked sequence, else ``uniform``),
    ``length_loss_weight`` (NAT, 0.1).
    Optimisation: AdamW (``lr``, ``betas``, ``adam_eps``, ``weight_decay``), inverse-sqrt schedule
    with linear ``warmup_steps`` from ``warmup_init_lr``, ``label_smoothing`` (0.1), ``clip_norm``
    (0 = off), ``update_freq`` gradient accumulation, ``amp`` (CUDA only).
    Batching: ``max_tokens`` padded tokens per batch per process, ``max_sentences``.
    ``schedule``: ``auto`` derives ``lr``, ``warmup_steps``, ``max_tokens`` and ``min_updates``
    left None from the training data (train/schedule.py), ``fixed`` gives them the fixed recipe
    (``FIXED_SCHEDULE``); given values are kept either way.  The trainer writes the resolved
    values into config.json, with ``schedule_derivation`` (what was derived, from what, why).
    Schedule: ``max_steps`` (0 = no limit) and ``max_epochs``; validation every epoch or every
    ``valid_every_steps`` (NLL, and BLEU of greedy/beam outputs unless ``valid_bleu`` is False,
    on the first ``valid_bleu_max_sentences`` sentences, 0 = all); early stop after ``patience``
    validations without a better validation NLL (0 = never), never before update ``min_updates``;
    with ``min_delta`` > 0 a validation counts as better for the patience only where it betters the
    last one so counted by more than ``min_delta`` (the selection metric's units: bits/token for
    NLL), while ``best.pt`` keeps the lowest value whatever the margin;
    ``keep_best`` checkpoints kept and averaged; ``save_every_steps`` extra ``last.pt`` writes
    between validations; ``select_metric`` what "better" means (see
    ``SELECT_METRICS``); ``lr_schedule`` inverse-sqrt or constant (``lr`` after the warmup).
    Proxy target (NAT; docs/proxies.md): ``target`` raw/kd/axe/oaxe/dynamic-kd, ``kd`` KD dataset
    or candidate directories, AXE ``skip_penalty`` δ and ``pred_length_scale``, OaXE
    ``oaxe_pretrain_steps``, ``oaxe_truncate`` and ``oaxe_truncate_base``, dynamic KD ``gamma``,
    ``beta`` and ``regularizer``.  ``init_from``: start from this checkpoint's weights (same
    architecture and tokenizer; fresh optimizer and schedule).
    Proxy input (NAT): ``input`` vanilla/cmlm/cmlm-fixed/glat/glat-lev/glat-pref/glat-1-pref,
    ``cmlm_count`` (fairseq or paper), ``glat_anneal_steps`` (0 = the whole run),
    ``mask_head_weight`` weight of the "is masked" head's binary cross-entropy (0 = not trained).
    """

    data: str = "bundled"
    out: str = "run"
    model: str = "at"
    size: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.1
    nat_input: str | None = None
    length_loss_weight: float = 0.1
    tokenizer: str | None = None
    tokenizer_kind: str = "spm"
    vocab_size: int = 8000
    max_positions: int = 256
    train_split: str = "train"
    valid_split: str = "valid"
    schedule: str = "auto"
    lr: float | None = None
    warmup_steps: int | None = None
    warmup_init_lr: float = 1e-7
    betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    update_freq: int = 1
    amp: str = "none"
    max_tokens: int | None = None
    max_sentences: int | None = None
    max_steps: int = 0
    max_epochs: int = 100
    valid_every_steps: int = 0
    valid_bleu_max_sentences: int = 0
    valid_bleu: bool = True
    valid_beam: int = 1
    patience: int = 5
    min_delta: float = 0.0
    min_updates: int | None = None
    keep_best: int = 3
    save_every_steps: int = 0
    log_every: int = 50
    seed: int = 1
    device: str = "cpu"
    quiet: bool = False
    resume: bool = False
    lr_schedule: str = "inverse-sqrt"
    select_metric: str = "auto"
    init_from: str | None = None
    target: str = "raw"
    kd: list[str] = field(default_factory=list)
    skip_penalty: float = 1.0
    pred_length_scale: float = 1.0
    oaxe_pretrain_steps: int = 0
    oaxe_truncate: float | None = None
    oaxe_truncate_base: str = "loss"
    gamma: list[float] | None = None
    beta: float = 0.2
    regularizer: bool = True
    input: str = "vanilla"
    cmlm_count: str = "fairseq"
    glat_anneal_steps: int = 0
    mask_head_weight: float = 1.0
    schedule_derivation: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """Checks every setting: choices, integers and their ranges, floats finite and in range,
        and ``model_overrides`` (valid ModelConfig fields, not contradicting a named option).
        Errors are ValueErrors naming the option, e.g. ``--lr must be a finite number > 0, got inf``."""
        if isinstance(self.betas, (list, tuple)):
            self.betas = tuple(self.betas)  # JSON gives a list
        if self.nat_input is None:
            self.nat_input = "mask" if str(self.input).startswith("cmlm") else "uniform"
        for name, choices in (("model", MODEL_KINDS), ("size", tuple(PRESETS)),
                              ("nat_input", NAT_INPUT_KINDS), ("amp", AMP_MODES),
                              ("tokenizer_kind", TOKENIZER_KINDS), ("lr_schedule", LR_SCHEDULES),
                              ("select_metric", SELECT_METRICS), ("target", TARGET_NAMES),
                              ("oaxe_truncate_base", TRUNCATE_BASES), ("input", INPUT_NAMES),
                              ("cmlm_count", CMLM_COUNTS), ("schedule", SCHEDULE_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{option_name(name)} must be one of {choices}, got {getattr(self, name)!r}")
        for name, low in _INT_RANGES.items():
            value = getattr(self, name)
            if value is None and name in SCHEDULE_FIELDS:
                continue  # derived (or the fixed recipe's) when the run starts
            if not _is_int(value) or value < low:
                raise ValueError(f"{option_name(name)} must be an integer >= {low}, got {value!r}")
        if self.max_sentences is not None and (not _is_int(self.max_sentences) or self.max_sentences < 1):
            raise ValueError(f"--max-sentences must be an integer >= 1 (or unset), got {self.max_sentences!r}")
        if not _is_int(self.seed) or not 0 <= self.seed < MAX_SEED:
            raise ValueError(f"--seed must be an integer in [0, 2**63), got {self.seed!r}")
        for name, (low, inclusive) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if value is None and name in SCHEDULE_FIELDS:
                continue
            if not _is_number(value) or not math.isfinite(value) or value < low or (value == low and not inclusive):
                raise ValueError(f"{option_name(name)} must be a finite number {'>=' if inclusive else '>'} "
                                 f"{low:g}, got {value!r}")
        for name in _UNIT_INTERVAL:
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value < 1.0:
                raise ValueError(f"{option_name(name)} must lie in [0, 1), got {value!r}")
        if (not isinstance(self.betas, tuple) or len(self.betas) != 2
                or not all(_is_number(b) and 0.0 <= b < 1.0 for b in self.betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("quiet", "resume", "valid_bleu", "regularizer"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{option_name(name)} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.model_overrides, dict):
            raise TypeError("model_overrides must be a dict of ModelConfig fields")
        if self.schedule_derivation is not None and not isinstance(self.schedule_derivation, dict):
            raise ValueError(f"schedule_derivation must be a dict (the trainer's record), "
                             f"got {self.schedule_derivation!r}")
        self._check_model_overrides()
        self._check_proxy_settings()

    def _check_proxy_settings(self) -> None:
        """The proxy target and its options: a method with the data it needs, options of one
        method not given to another, values in range."""
        if isinstance(self.kd, tuple):
            self.kd = list(self.kd)
        if not isinstance(self.kd, list) or not all(isinstance(k, str) and k for k in self.kd):
            raise ValueError(f"--kd must name directories, got {self.kd!r}")
        if self.model == "at" and self.target != "raw":
            raise ValueError(f"--target {self.target} trains a NAT; use --model nat (an AT trains on --target raw)")
        check_target_options(self.target, self.kd)
        defaults = {f.name: f.default for f in fields(self)}
        for name, targets in TARGET_OPTIONS.items():
            if self.target not in targets and getattr(self, name) != defaults[name]:
                option = "--no-regularizer" if name == "regularizer" else option_name(name)
                raise ValueError(f"{option} applies to --target {'/'.join(targets)}, not --target {self.target}")
        if self.input != "vanilla":
            if self.model == "at":
                raise ValueError(f"--input {self.input} trains a NAT; use --model nat")
            if self.target not in TARGETS_WITH_INPUTS:
                raise ValueError(f"--input {self.input} cannot be combined with --target {self.target} (the paper "
                                 f"combines proxy inputs with raw, kd or dynamic-kd targets only)")
        for name, inputs in INPUT_OPTIONS.items():
            if self.input not in inputs and getattr(self, name) != defaults[name]:
                raise ValueError(f"{option_name(name)} applies to --input {'/'.join(inputs)}, not --input {self.input}")
        if self.oaxe_truncate is not None and (not _is_number(self.oaxe_truncate)
                                               or not 0.0 < self.oaxe_truncate <= 1.0):
            raise ValueError(f"--oaxe-truncate must be a probability in (0, 1], got {self.oaxe_truncate!r}")
        if self.gamma is not None:
            if isinstance(self.gamma, tuple):
                self.gamma = list(self.gamma)
            if not isinstance(self.gamma, list) or not self.gamma or not all(
                    _is_number(g) and math.isfinite(g) and g >= 0 for g in self.gamma):
                raise ValueError(f"--gamma must be finite numbers >= 0, one per candidate, got {self.gamma!r}")
        if self.select_metric == "bleu" and not self.valid_bleu:
            raise ValueError("--select-metric bleu needs validation BLEU; drop --no-valid-bleu")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ValueError(f"--init-from must name a checkpoint, got {self.init_from!r}")

    @property
    def selection_metric(self) -> str:
        """The metric that picks best.pt and stops early (``auto`` resolved)."""
        if self.select_metric != "auto":
            return self.select_metric
        return "nll" if self.target == "raw" else "proxy"

    def _check_model_overrides(self) -> None:
        """``model_overrides`` name ModelConfig fields with valid values and agree with the named
        options (``--model-arg kind=at --model nat`` is refused, not trained as an AT)."""
        for key, value in self.model_overrides.items():
            if key in NAMED_MODEL_FIELDS:
                named = NAMED_MODEL_FIELDS[key]
                if value != getattr(self, named):
                    raise ValueError(f"--model-arg {key}={value!r} contradicts {option_name(named)} "
                                     f"{getattr(self, named)!r}; set it with {option_name(named)} only")
            elif key in TOKENIZER_MODEL_FIELDS:
                raise ValueError(f"--model-arg {key} cannot be set: the vocabulary sizes are the "
                                 f"tokenizer's (choose them with --vocab-size or --tokenizer)")
        values = {"kind": self.model, "dropout": self.dropout, "nat_input": self.nat_input,
                  "max_positions": self.max_positions, **self.model_overrides}
        values.setdefault("share_embeddings", False)  # the tokenizer decides; not known yet
        try:
            ModelConfig.preset(self.size, **values)
        except (TypeError, ValueError) as error:
            raise ValueError(f"--model-arg: {error}") from None

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
        """Settings that differ from the ``saved`` run's and may not change on ``--resume``.  Paths
        compare by the location they name (a relative ``data/x`` and its absolute form are one);
        ``tokenizer_kind`` and ``vocab_size`` do not count where both runs load a ``tokenizer`` (they
        only shape a tokenizer learnt afresh); schedule values left None here are the saved run's
        (derived once, when it started)."""
        unused = {"tokenizer_kind", "vocab_size"} if self.tokenizer and saved.tokenizer else set()
        unused |= {name for name in SCHEDULE_FIELDS if getattr(self, name) is None}
        return [f"{f.name}: run has {getattr(saved, f.name)!r}, now {getattr(self, f.name)!r}"
                for f in fields(self) if f.name not in RESUMABLE_OVERRIDES | unused
                and _location(f.name, getattr(self, f.name)) != _location(f.name, getattr(saved, f.name))]


#: TrainConfig fields that name files or directories.
PATH_FIELDS: frozenset[str] = frozenset({"data", "tokenizer", "init_from", "kd"})


def _location(name: str, value: Any) -> Any:
    """``value`` of field ``name`` as the location it names (paths resolved; ``bundled`` is the
    bundled corpus' directory), else as it is."""
    if name not in PATH_FIELDS or value is None:
        return value
    if isinstance(value, list):
        return [_location(name, item) for item in value]
    return dataset_location(value) if name == "data" else str(Path(value).resolve())

