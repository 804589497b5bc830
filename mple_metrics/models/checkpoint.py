"""Reading checkpoints: validated loading with clear errors, the model and tokenizers a checkpoint
holds, and the state dicts of several checkpoints of one architecture (the loss landscape's input).
Writing, averaging and resuming are the trainer's (:mod:`mple_metrics.train.checkpoint`).

A checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``)::

    format: "mple_metrics.checkpoint", version: 1, mple_version
    model_config: dict (ModelConfig), train_config: dict (TrainConfig)
    model: state dict                       tokenizer: {relative path: bytes} (TokenizerPair files)
    optimizer, scaler: state dicts or None   rng: {"torch": ByteTensor, "cuda": [ByteTensor] or None}
    progress: {step, epoch, batches_in_epoch, tokens}   metrics: last validation (or {})
    best: {nll, step, bad_validations, top: [[nll, step, file], ...]}
    init_from (optional): {path, sha256, step} of the checkpoint a fine-tuning run started from

Weights that are NaN or infinite load with a :class:`NonFiniteCheckpointWarning` naming them (the
trainer refuses to resume from such a checkpoint: ``nonfinite="error"``).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import BUNDLED_NAME, TokenizerPair, dataset_location, resolve_dataset_path
from .config import ModelConfig

CHECKPOINT_FORMAT = "mple_metrics.checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS: tuple[str, ...] = ("format", "version", "model_config", "train_config", "model", "tokenizer")
NONFINITE_POLICIES: tuple[str, ...] = ("warn", "error", "ignore")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupted, not ours, or not matching what is asked."""


class NonFiniteCheckpointWarning(UserWarning):
    """A checkpoint whose weights hold NaN or infinite values (a diverged model)."""


def nonfinite_entries(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold a NaN or an infinity."""
    return [name for name, value in state.items()
            if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())
            and not bool(torch.isfinite(value).all())]


def restore_tokenizers(files: dict[str, bytes]) -> TokenizerPair:
    """Inverse of :func:`tokenizer_files`."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            target = Path(tmp) / name
            if Path(tmp).resolve() not in target.resolve().parents:
                raise CheckpointError(f"tokenizer file name {name!r} escapes its directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return TokenizerPair.load(tmp)


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint a path names: a file as it is, a run directory's best.pt, else its last.pt."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"no checkpoint in run directory {path} (expected best.pt or last.pt)")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    nonfinite: str = "warn") -> dict[str, Any]:
    """Load and validate a checkpoint.

    ``nonfinite``: what NaN/inf model weights lead to -- ``"warn"`` (a
    :class:`NonFiniteCheckpointWarning` naming the file and the tensors), ``"error"`` (a
    :class:`CheckpointError`) or ``"ignore"``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError (a ValueError): empty, unreadable or truncated file, not an mple_metrics
            checkpoint, an unsupported version, missing entries (named), or non-finite weights
            with ``nonfinite="error"``.
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    path = checkpoint_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    advice = "use another checkpoint (e.g. best.pt or a step*.pt file)"
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes) and cannot be read; {advice}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for damaged zip/pickle data
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        reason = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated and cannot be read "
                              f"({reason}); {advice}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an mple_metrics checkpoint (no format="
                              f"{CHECKPOINT_FORMAT!r} entry)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {payload.get('version')!r}; this "
                              f"mple_metrics reads version {CHECKPOINT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the entries {', '.join(missing)}")
    if not isinstance(payload["model"], dict):
        raise CheckpointError(f"checkpoint {path}: its model entry is not a state dict")
    if nonfinite != "ignore":
        bad = nonfinite_entries(payload["model"])
        if bad:
            names = f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}"
            message = (f"checkpoint {path} has NaN or infinite weights in {len(bad)} tensor(s) ({names}): "
                       f"the model diverged")
            if nonfinite == "error":
                raise CheckpointError(message)
            warnings.warn(message, NonFiniteCheckpointWarning, stacklevel=2)
    payload["path"] = str(path)
    return payload


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` naming missing, unexpected and mis-shaped parameters."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing parameters {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected parameters {', '.join(unexpected[:5])}"
                        f"{' ...' if len(unexpected) > 5 else ''}")
    if shapes:
        problems.append(f"shape mismatches {'; '.join(shapes[:5])}")
    if problems:
        raise CheckpointError(f"{source} does not match the model architecture: {'; '.join(problems)}")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode on ``device``, tokenizers, checkpoint payload) from a checkpoint file or
    a run directory (its best.pt, else last.pt)."""
    from . import build_model  # the package defines it after importing this module

    payload = load_checkpoint(path, map_location="cpu")
    try:
        config = ModelConfig.from_dict(payload["model_config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {payload['path']} has an invalid model_config: {error}") from None
    model = build_model(config)
    check_state_dict(model, payload["model"], f"checkpoint {payload['path']}")
    model.load_state_dict(payload["model"])
    tokenizers = restore_tokenizers(payload["tokenizer"])
    return model.to(device).eval(), tokenizers, payload


def load_state_dicts(paths: Sequence[str | os.PathLike]) -> tuple[ModelConfig, list[dict[str, torch.Tensor]]]:
    """The model config and the model state dicts (on the CPU) of several checkpoints of one
    architecture, e.g. the three points of a loss-landscape plane.  Raises
    :class:`CheckpointError` naming the fields in which an architecture differs."""
    if not paths:
        raise ValueError("paths must name at least one checkpoint")
    configs, states = [], []
    for path in paths:
        payload = load_checkpoint(path)
        configs.append(ModelConfig.from_dict(payload["model_config"]))
        states.append(payload["model"])
    for path, config in zip(paths[1:], configs[1:]):
        differences = configs[0].architecture_differences(config)
        if differences:
            raise CheckpointError(f"checkpoints {paths[0]} and {path} have different architectures: "
                                  f"{'; '.join(differences)}")
    return configs[0], states


def evaluation_data(given: str | os.PathLike | None, payload: dict[str, Any],
                    option: str = "--data") -> tuple[str, str | None]:
    """The dataset to evaluate the checkpoint ``payload`` on, and a warning or None.

    ``given`` None: the data it was trained on (its ``train_config`` ``data``; ``"bundled"`` when it
    records none), so that its numbers are measured on its own splits and references; a ValueError
    naming ``option`` when that path is not found from here.  ``given`` another dataset than the
    recorded one: used, with a warning naming both."""
    recorded = str((payload.get("train_config") or {}).get("data") or BUNDLED_NAME)
    if given is None:
        if recorded != BUNDLED_NAME and not Path(recorded).is_dir():
            raise ValueError(f"{option} not given, and the data checkpoint {payload['path']} was trained on "
                             f"({recorded}) is not found from here; give {option} DIR")
        return recorded, None
    if same_dataset(str(given), recorded):
        return str(given), None
    return str(given), (f"{option} {given} is not the data checkpoint {payload['path']} was trained on "
                        f"({recorded}): its splits and references need not be the ones the model was "
                        f"trained and selected on")


def same_dataset(first: str, second: str) -> bool:
    """Whether two ``--data`` values name one dataset (``bundled`` and its directory are one)."""
    a, b = resolve_dataset_path(first), resolve_dataset_path(second)
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not found from here
        return dataset_location(a) == dataset_location(b)
