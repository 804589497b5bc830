"""From checkpoint files to ``OUT_DIR/landscape.npz`` and ``landscape.png``: what ``mple landscape``
runs.  Loads the checkpoints (one architecture and one tokenizer, else a clear error), chooses the
data (the checkpoints' own training data unless ``data`` names other), builds the plane or random
directions, tokenises the split once, evaluates the grid and each checkpoint from its own weights
(resumable, split across torchrun ranks) and draws the picture on rank 0."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic_write import atomic_write_text
from ..data import load_dataset, resolve_dataset_path
from ..data.kd_candidates import KD_MANIFEST
from ..decode import DecodeOptions
from ..models import build_model, load_checkpoint, restore_tokenizers
from ..models.checkpoint import evaluation_data, same_dataset
from ..models import ModelConfig
from ..train import DistributedContext
from .grid import LANDSCAPE_FILE, Landscape, evaluate_grid, grid_axes, parse_grid
from .metrics import EvaluationSet, landscape_metrics, parse_metrics
from .plane import Plane, default_labels
from .plots import plot


@dataclass
class LandscapeSettings:
    """Everything that defines a landscape run (the ``settings`` a resumed run must match, except
    ``out``, ``quiet``, ``save_every``, ``device``, ``pdf`` and ``levels``).  ``data`` None means
    the data the checkpoints were trained on (their ``train_config.data``)."""

    checkpoints: list[str]
    data: str | None
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


def choose_data(data: str | None, payloads: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """(the data to evaluate on, warnings): ``data`` when given, else the training data the
    checkpoints record (:func:`~mple_metrics.models.checkpoint.evaluation_data` for each).

    A given ``data`` that differs from the recorded data is used with a warning naming both (one
    may evaluate on another dataset on purpose).  Without ``data``, checkpoints that record
    different data, or recorded data that is not found, are refused: no data is chosen silently.
    """
    if data is not None:
        differing = [payload for payload in payloads if evaluation_data(data, payload)[1]]
        if not differing:
            return data, []
        listed = "; ".join(f"{p.get('path')}: {(p.get('train_config') or {}).get('data', 'bundled')}"
                           for p in differing)
        return data, [f"--data {data} is not the data the checkpoints were trained on ({listed}); the landscape "
                      f"is evaluated on --data"]
    recorded = [(str(payload.get("path")), evaluation_data(None, payload)[0]) for payload in payloads]
    first = recorded[0][1]
    if any(not same_dataset(value, first) for _, value in recorded[1:]):
        listed = "; ".join(f"{path}: {value}" for path, value in recorded)
        raise ValueError(f"--data is not given and the checkpoints were trained on different data ({listed}); "
                         f"name the evaluation data with --data")
    return first, []


def check_proxy_data(proxy: str, data: str) -> str:
    """Refuse an L_NAT proxy whose target the data does not hold; return what the target is.

    ``raw`` scores the dataset's targets as the raw references, ``kd`` as a teacher's outputs (a
    ``mple distill`` directory, with ``kd.json``); ``axe`` and ``oaxe`` align either."""
    kd = (resolve_dataset_path(data) / KD_MANIFEST).is_file()
    if proxy == "kd" and not kd:
        raise ValueError(f"--proxy kd: L_NAT under KD scores a teacher's outputs, but --data {data} is not a KD "
                         f"dataset (no {KD_MANIFEST}: its targets are the raw references); give the KD dataset "
                         f"(mple distill's output) as --data, or use --proxy raw")
    if proxy == "raw" and kd:
        raise ValueError(f"--proxy raw: --data {data} is a KD dataset ({KD_MANIFEST}): its targets are a teacher's "
                         f"outputs, not the raw references; use --proxy kd, or the raw dataset as --data")
    return f"the {'KD (teacher) targets' if kd else 'raw targets'} of {data}"


def load_payloads(settings: LandscapeSettings) -> list[dict]:
    """The checkpoints of the settings, loaded (the count checked for the directions)."""
    if settings.directions == "random":
        if len(settings.checkpoints) != 1:
            raise ValueError(f"--directions random takes one --ckpt (the centre), got {len(settings.checkpoints)}")
    elif settings.directions != "checkpoints":
        raise ValueError(f"--directions must be 'checkpoints' or 'random', got {settings.directions!r}")
    elif len(settings.checkpoints) not in (2, 3):
        raise ValueError(f"--ckpt: give 3 checkpoints (a plane), 2 (a line) or 1 with --directions random; "
                         f"got {len(settings.checkpoints)}")
    return [load_checkpoint(path) for path in settings.checkpoints]


def build_plane(settings: LandscapeSettings, payloads: Sequence[dict] | None = None) -> tuple[Plane, ModelConfig, dict]:
    """(plane, config, first checkpoint's payload) of the settings' checkpoints or directions."""
    payloads = list(payloads) if payloads is not None else load_payloads(settings)
    labels = default_labels(settings.checkpoints)
    if settings.directions == "random":
        payload = payloads[0]
        plane = Plane.random(payload["model"], seed=settings.seed, include_1d=settings.include_1d, label=labels[0])
        return plane, ModelConfig.from_dict(payload["model_config"]), payload
    plane, config = Plane.from_payloads(payloads, axes=settings.axes, labels=labels)
    return plane, config, payloads[0]


def run_landscape(settings: LandscapeSettings, context: DistributedContext | None = None) -> Landscape:
    """Compute (or resume) the landscape of ``settings`` into ``settings.out`` and draw it.

    ``settings.data`` None is replaced by the checkpoints' training data.  Warnings (``--data``
    other than the training data) are printed to stderr as ``warning: ...`` lines and recorded in
    the npz's meta and ``landscape.json``."""
    context = context or DistributedContext()
    names = parse_metrics(settings.metrics)
    payloads = load_payloads(settings)
    data, warnings = choose_data(settings.data, payloads)
    settings = replace(settings, data=data)
    target_text = check_proxy_data(settings.proxy, data) if "l_nat" in names else ""
    plane, config, payload = build_plane(settings, payloads)
    del payloads  # the plane holds the weights it needs; the checkpoints are reloaded when evaluated
    nx, ny = parse_grid(settings.grid, line=plane.kind == "line")
    a, b = grid_axes(plane, nx, ny, settings.margin)
    tokenizers = restore_tokenizers(payload["tokenizer"])
    model = build_model(config)
    model.load_state_dict(payload["model"])
    del payload
    device = context.device
    model = model.to(device).eval()
    split = load_dataset(resolve_dataset_path(data), splits=(settings.split,))[settings.split]
    evaluation = EvaluationSet(split, tokenizers, settings.max_tokens, device, settings.max_sentences,
                               settings.decode)
    metrics = landscape_metrics(names, evaluation, model, settings.proxy, target_text)
    if context.is_main:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    meta = {"settings": settings.identity(), "command": " ".join(sys.argv), "versions": versions(),
            "model": config.kind, "sentences": evaluation.sentences, "data": data, "split": settings.split,
            "nat_length": "predicted" if config.kind == "nat" else None,
            "world_size": context.world_size, "warnings": warnings}
    landscape = evaluate_grid(plane, model, metrics, a, b, settings.out, context=context,
                              save_every=settings.save_every, progress=not settings.quiet, meta=meta,
                              checkpoints=[_loader(path) for path in settings.checkpoints])
    if context.is_main:
        plot(settings.out, pdf=settings.pdf, levels=settings.levels)
        atomic_write_text(Path(settings.out) / "landscape.json", json.dumps(summary(landscape), indent=1) + "\n")
    return landscape


