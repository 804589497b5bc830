"""What the demo trains and measures, derived from its mode and budget.

Three modes share one pipeline.  Each first runs the controlled benchmark (:mod:`.controlled`:
generated tasks whose C is exact) and then the bundled corpus:

- ``default``: Tables 1 and 2, Figures 1 and 5 on both, the bundled corpus' sample sized so that
  ``make demo`` fits :data:`DEFAULT_BUDGET_MINUTES` on a 2-core machine (tiny models);
- ``full``: the default steps plus Table 3 (proxy inputs, Input Sampling, L_input) and dynamic KD
  with its regulariser ablation, on a larger sample and budget;
- ``smoke``: every step of ``full`` on a few hundred sentences with a few updates per model, in
  about a minute: it checks that the pipeline runs, its numbers mean nothing.

``--budget-minutes`` scales the bundled corpus' training sample and epoch caps from the mode's own
budget (the time a run takes is roughly proportional to sentences × epochs; the controlled
benchmark is a fixed check and does not scale; ``--no-controlled`` skips it); it is refused with
``smoke``, whose plan is fixed; ``--size`` and
``--device`` are passed to every model.  Every choice is recorded in the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .controlled import ControlledPlan
from .corpus import CorpusPlan

MODES: tuple[str, ...] = ("smoke", "default", "full")
DEFAULT_BUDGET_MINUTES = 25.0
FULL_BUDGET_MINUTES = 90.0
SMOKE_BUDGET_MINUTES = 1.0


@dataclass(frozen=True)
class DemoPlan:
    """Every setting of a demo run (``identity()`` is what a rerun must match to reuse results)."""

    mode: str
    budget_minutes: float
    size: str = "tiny"
    device: str = "cpu"
    corpus: CorpusPlan = field(default_factory=CorpusPlan)
    controlled: ControlledPlan | None = field(default_factory=ControlledPlan)  # None: skipped
    tokenizer_kind: str = "spm"
    vocab_size: int = 1000
    max_tokens: int = 1024          # tokens per batch: small models on a CPU gain little from smaller ones
    max_epochs: int = 30            # cap of every model trained from scratch (early stopping decides)
    # Peak learning rate of the models trained from scratch: above the estimator's default for tiny
    # models (2e-3), which would leave them much further from converged within minutes.
    lr: float = 5e-3
    patience: int = 2
    oaxe_epochs: int = 3            # OaXE fine-tunes the KD NAT (Appendix G)
    fine_tune_epochs: int = 2       # Figure 1's two fine-tunes of the MLE NAT
    fine_tune_lr: float = 5e-4      # constant, as the paper fine-tunes
    skip_penalties: tuple[float, ...] = (1.0, 5.0, 10.0)
    kd_beam: int = 4
    at_beam: int = 4
    landscape_grid: str = "9x9"
    landscape_sentences: int = 200
    landscape_margin: float = 0.3
    n_resamples: int = 1000
    max_steps: int = 0              # smoke: a hard cap of updates per model
    second_teacher: dict[str, int] = field(default_factory=lambda: {"d_model": 32, "ffn_dim": 128})
    quiet: bool = False

    @property
    def full(self) -> bool:
        return self.mode in ("full", "smoke")

    def identity(self) -> dict[str, Any]:
        """The settings results depend on (not ``quiet``)."""
        values = asdict(self)
        values.pop("quiet")
        return values


def make_plan(mode: str = "default", *, budget_minutes: float | None = None, size: str = "tiny",
              device: str = "cpu", quiet: bool = False, controlled: bool = True) -> DemoPlan:
    """The plan of ``mode`` (module docstring), scaled to ``budget_minutes`` when given."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if budget_minutes is not None and (isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float))
                                       or not math.isfinite(budget_minutes) or budget_minutes <= 0):
        raise ValueError(f"--budget-minutes must be a number > 0, got {budget_minutes!r}")
    if mode == "smoke" and budget_minutes is not None:
        # The smoke plan is fixed (a pipeline check of about a minute); a budget would be ignored.
        raise ValueError(f"--budget-minutes {budget_minutes:g} does not apply to --smoke (a fixed check of "
                         f"the pipeline, not a result); drop one of them")
    if mode == "smoke":
        plan = DemoPlan(mode=mode, budget_minutes=SMOKE_BUDGET_MINUTES, size=size, device=device,
                        corpus=CorpusPlan(max_words=12, train_sentences=240, valid_sentences=40, test_sentences=48),
                        vocab_size=400, max_tokens=256, max_epochs=2, patience=1, oaxe_epochs=1, fine_tune_epochs=1,
                        kd_beam=2, at_beam=2, landscape_grid="3x3", landscape_sentences=24, n_resamples=100,
                        max_steps=6, quiet=quiet,
                        controlled=ControlledPlan(train_sentences=240, valid_sentences=40, test_sentences=48,
                                                  train_sentences_by_kind=(), max_epochs=2, patience=1))
    elif mode == "full":
        plan = DemoPlan(mode=mode, budget_minutes=FULL_BUDGET_MINUTES, size=size, device=device,
                        corpus=CorpusPlan(train_sentences=6000, valid_sentences=600, test_sentences=1000),
                        vocab_size=1500, max_epochs=12, patience=3, oaxe_epochs=4, fine_tune_epochs=3,
                        kd_beam=5, at_beam=5, landscape_grid="11x11", landscape_sentences=300, quiet=quiet)
    else:
        plan = DemoPlan(mode=mode, budget_minutes=DEFAULT_BUDGET_MINUTES, size=size, device=device, quiet=quiet)
    if not controlled:
        plan = replace(plan, controlled=None)
    if budget_minutes is None or budget_minutes == plan.budget_minutes or mode == "smoke":
        return plan
    # Time ~ sentences × epochs: scale the sample by the square root of the budget ratio and the
    # epoch caps by the rest, so both grow (more data alone would leave the models unconverged).
    ratio = budget_minutes / plan.budget_minutes
    grow = math.sqrt(ratio)
    corpus = replace(plan.corpus, train_sentences=max(200, int(plan.corpus.train_sentences * grow)))
    return replace(plan, budget_minutes=float(budget_minutes), corpus=corpus,
                   max_epochs=max(2, round(plan.max_epochs * grow)),
                   oaxe_epochs=max(1, round(plan.oaxe_epochs * grow)),
                   fine_tune_epochs=max(1, round(plan.fine_tune_epochs * grow)))
