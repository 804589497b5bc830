"""Evaluating metrics on a grid of a :class:`~mple_metrics.landscape.plane.Plane`: resumable, with
atomic writes, and split across ``torchrun`` ranks.

Cells are numbered row-major over ``[y, x]`` (``y`` indexes ``b``, ``x`` indexes ``a``).  Every cell
writes θ(a, b) into one model in place and evaluates each :class:`Metric` on the same batches.  The
checkpoints the plane was built from are evaluated too, each from its own state dict (θ0 + a·d1 +
b·d2 at a checkpoint's coordinates differs from it by float rounding, and a grid need not have a node
there): ``points[name][k]`` with ``points_done[k]``.  The result, :class:`Landscape`, is saved as
``OUT_DIR/landscape.npz`` after every ``save_every`` cells or points (a temporary file renamed over
the old one); cells and points not yet computed hold NaN, never a sentinel value, and ``done[y, x]``
/ ``points_done[k]`` say which are finished.  Restarted on the same ``OUT_DIR`` with the same settings,
only the missing cells are computed; other settings are refused, naming the differing field.

Under ``torchrun`` (a :class:`~mple_metrics.train.DistributedContext` with ``world_size > 1``) the
missing cells are dealt round-robin to the ranks; each rank saves its finished cells to
``OUT_DIR/landscape.rank{R}.npz`` as it goes (so a rank that dies leaves them on disk for the next
run), and at the end the cells are gathered with one all-reduce, rank 0 writes ``landscape.npz`` and
the rank files are removed.  A cell's values do not depend on which rank computed it.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic_write import atomic_write, remove_orphan_temporaries
from ..train import DistributedContext
from .plane import Plane

LANDSCAPE_FILE = "landscape.npz"
LANDSCAPE_FORMAT = "mple_metrics.landscape"
#: Version 2 added the checkpoints' own values (``checkpoint_metric_<name>``, ``checkpoint_done``);
#: version 1 files load with those not yet computed.
LANDSCAPE_VERSION = 2
#: The most grid cells a landscape may have: the arrays are allocated up front, and at a fraction of
#: a second per cell for the smallest models a million cells is already days of work.
MAX_GRID_CELLS = 1_000_000


@dataclass(frozen=True)
class Metric:
    """A scalar function of the model evaluated in every cell.

    ``compute(model)`` returns a float for the weights currently in ``model``; ``unit`` names what it
    is measured in (shown on the colour bar); ``higher_is_better`` is stated on the plot.
    """

    name: str
    unit: str
    higher_is_better: bool
    compute: Callable[[torch.nn.Module], float]
    description: str = ""
    signature: str = ""

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "higher_is_better": self.higher_is_better,
                "description": self.description, "signature": self.signature}


def parse_grid(text: str, line: bool = False) -> tuple[int, int]:
    """``"21x21"`` or ``"41x21"`` (x count, y count) or ``"41"`` (41 x 41, or 41 x 1 on a line)."""
    parts = text.lower().split("x")
    try:
        counts = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"grid must be N or NXxNY with integers (e.g. 21x21), got {text!r}") from None
    if len(counts) not in (1, 2) or any(c < 1 for c in counts):
        raise ValueError(f"grid must be N or NXxNY with counts >= 1 (e.g. 21x21), got {text!r}")
    if len(counts) == 1:
        counts = [counts[0], 1 if line else counts[0]]
    if line and counts[1] != 1:
        raise ValueError(f"a line through two checkpoints has one axis: grid {text!r} asks for "
                         f"{counts[1]} rows (use --grid N)")
    check_grid_size(counts[0], counts[1], text)
    return counts[0], counts[1]


def check_grid_size(nx: int, ny: int, text: str | None = None) -> None:
    """Refuse a grid of more than :data:`MAX_GRID_CELLS` cells before anything is allocated."""
    cells = nx * ny
    if cells > MAX_GRID_CELLS:
        raise ValueError(f"grid {text or f'{nx}x{ny}'!r} has {cells:,} cells, more than the limit of "
                         f"{MAX_GRID_CELLS:,} (e.g. 1000x1000)")


def grid_axes(plane: Plane, nx: int, ny: int, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The coordinates (a of length nx, b of length ny) of a grid that covers the checkpoints'
    bounding box plus ``margin`` times its extent on every side.  Random directions have the box
    [-1, 1]^2 around their one point; a line has b = [0].  A count of 1 gives the box's centre."""
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    coords = np.asarray(plane.coordinates, dtype=np.float64)
    if plane.kind == "random":
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    else:
        lo, hi = coords.min(axis=0), coords.max(axis=0)

    def axis(low: float, high: float, count: int) -> np.ndarray:
        span = high - low
        if count == 1:
            return np.array([(low + high) / 2.0])
        return np.linspace(low - margin * span, high + margin * span, count)

    a = axis(lo[0], hi[0], nx)
    b = np.array([0.0]) if plane.kind == "line" else axis(lo[1], hi[1], ny)
    if plane.kind == "line" and ny != 1:
        raise ValueError(f"a line has one axis; got {ny} rows")
    return a, b


