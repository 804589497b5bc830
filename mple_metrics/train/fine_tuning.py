"""Starting a run from another checkpoint's weights (``--init-from CKPT``): fine-tuning, as OaXE,
the loss landscape's checkpoints and the demo need.

Only the model weights are taken; the optimizer, the learning-rate schedule, the update counter and
the RNG start afresh.  The architecture must be the run's own (dropout may differ) and the
tokenizer is the checkpoint's.  The origin (path, SHA-256 of the file, its update number) is
recorded in every checkpoint and in ``summary.json``; ``config.json`` records the path.
"""

from __future__ import annotations

from typing import Any

import torch

from ..decode.distill import file_sha256
from ..models import ModelConfig
from ..models.checkpoint import CheckpointError, check_state_dict


def load_initial_weights(model: torch.nn.Module, config: ModelConfig, payload: dict[str, Any]) -> dict[str, Any]:
    """Load ``payload``'s weights (a loaded checkpoint) into ``model`` of architecture ``config``;
    returns the origin record.  Raises :class:`CheckpointError` naming every differing field."""
    path = payload["path"]
    try:
        origin = ModelConfig.from_dict(payload["model_config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"--init-from {path} has an invalid model_config: {error}") from None
    differences = origin.architecture_differences(config)
    if differences:
        raise CheckpointError(f"--init-from {path} has another architecture than this run ("
                              f"{'; '.join(differences)}, checkpoint first); give the same --model, "
                              f"--size, --nat-input, --max-positions and --model-arg as its run")
    check_state_dict(model, payload["model"], f"--init-from {path}")
    model.load_state_dict(payload["model"])
    progress = payload.get("progress") or {}
    return {"path": str(path), "sha256": file_sha256(path), "step": progress.get("step")}
