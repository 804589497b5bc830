"""The demo's work directory: where each step's runs live and its result is kept.

A step's result is ``OUT/results/<step>.json``, written atomically when the step finishes, with the
plan it was computed under and its wall time.  A rerun of the demo reuses every result whose plan
matches (and recomputes nothing); a step that was killed resumes through its own runs (trainings,
distillation and landscape grids resume by themselves).  A work directory that holds results of
another plan is refused: mixing them would report numbers that no single plan produced.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_text
from ..estimators.total_correlation import json_ready
from .plan import DemoPlan

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Benchmark:
    """The datasets a group of steps runs on: Table 1 on each of ``datasets`` (in its order), KD,
    Table 2 and Figure 1 on ``main``.  Its models from scratch train for at most ``max_epochs`` with
    early stopping after ``patience`` validations without improvement; Table 2 has a KD + AXE row per
    skip penalty τ of ``skip_penalties``.  ``exact_truth``: the datasets carry their exact C
    (controlled benchmark), which Table 1 puts beside each estimate."""

    name: str
    datasets: tuple[tuple[str, Path], ...]
    main: str
    max_epochs: int
    patience: int
    skip_penalties: tuple[float, ...]
    exact_truth: bool = False

    def paths(self) -> dict[str, Path]:
        return dict(self.datasets)


class Workspace:
    """``out`` (made absolute) for ``plan``; ``echo`` prints a line unless the plan is quiet."""

    def __init__(self, out: str | Path, plan: DemoPlan) -> None:
        self.out = Path(out).resolve()
        self.root = self.out  # where this view's runs and results live (see scoped)
        self.plan = plan
        self.benchmark: Benchmark | None = None
        self.out.mkdir(parents=True, exist_ok=True)
        saved = self.out / PLAN_FILE
        identity = json_ready(plan.identity())
        if saved.is_file():
            previous = json.loads(saved.read_text(encoding="utf-8"))
            if previous != identity:
                changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
                raise ValueError(f"--out {self.out} holds a demo run with other settings ({', '.join(changed)}); "
                                 f"use another --out or remove it")
        else:
            atomic_write_text(saved, json.dumps(identity, indent=1) + "\n")

    def scoped(self, subdirectory: str, benchmark: Benchmark) -> Workspace:
        """A view of this work directory whose runs and results live under ``subdirectory`` (``""``:
        the top) and whose steps run on ``benchmark``."""
        view = copy.copy(self)
        view.root = self.out / subdirectory if subdirectory else self.out
        view.benchmark = benchmark
        return view

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def echo(self, line: str) -> None:
        if not self.plan.quiet:
            print(line, flush=True)

    def step(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The result of step ``name``: read back if it was computed, else computed, timed and kept."""
        path = self.path("results", f"{name}.json")
        if path.is_file():
            result = json.loads(path.read_text(encoding="utf-8"))
            result["reused"] = True
            return result
        start = time.perf_counter()
        result = json_ready(compute())
        result["seconds"] = time.perf_counter() - start
        atomic_write_text(path, json.dumps(result, indent=1) + "\n")
        result["reused"] = False
        return result