@dataclass
class Landscape:
    """Metric surfaces on a grid.  ``values[name]`` is float64 ``[len(b), len(a)]`` (NaN where not
    computed); ``done`` bool of the same shape; ``seconds`` the wall time of each cell.
    ``points[name]`` is float64 ``[k]``: the metric at each of the k checkpoints of the plane
    (``plane["labels"]``, ``plane["coordinates"]``), evaluated from the checkpoint's own weights (NaN
    where not computed; ``points_done`` says which are)."""

    a: np.ndarray
    b: np.ndarray
    values: dict[str, np.ndarray]
    done: np.ndarray
    seconds: np.ndarray
    metrics: list[dict[str, Any]]
    plane: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    points: dict[str, np.ndarray] = field(default_factory=dict)
    points_done: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        count = len(self.plane.get("labels", []))
        if self.points_done.shape != (count,):
            self.points_done = np.zeros(count, dtype=bool)
        for info in self.metrics:
            if self.points.get(info["name"]) is None or self.points[info["name"]].shape != (count,):
                self.points[info["name"]] = np.full(count, np.nan)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.b), len(self.a))

    @property
    def complete(self) -> bool:
        """Every grid cell computed."""
        return bool(self.done.all())

    @property
    def points_complete(self) -> bool:
        """Every checkpoint computed at its own weights."""
        return bool(self.points_done.all())

    def save(self, path: str | Path) -> None:
        """Write the npz atomically (temp file + rename); strings are stored as unicode arrays, so
        ``np.load(path)`` reads it without pickle."""
        arrays: dict[str, np.ndarray] = {
            "a": self.a, "b": self.b, "done": self.done, "cell_seconds": self.seconds,
            "checkpoint_coordinates": np.asarray(self.plane["coordinates"], dtype=np.float64).reshape(-1, 2),
            "checkpoint_labels": np.asarray(self.plane["labels"], dtype=str),
            "checkpoint_done": self.points_done,
            "metric_names": np.asarray([m["name"] for m in self.metrics], dtype=str),
            "axes": np.asarray(self.plane["axes"]), "kind": np.asarray(self.plane["kind"]),
            "meta": np.asarray(json.dumps({"format": LANDSCAPE_FORMAT, "version": LANDSCAPE_VERSION,
                                           "metrics": self.metrics, "plane": self.plane, **self.meta})),
        }
        for name, value in self.values.items():
            arrays[f"metric_{name}"] = value
            arrays[f"checkpoint_metric_{name}"] = self.points[name]

        def write(handle) -> None:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            handle.write(buffer.getvalue())

        atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> Landscape:
        """Read a landscape npz (a directory means its ``landscape.npz``).  Version 1 files (before
        the checkpoints were evaluated) load with the checkpoints' values not yet computed.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a complete landscape npz (empty, truncated, not an npz
                archive, another npz, or of a newer version), naming the file.
        """
        path = Path(path)
        if path.is_dir():
            path = path / LANDSCAPE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no landscape file {path} (run 'mple landscape ... --out DIR' first)")

        def refuse(reason: str) -> ValueError:
            return ValueError(f"{path} is not a readable mple_metrics landscape file ({reason})")

        if path.stat().st_size == 0:
            raise refuse("empty file")
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic != b"PK\x03\x04":  # np.load would try to unpickle it and advise allow_pickle
            raise refuse("not an npz archive")
        try:
            with np.load(path, allow_pickle=False) as data:
                read = _read_arrays(data)
        # numpy and zipfile raise many types on a damaged or truncated archive (BadZipFile, EOFError,
        # zlib.error, ValueError, OSError, KeyError for a missing member)
        except Exception as error:  # noqa: BLE001
            detail = (str(error).strip().splitlines() or [""])[0][:160]
            raise refuse(f"truncated or damaged npz: {type(error).__name__}"
                         + (f": {detail}" if detail else "")) from None
        if isinstance(read, str):
            raise refuse(read)
        meta, a, b, values, done, seconds, points, points_done = read
        metrics, plane = meta.pop("metrics"), meta.pop("plane")
        for key in ("format", "version"):
            meta.pop(key, None)
        return cls(a, b, values, done, seconds, metrics, plane, meta, points, points_done)


