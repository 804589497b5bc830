"""A 2-D section of weight space: an origin and two directions, and the state at (a, b).

Three kinds (Figure 1 of Huang et al. 2022; Garipov et al.'s ``plane.py``; Li et al. 2018):

- **affine** through three checkpoints: θ(a, b) = θ0 + a(θ1 − θ0) + b(θ2 − θ0).  The checkpoints lie at
  (0, 0), (1, 0) and (0, 1).
- **orthonormal** through three checkpoints: u = (θ1 − θ0)/‖θ1 − θ0‖, v = the Gram–Schmidt
  remainder of θ2 − θ0 normalised, θ(a, b) = θ0 + a·u + b·v.  Coordinates are Euclidean distances in
  weight space: θ0 at (0, 0), θ1 at (‖θ1 − θ0‖, 0), θ2 at (⟨θ2 − θ0, u⟩, ⟨θ2 − θ0, v⟩).
- a **line** through two checkpoints (one direction, b unused): θ(a) = θ0 + a(θ1 − θ0), or
  a·u with orthonormal axes.
- **random**: two Gaussian directions around one checkpoint, filter-normalised per output row
  (each row of a direction gets the norm of that row of θ0), 1-D tensors (biases, LayerNorm) left at
  zero unless asked for.

Only floating-point tensors of the state dicts move; the others (integer counters and buffers) are
those of the first checkpoint.  All directions are kept in float64 on the CPU or the model's
device; :meth:`Plane.write` writes θ(a, b) into a model's own tensors in place (no new state dict).
Deterministic: ``random`` draws from a generator seeded with ``seed`` only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..models import CheckpointError, ModelConfig, load_checkpoint

AXES: tuple[str, ...] = ("affine", "orthonormal")
KINDS: tuple[str, ...] = ("plane", "line", "random")


def _floating(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _dot(x: Mapping[str, torch.Tensor], y: Mapping[str, torch.Tensor]) -> float:
    return float(sum(torch.sum(x[k].double() * y[k].double()) for k in x))


def _norm(x: Mapping[str, torch.Tensor]) -> float:
    return math.sqrt(max(_dot(x, x), 0.0))


def _difference(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: a[k].double() - b[k].double() for k in b if _floating(b[k])}


def _residual(x: Mapping[str, torch.Tensor], direction: Mapping[str, torch.Tensor], norm: float) -> float:
    """‖x − ⟨x, d̂⟩ d̂‖ with d̂ = direction / norm."""
    along = _dot(x, direction) / (norm * norm)
    return _norm({k: x[k] - along * direction[k] for k in x})


def check_compatible(states: Sequence[Mapping[str, torch.Tensor]], names: Sequence[str]) -> None:
    """Raise :class:`CheckpointError` naming the first parameter whose presence, shape or dtype
    kind differs between the state dicts."""
    first = states[0]
    for name, state in zip(names[1:], states[1:]):
        missing = sorted(set(first) - set(state))
        extra = sorted(set(state) - set(first))
        if missing or extra:
            raise CheckpointError(f"{names[0]} and {name} have different parameters: "
                                  f"{', '.join((missing + extra)[:5])}")
        for key, value in first.items():
            other = state[key]
            if tuple(value.shape) != tuple(other.shape):
                raise CheckpointError(f"{names[0]} and {name} differ in the shape of {key}: "
                                      f"{tuple(value.shape)} vs {tuple(other.shape)}")
            if _floating(value) != _floating(other):
                raise CheckpointError(f"{names[0]} and {name} differ in the dtype of {key}: "
                                      f"{value.dtype} vs {other.dtype}")


@dataclass
class Plane:
    """Origin θ0 and directions d1, d2 (float64 tensors per floating-point parameter name; d2 is
    None for a line) with θ(a, b) = θ0 + a·d1 + b·d2.

    Attributes:
        kind: ``"plane"``, ``"line"`` or ``"random"``.
        axes: ``"affine"`` or ``"orthonormal"`` (random directions are reported as ``"random"``).
        coordinates: (a, b) of each checkpoint the plane was built from, in their order.
        labels: a name per checkpoint.
        fixed: the non-floating-point entries (from the first checkpoint), written unchanged.
        scales: the norms ‖θ1 − θ0‖, ‖θ2 − θ0‖ (weight-space units of one affine step).
    """

    origin: dict[str, torch.Tensor]
    d1: dict[str, torch.Tensor]
    d2: dict[str, torch.Tensor] | None
    kind: str
    axes: str
    coordinates: list[tuple[float, float]]
    labels: list[str]
    fixed: dict[str, torch.Tensor] = field(default_factory=dict)
    scales: list[float] = field(default_factory=list)
    _scratch: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_state_dicts(cls, states: Sequence[Mapping[str, torch.Tensor]], axes: str = "affine",
                         labels: Sequence[str] | None = None) -> Plane:
        """The plane through three state dicts (θ0, θ1, θ2) or the line through two."""
        if axes not in AXES:
            raise ValueError(f"axes must be one of {AXES}, got {axes!r}")
        if len(states) not in (2, 3):
            raise ValueError(f"a plane needs 3 checkpoints and a line 2, got {len(states)}")
        labels = list(labels) if labels is not None else [f"θ{i}" for i in range(len(states))]
        if len(labels) != len(states):
            raise ValueError(f"labels has {len(labels)} names for {len(states)} checkpoints")
        check_compatible(states, labels)
        first = states[0]
        origin = {k: v.detach().double().clone() for k, v in first.items() if _floating(v)}
        fixed = {k: v.detach().clone() for k, v in first.items() if not _floating(v)}
        e1 = _difference(states[1], first)
        n1 = _norm(e1)
        if n1 == 0.0:
            raise ValueError(f"{labels[1]} equals {labels[0]}: the direction θ1 − θ0 is zero")
        e2 = _difference(states[2], first) if len(states) == 3 else None
        n2 = _norm(e2) if e2 is not None else 0.0
        if e2 is not None and n2 == 0.0:
            raise ValueError(f"{labels[2]} equals {labels[0]}: the direction θ2 − θ0 is zero")
        kind = "plane" if e2 is not None else "line"
        if e2 is not None:
            if _residual(e2, e1, n1) <= 1e-6 * n2:  # collinear up to float32 rounding
                raise ValueError(f"{labels[0]}, {labels[1]} and {labels[2]} lie on one line (or two are equal): "
                                 f"no plane (use two checkpoints for a line)")
        if axes == "affine":
            coords = [(0.0, 0.0), (1.0, 0.0)] + ([(0.0, 1.0)] if e2 is not None else [])
            return cls(origin, e1, e2, kind, axes, coords, labels, fixed, [n1] + ([n2] if e2 is not None else []))
        u = {k: v / n1 for k, v in e1.items()}
        coords = [(0.0, 0.0), (n1, 0.0)]
        v = None
        if e2 is not None:
            along = _dot(e2, u)
            rest = {k: e2[k] - along * u[k] for k in e2}
            across = _norm(rest)
            v = {k: r / across for k, r in rest.items()}
            coords.append((along, across))
        return cls(origin, u, v, kind, axes, coords, labels, fixed, [n1] + ([n2] if e2 is not None else []))

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | os.PathLike], axes: str = "affine",
                         labels: Sequence[str] | None = None) -> tuple[Plane, ModelConfig, dict]:
        """(plane, model config, first checkpoint's payload) through 2 or 3 checkpoint files or run
        directories.  Raises :class:`CheckpointError` naming the differing architecture field, the
        tokenizer, or the parameter that does not match."""
        payloads = [load_checkpoint(p) for p in paths]
        plane, config = cls.from_payloads(payloads, axes, labels if labels is not None else default_labels(paths))
        return plane, config, payloads[0]

    @classmethod
    def from_payloads(cls, payloads: Sequence[Mapping], axes: str = "affine",
                      labels: Sequence[str] | None = None) -> tuple[Plane, ModelConfig]:
        """(plane, model config) through 2 or 3 loaded checkpoints (:func:`load_checkpoint` payloads),
        checked as :meth:`from_checkpoints` says."""
        names = [p["path"] for p in payloads]
        configs = [ModelConfig.from_dict(p["model_config"]) for p in payloads]
        for name, config, payload in zip(names[1:], configs[1:], payloads[1:]):
            differences = configs[0].architecture_differences(config)
            if differences:
                raise CheckpointError(f"checkpoints {names[0]} and {name} have different architectures: "
                                      f"{'; '.join(differences)}")
            if payload["tokenizer"] != payloads[0]["tokenizer"]:
                raise CheckpointError(f"checkpoints {names[0]} and {name} have different tokenizers "
                                      f"(vocabularies); a plane needs one vocabulary")
        if len(payloads) == 1:
            raise ValueError("one checkpoint spans no plane: give 2 (a line), 3 (a plane) or "
                             "random directions")
        plane = cls.from_state_dicts([p["model"] for p in payloads], axes,
                                     labels if labels is not None else default_labels(names))
        return plane, configs[0]

    @classmethod
    def random(cls, state: Mapping[str, torch.Tensor], seed: int = 0, include_1d: bool = False,
               label: str = "θ0") -> Plane:
        """Two filter-normalised Gaussian directions around ``state`` (Li et al. 2018): for a tensor
        of 2 or more dimensions each output row (first dimension) of a direction is scaled to the norm
        of that row of the weights; 1-D tensors get zero directions unless ``include_1d`` (then the
        whole tensor is one filter).  Rows of zero weights stay zero.  Deterministic in ``seed``."""
        generator = torch.Generator().manual_seed(int(seed))
        origin = {k: v.detach().double().clone() for k, v in state.items() if _floating(v)}
        fixed = {k: v.detach().clone() for k, v in state.items() if not _floating(v)}
        directions = []
        for _ in range(2):
            d = {}
            for key, theta in origin.items():
                if theta.dim() <= 1 and not include_1d:
                    d[key] = torch.zeros_like(theta)
                    continue
                draw = torch.randn(theta.shape, generator=generator, dtype=torch.float64)
                rows_t = theta.reshape(theta.shape[0], -1) if theta.dim() > 1 else theta.reshape(1, -1)
                rows_d = draw.reshape(rows_t.shape)
                scale = rows_t.norm(dim=1, keepdim=True) / rows_d.norm(dim=1, keepdim=True).clamp_min(1e-300)
                d[key] = (rows_d * scale).reshape(theta.shape)
            directions.append(d)
        return cls(origin, directions[0], directions[1], "random", "random", [(0.0, 0.0)], [label], fixed,
                   [_norm(directions[0]), _norm(directions[1])])

    # -- use ---------------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> Plane:
        """The directions moved to ``device`` (float64 kept)."""
        move = (lambda d: {k: v.to(device) for k, v in d.items()} if d is not None else None)
        return Plane(move(self.origin), move(self.d1), move(self.d2), self.kind, self.axes,
                     list(self.coordinates), list(self.labels), move(self.fixed) or {}, list(self.scales))

    def state(self, a: float, b: float = 0.0) -> dict[str, torch.Tensor]:
        """θ(a, b) as a new state dict (float64 for the floating-point entries); for tests and
        export.  Evaluation should use :meth:`write`."""
        out = {k: v.clone() for k, v in self.fixed.items()}
        for key, theta in self.origin.items():
            value = theta + a * self.d1[key]
            if self.d2 is not None and b != 0.0:
                value = value + b * self.d2[key]
            out[key] = value
        return out

    @torch.no_grad()
    def write(self, model: torch.nn.Module, a: float, b: float = 0.0) -> None:
        """Write θ(a, b) into ``model``'s own parameters and buffers in place (each computed in
        float64, then cast to the tensor's dtype).  ``b`` must be 0 on a line."""
        if self.d2 is None and b != 0.0:
            raise ValueError(f"a line has no second coordinate; got b={b}")
        tensors = model.state_dict(keep_vars=True)  # the model's own tensors (tied ones under each name)
        missing = [k for k in list(self.origin) + list(self.fixed) if k not in tensors]
        if missing:
            raise CheckpointError(f"the model lacks the plane's parameters {', '.join(missing[:5])}")
        seen: set[int] = set()
        for key, theta in self.origin.items():
            target = tensors[key]
            if id(target) in seen:  # a tied weight: written once
                continue
            seen.add(id(target))
            work = self._scratch.get(key)
            if work is None or work.device != theta.device:
                work = self._scratch[key] = torch.empty_like(theta)
            torch.add(theta, self.d1[key], alpha=a, out=work)
            if self.d2 is not None and b != 0.0:
                work.add_(self.d2[key], alpha=b)
            target.copy_(work)
        for key, value in self.fixed.items():
            tensors[key].copy_(value)

    def metadata(self) -> dict:
        """What the npz records of the plane (JSON-able)."""
        return {"kind": self.kind, "axes": self.axes, "labels": list(self.labels),
                "coordinates": [list(c) for c in self.coordinates], "scales": list(self.scales),
                "parameters_moved": len(self.origin), "entries_fixed": sorted(self.fixed)}


def default_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """θ0, θ1, θ2 followed by the run directory or file name: ``θ0 (nat-mle)``."""
    from pathlib import Path

    labels = []
    for i, path in enumerate(paths):
        p = Path(path)
        name = p.parent.name if p.is_file() and p.name in ("best.pt", "last.pt", "average.pt") else p.name
        if p.is_file() and p.suffix == ".pt" and p.name not in ("best.pt", "last.pt", "average.pt"):
            name = f"{p.parent.name}/{p.stem}"
        labels.append(f"θ{i} ({name})" if name else f"θ{i}")
    return labels
