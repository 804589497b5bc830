"""Writing checkpoints: atomic saves, the tokenizer files a checkpoint carries, and averaging.
Reading (validated loading, ``load_model``) lives beside the models in
:mod:`mple_metrics.models.checkpoint` and is re-exported here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..atomic_write import atomic_write
from ..data import TokenizerPair
from ..models.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, NONFINITE_POLICIES,  # noqa: F401
                                 REQUIRED_KEYS, CheckpointError, NonFiniteCheckpointWarning,
                                 check_state_dict, checkpoint_file, load_checkpoint, load_model,
                                 load_state_dicts, nonfinite_entries, restore_tokenizers)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically (temporary file + fsync + rename)."""
    atomic_write(path, lambda handle: torch.save(payload, handle))


def tokenizer_files(tokenizers: TokenizerPair) -> dict[str, bytes]:
    """The files of ``tokenizers.save(dir)`` as {relative path: bytes} (a checkpoint carries them)."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizers.save(tmp)
        return {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point entries (float64 accumulation); other entries are
    taken from the first state."""
    if not states:
        raise ValueError("need at least one state dict to average")
    keys = set(states[0])
    for i, state in enumerate(states[1:], 1):
        if set(state) != keys:
            raise CheckpointError(f"state dict {i} has different parameter names from state dict 0")
    out = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            total = sum(s[key].double() for s in states)
            out[key] = (total / len(states)).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def average_checkpoints(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write a checkpoint at ``out`` whose model is the average of ``paths``' models (the other
    entries come from the first; no optimizer state, so it is for evaluation, not resuming)."""
    _, states = load_state_dicts(paths)
    payload = load_checkpoint(paths[0])
    payload.pop("path", None)
    payload["model"] = average_state_dicts(states)
    payload["optimizer"] = None
    payload["scaler"] = None
    payload["averaged_from"] = [str(p) for p in paths]
    save_checkpoint(out, payload)
    return Path(out)