def _read_arrays(data) -> str | tuple:
    """The arrays of an open landscape npz, or what makes it not one (a string)."""
    if "meta" not in data.files:
        return "an npz without the landscape's 'meta' entry"
    meta = json.loads(str(data["meta"]))
    if not isinstance(meta, dict) or meta.get("format") != LANDSCAPE_FORMAT or not {"metrics", "plane"} <= set(meta):
        return f"an npz whose meta has no format={LANDSCAPE_FORMAT!r}"
    if meta.get("version") not in range(1, LANDSCAPE_VERSION + 1):
        return f"format version {meta.get('version')!r}; this mple_metrics reads versions 1 to {LANDSCAPE_VERSION}"
    names = [str(n) for n in data["metric_names"]]
    values = {n: np.array(data[f"metric_{n}"], dtype=np.float64) for n in names}
    a, b = np.array(data["a"], dtype=np.float64), np.array(data["b"], dtype=np.float64)
    done, seconds = np.array(data["done"], dtype=bool), np.array(data["cell_seconds"], dtype=np.float64)
    shape = (len(b), len(a))
    if done.shape != shape or seconds.shape != shape or any(v.shape != shape for v in values.values()):
        return "its metric arrays do not match the grid"
    points, points_done = {}, np.zeros(0, dtype=bool)
    if "checkpoint_done" in data.files:  # version 2
        points_done = np.array(data["checkpoint_done"], dtype=bool)
        points = {n: np.array(data[f"checkpoint_metric_{n}"], dtype=np.float64) for n in names}
    return meta, a, b, values, done, seconds, points, points_done


def _empty(a: np.ndarray, b: np.ndarray, metrics: Sequence[Metric], plane: Plane,
           meta: Mapping[str, Any]) -> Landscape:
    shape = (len(b), len(a))
    return Landscape(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                     {m.name: np.full(shape, np.nan) for m in metrics}, np.zeros(shape, dtype=bool),
                     np.full(shape, np.nan), [m.info() for m in metrics], plane.metadata(), dict(meta))


def _check_same(existing: Landscape, fresh: Landscape, source: Path) -> None:
    """Refuse to resume from a file of other settings, naming what differs."""
    problems = []
    if existing.a.shape != fresh.a.shape or not np.allclose(existing.a, fresh.a, rtol=0, atol=1e-12):
        problems.append(f"the a coordinates ({len(existing.a)} vs {len(fresh.a)} values)")
    if existing.b.shape != fresh.b.shape or not np.allclose(existing.b, fresh.b, rtol=0, atol=1e-12):
        problems.append(f"the b coordinates ({len(existing.b)} vs {len(fresh.b)} values)")
    if [m["name"] for m in existing.metrics] != [m["name"] for m in fresh.metrics]:
        problems.append(f"the metrics ({[m['name'] for m in existing.metrics]} vs "
                        f"{[m['name'] for m in fresh.metrics]})")
    for key in ("kind", "axes"):
        if existing.plane.get(key) != fresh.plane.get(key):
            problems.append(f"{key} ({existing.plane.get(key)} vs {fresh.plane.get(key)})")
    old, new = existing.meta.get("settings", {}), fresh.meta.get("settings", {})
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            problems.append(f"{key} ({old.get(key)!r} vs {new.get(key)!r})")
    if problems:
        raise ValueError(f"{source} holds a landscape of other settings: {'; '.join(problems)}; use another "
                         f"output directory or remove it")