def _loader(path: str):
    """The state dict of one checkpoint, read when a checkpoint is evaluated (not kept in memory)."""
    return lambda: load_checkpoint(path)["model"]


def summary(landscape: Landscape) -> dict[str, Any]:
    """The machine-readable summary: each checkpoint's metrics (evaluated at its own weights), with
    the grid cell nearest to it as extra information, each metric's best cell, and the timing."""
    coords = np.asarray(landscape.plane["coordinates"], dtype=np.float64).reshape(-1, 2)
    out: dict[str, Any] = {"file": LANDSCAPE_FILE, "data": landscape.meta.get("data", landscape.meta.get(
                               "settings", {}).get("data")), "split": landscape.meta.get("split"),
                           "sentences": landscape.meta.get("sentences"),
                           "grid": [len(landscape.a), len(landscape.b)],
                           "a": [float(landscape.a[0]), float(landscape.a[-1])],
                           "b": [float(landscape.b[0]), float(landscape.b[-1])],
                           "axes": landscape.plane["axes"], "kind": landscape.plane["kind"],
                           "metrics": landscape.metrics, "cells_done": int(landscape.done.sum()),
                           "cells": int(landscape.done.size),
                           "checkpoints_done": int(landscape.points_done.sum()), "checkpoints": [], "best": {},
                           "warnings": list(landscape.meta.get("warnings", []))}
    seconds = landscape.seconds[np.isfinite(landscape.seconds)]
    if seconds.size:
        out["seconds_per_cell"] = float(seconds.mean())
    for k, (label, (x, y)) in enumerate(zip(landscape.plane["labels"], coords)):
        ix, iy = int(np.abs(landscape.a - x).argmin()), int(np.abs(landscape.b - y).argmin())
        nearest = {"a": float(landscape.a[ix]), "b": float(landscape.b[iy]),
                   **{m["name"]: _float(landscape.values[m["name"]][iy, ix]) for m in landscape.metrics}}
        out["checkpoints"].append({"label": label, "a": float(x), "b": float(y),
                                   "evaluated": "at the checkpoint's own weights",
                                   **{m["name"]: _float(landscape.points[m["name"]][k]) for m in landscape.metrics},
                                   "nearest_cell": nearest})
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
    """A short terminal table: each checkpoint's metrics at its own weights (with the nearest grid
    cell's below it when no node lies on it), the best cell per metric, and warnings."""
    s = summary(landscape)
    names = [m["name"] for m in landscape.metrics]
    units = {m["name"]: m["unit"] for m in landscape.metrics}

    def cells(row: Mapping[str, Any]) -> str:
        return " ".join(f"{'-' if row[n] is None else format(row[n], '.4f'):>22}" for n in names)

    head = f"{'point':<28} {'a':>8} {'b':>8} " + " ".join(f"{n + ' [' + units[n] + ']':>22}" for n in names)
    rows = [head]
    for c in s["checkpoints"]:
        rows.append(f"{c['label'][:28]:<28} {c['a']:>8.3f} {c['b']:>8.3f} " + cells(c))
        cell = c["nearest_cell"]
        if (cell["a"], cell["b"]) != (c["a"], c["b"]):
            rows.append(f"{'  nearest grid cell':<28} {cell['a']:>8.3f} {cell['b']:>8.3f} " + cells(cell))
    for n, best in s["best"].items():
        rows.append(f"{'best cell ' + n:<28} {best['a']:>8.3f} {best['b']:>8.3f} " + " ".join(
            f"{format(best['value'], '.4f') if m == n else '':>22}" for m in names))
    where = f"{s['data']}, {s['split']} split; " if s.get("data") and s.get("split") else ""
    rows.append(f"{where}checkpoints at their own weights {s['checkpoints_done']}/{len(s['checkpoints'])}, "
                f"cells {s['cells_done']}/{s['cells']}"
                + (f", {s['seconds_per_cell']:.2f} s/cell" if "seconds_per_cell" in s else ""))
    return "\n".join(rows)
