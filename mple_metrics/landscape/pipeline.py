"""From checkpoint files to ``OUT_DIR/landscape.npz`` and ``landscape.png``: what ``mple landscape``
runs.  Loads the checkpoints (one architecture and one tokenizer, else a clear error), builds the
plane or random directions, tokenises the split once, evaluates the grid (resumable, split across
torchrun ranks) and draws the picture on rank 0."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic_write import atomic_write_text
from ..data import load_dataset, resolve_dataset_path
from ..decode import DecodeOptions
from ..models import build_model, load_checkpoint, restore_tokenizers
from ..models import ModelConfig
from ..train import DistributedContext
from .grid import LANDSCAPE_FILE, Landscape, evaluate_grid, grid_axes, parse_grid
from .metrics import EvaluationSet, landscape_metrics, parse_metrics
from .plane import Plane, default_labels
from .plots import plot


@dataclass
class LandscapeSettings:
    """Everything that defines a landscape run (the ``settings`` a resumed run must match, except
    ``out``, ``quiet``, ``save_every``, ``device``, ``pdf`` and ``levels``)."""

    checkpoints: list[str]
    data: str
    out: str
    split: str = "valid"
    grid: str = "21x21"
    margin: float = 0.25
    axes: str = "affine"
    directions: str = "checkpoints"          # or "random"
    seed: int = 0
    include_1d: bool = False
    metrics: str = "nll,bleu"
    proxy: str = "raw"
    max_sentences: int = 0
    max_tokens: int = 4096
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    device: str = "cpu"
    save_every: int = 1
    quiet: bool = False
    pdf: bool = False
    levels: int = 20

    def identity(self) -> dict[str, Any]:
        return {"checkpoints": [str(Path(c).resolve()) for c in self.checkpoints],
                "data": str(self.data), "split": self.split, "directions": self.directions,
                "seed": self.seed if self.directions == "random" else None,
                "include_1d": self.include_1d if self.directions == "random" else None,
                "proxy": self.proxy if "l_nat" in self.metrics else None,
                "max_sentences": self.max_sentences, "max_tokens": self.max_tokens,
                "decode": self.decode.to_dict()}


def versions() -> dict[str, str]:
    from .. import __version__
    import matplotlib

    return {"mple_metrics": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "matplotlib": matplotlib.__version__, "python": platform.python_version()}


def build_plane(settings: LandscapeSettings) -> tuple[Plane, ModelConfig, dict]:
    """(plane, config, first checkpoint's payload) of the settings' checkpoints or directions."""
    if settings.directions == "random":
        if len(settings.checkpoints) != 1:
            raise ValueError(f"--directions random takes one --ckpt (the centre), got {len(settings.checkpoints)}")
        payload = load_checkpoint(settings.checkpoints[0])
        plane = Plane.random(payload["model"], seed=settings.seed, include_1d=settings.include_1d,
                             label=default_labels(settings.checkpoints)[0])
        return plane, ModelConfig.from_dict(payload["model_config"]), payload
    if settings.directions != "checkpoints":
        raise ValueError(f"--directions must be 'checkpoints' or 'random', got {settings.directions!r}")
    if len(settings.checkpoints) not in (2, 3):
        raise ValueError(f"--ckpt: give 3 checkpoints (a plane), 2 (a line) or 1 with --directions random; "
                         f"got {len(settings.checkpoints)}")
    return Plane.from_checkpoints(settings.checkpoints, axes=settings.axes)


def run_landscape(settings: LandscapeSettings, context: DistributedContext | None = None) -> Landscape:
    """Compute (or resume) the landscape of ``settings`` into ``settings.out`` and draw it."""
    context = context or DistributedContext()
    names = parse_metrics(settings.metrics)
    plane, config, payload = build_plane(settings)
    nx, ny = parse_grid(settings.grid, line=plane.kind == "line")
    a, b = grid_axes(plane, nx, ny, settings.margin)
    tokenizers = restore_tokenizers(payload["tokenizer"])
    model = build_model(config)
    model.load_state_dict(payload["model"])
    device = context.device
    model = model.to(device).eval()
    split = load_dataset(resolve_dataset_path(settings.data), splits=(settings.split,))[settings.split]
    evaluation = EvaluationSet(split, tokenizers, settings.max_tokens, device, settings.max_sentences,
                               settings.decode)
    metrics = landscape_metrics(names, evaluation, model, settings.proxy)
    meta = {"settings": settings.identity(), "command": " ".join(sys.argv), "versions": versions(),
            "model": config.kind, "sentences": evaluation.sentences, "split": settings.split,
            "nat_length": "predicted" if config.kind == "nat" else None,
            "world_size": context.world_size}
    landscape = evaluate_grid(plane, model, metrics, a, b, settings.out, context=context,
                              save_every=settings.save_every, progress=not settings.quiet, meta=meta)
    if context.is_main:
        plot(settings.out, pdf=settings.pdf, levels=settings.levels)
        atomic_write_text(Path(settings.out) / "landscape.json", json.dumps(summary(landscape), indent=1) + "\n")
    return landscape


def summary(landscape: Landscape) -> dict[str, Any]:
    """The machine-readable summary: each checkpoint's cell (the grid point nearest to it), each
    metric's best cell, and the grid's timing."""
    coords = np.asarray(landscape.plane["coordinates"], dtype=np.float64).reshape(-1, 2)
    out: dict[str, Any] = {"file": LANDSCAPE_FILE, "grid": [len(landscape.a), len(landscape.b)],
                           "a": [float(landscape.a[0]), float(landscape.a[-1])],
                           "b": [float(landscape.b[0]), float(landscape.b[-1])],
                           "axes": landscape.plane["axes"], "kind": landscape.plane["kind"],
                           "metrics": landscape.metrics, "cells_done": int(landscape.done.sum()),
                           "cells": int(landscape.done.size), "checkpoints": [], "best": {}}
    seconds = landscape.seconds[np.isfinite(landscape.seconds)]
    if seconds.size:
        out["seconds_per_cell"] = float(seconds.mean())
    for label, (x, y) in zip(landscape.plane["labels"], coords):
        ix, iy = int(np.abs(landscape.a - x).argmin()), int(np.abs(landscape.b - y).argmin())
        out["checkpoints"].append({"label": label, "a": float(x), "b": float(y),
                                   "nearest_cell": [float(landscape.a[ix]), float(landscape.b[iy])],
                                   **{m["name"]: _float(landscape.values[m["name"]][iy, ix])
                                      for m in landscape.metrics}})
    for info in landscape.metrics:
        values = landscape.values[info["name"]]
        if np.isfinite(values).any():
            flat = np.nanargmax(values) if info["higher_is_better"] else np.nanargmin(values)
            iy, ix = divmod(int(flat), len(landscape.a))
            out["best"][info["name"]] = {"a": float(landscape.a[ix]), "b": float(landscape.b[iy]),
                                         "value": float(values[iy, ix])}
    return out


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def format_table(landscape: Landscape) -> str:
    """A short terminal table: each checkpoint's cell and the best cell per metric."""
    s = summary(landscape)
    names = [m["name"] for m in landscape.metrics]
    units = {m["name"]: m["unit"] for m in landscape.metrics}
    head = f"{'point':<28} {'a':>8} {'b':>8} " + " ".join(f"{n + ' [' + units[n] + ']':>22}" for n in names)
    rows = [head]
    for c in s["checkpoints"]:
        rows.append(f"{c['label'][:28]:<28} {c['a']:>8.3f} {c['b']:>8.3f} "
                    + " ".join(f"{'-' if c[n] is None else format(c[n], '.4f'):>22}" for n in names))
    for n, best in s["best"].items():
        rows.append(f"{'best ' + n:<28} {best['a']:>8.3f} {best['b']:>8.3f} " + " ".join(
            f"{format(best['value'], '.4f') if m == n else '':>22}" for m in names))
    rows.append(f"cells {s['cells_done']}/{s['cells']}" + (f", {s['seconds_per_cell']:.2f} s/cell"
                                                            if "seconds_per_cell" in s else ""))
    return "\n".join(rows)