def _merge(into: Landscape, other: Landscape) -> None:
    mask = other.done & ~into.done
    for name in into.values:
        into.values[name][mask] = other.values[name][mask]
    into.seconds[mask] = other.seconds[mask]
    into.done |= mask
    if other.points_done.shape == into.points_done.shape:
        got = other.points_done & ~into.points_done
        for name in into.points:
            into.points[name][got] = other.points[name][got]
        into.points_done |= got


def _rank_file(out_dir: Path, rank: int) -> Path:
    return out_dir / f"landscape.rank{rank}.npz"


def evaluate_grid(plane: Plane, model: torch.nn.Module, metrics: Sequence[Metric], a: Sequence[float],
                  b: Sequence[float], out_dir: str | Path | None = None, *,
                  context: DistributedContext | None = None, save_every: int = 1, progress: bool = True,
                  meta: Mapping[str, Any] | None = None,
                  on_cell: Callable[[int, int], None] | None = None,
                  checkpoints: Sequence[Callable[[], Mapping[str, torch.Tensor]]] | None = None) -> Landscape:
    """Evaluate ``metrics`` at every (a[x], b[y]) of the grid and return the :class:`Landscape`.

    Args:
        plane: the section of weight space; its directions are moved to the model's device.
        model: a model of the plane's architecture; its weights are overwritten cell by cell (in
            place) and set back to the plane's origin θ(0, 0) at the end.  Evaluated in eval mode.
        metrics: what to compute per cell (see :func:`~mple_metrics.landscape.metrics.landscape_metrics`).
        a, b: the grid coordinates (``b = [0]`` on a line).
        out_dir: where ``landscape.npz`` is written and resumed from; None keeps it in memory.
        context: the torchrun ranks; cells are split across them and gathered (all ranks return the
            full landscape).
        save_every: write the npz after every this many cells of this rank (and at the end).
        progress: a tqdm bar over this rank's cells with an ETA (rank 0 only).
        meta: recorded in the npz; ``meta["settings"]`` (a dict) must match on resume.
        on_cell: called with (y, x) after each computed cell (tests use it to stop a run).
        checkpoints: one loader per checkpoint of the plane (``plane.labels`` order) returning its
            state dict; each checkpoint is evaluated with exactly those weights (loaded into
            ``model``) into ``points``.  None leaves ``points`` uncomputed (NaN).
    """
    if not metrics:
        raise ValueError("metrics must name at least one metric")
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names must be distinct, got {names}")
    if save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {save_every}")
    if checkpoints is not None and len(checkpoints) != len(plane.labels):
        raise ValueError(f"checkpoints has {len(checkpoints)} loaders for the plane's {len(plane.labels)} "
                         f"checkpoints")
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if not len(a) or not len(b) or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must be non-empty arrays of finite coordinates")
    check_grid_size(len(a), len(b))
    if plane.d2 is None and not np.all(b == 0.0):
        raise ValueError("a line has one axis: b must be [0]")
    context = context or DistributedContext()
    landscape = _empty(a, b, metrics, plane, meta or {})
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if context.is_main:
            remove_orphan_temporaries(out)
        context.barrier()
        sources = [out / LANDSCAPE_FILE] + sorted(out.glob("landscape.rank*.npz"))
        for source in sources:
            if source.is_file():
                previous = Landscape.load(source)
                _check_same(previous, landscape, source)
                _merge(landscape, previous)
        context.barrier()  # every rank has read the same files before any rank writes
    nx, cells = len(a), landscape.done.size
    # Work items: the grid cells, then the checkpoints (numbered cells + k), dealt round-robin (so a
    # cell goes to the same rank with or without checkpoints); each rank does its checkpoints first.
    missing = [int(c) for c in np.flatnonzero(~landscape.done.reshape(-1))] + (
        [cells + int(k) for k in np.flatnonzero(~landscape.points_done)] if checkpoints is not None else [])
    mine = sorted(missing[context.rank::context.world_size], key=lambda item: (item < cells, item))
    device = next(model.parameters()).device
    plane = plane.to(device)
    was_training = model.training
    model.eval()
    bar = None
    if progress and context.is_main and mine:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(mine), unit="cell", desc="landscape", dynamic_ncols=True, file=sys.stderr)
    own = _empty(a, b, metrics, plane, meta or {}) if context.distributed else landscape
    target = _rank_file(out, context.rank) if (out is not None and context.distributed) else (
        out / LANDSCAPE_FILE if out is not None else None)
    since_save = 0
    try:
        for item in mine:
            start = time.perf_counter()
            if item >= cells:  # a checkpoint, from its own weights
                k = item - cells
                model.load_state_dict(checkpoints[k]())
                for metric in metrics:
                    own.points[metric.name][k] = float(metric.compute(model))
                own.points_done[k] = True
            else:
                y, x = divmod(item, nx)
                plane.write(model, float(a[x]), float(b[y]))
                for metric in metrics:
                    own.values[metric.name][y, x] = float(metric.compute(model))
                own.seconds[y, x] = time.perf_counter() - start
                own.done[y, x] = True
            since_save += 1
            if target is not None and since_save >= save_every:
                own.save(target)
                since_save = 0
            if bar is not None:
                bar.update(1)
            if on_cell is not None and item < cells:
                on_cell(*divmod(item, nx))
        if target is not None and since_save:
            own.save(target)
    finally:
        if bar is not None:
            bar.close()
        plane.write(model, 0.0, 0.0)
        model.train(was_training)
    if context.distributed:
        landscape = _gather(landscape, own, context)
        if out is not None:
            if context.is_main:
                landscape.save(out / LANDSCAPE_FILE)
            context.barrier()
            _rank_file(out, context.rank).unlink(missing_ok=True)
            context.barrier()
    elif out is not None:
        landscape.save(out / LANDSCAPE_FILE)
        if landscape.complete and (checkpoints is None or landscape.points_complete):
            for leftover in out.glob("landscape.rank*.npz"):
                leftover.unlink(missing_ok=True)
    return landscape


def _gather(landscape: Landscape, own: Landscape, context: DistributedContext) -> Landscape:
    """Combine every rank's cells and checkpoints with one all-reduce (each is non-zero on one rank
    only, so the float64 sums are exact)."""
    names = list(landscape.values)
    mask = own.done & ~landscape.done
    point_mask = own.points_done & ~landscape.points_done

    def row(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
        return np.concatenate([np.where(mask, grid, 0.0).reshape(-1), np.where(point_mask, points, 0.0)])

    stack = np.stack([row(own.values[n], own.points[n]) for n in names]
                     + [row(own.seconds, np.zeros(len(point_mask))),
                        row(mask.astype(np.float64), point_mask.astype(np.float64))])
    device = context.device if context.device.type == "cuda" else torch.device("cpu")
    total = context.all_reduce_sum(torch.from_numpy(stack).to(device)).cpu().numpy()
    cells = landscape.done.size
    got = total[-1][:cells].reshape(landscape.done.shape) > 0.5
    got_points = total[-1][cells:] > 0.5
    for i, name in enumerate(names):
        landscape.values[name][got] = total[i][:cells].reshape(got.shape)[got]
        landscape.points[name][got_points] = total[i][cells:][got_points]
    landscape.seconds[got] = total[-2][:cells].reshape(got.shape)[got]
    landscape.done |= got
    landscape.points_done |= got_points
    return landscape
