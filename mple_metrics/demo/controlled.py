"""The demo's controlled benchmark: generated translation tasks whose true C is exact.

Before the bundled corpus, the demo runs Tables 1 and 2, Figure 5 and Figure 1 on datasets of
:mod:`mple_metrics.data.controlled`, where P(Y | X) is a finite list and the conditional total
correlation C, the NAT's NLL floor and the AT's (H(Y | X)) are computed by exact enumeration.  There
the estimator can be checked against the truth, and the paper's mechanisms can be seen where theory
says they must show: knowledge distillation from a competent AT collapses the registers (one mode),
AXE absorbs the inserted particle, OaXE the reordered phrases.

Each Table 1 row puts the truth beside the estimate (``c_true_bits_per_token`` beside
``c_bits_per_token``) and each model's NLL beside its floor: the estimator's own ``converged`` flag
says that the NLLs stopped falling, not that they reached the floor, and only the floors can tell a
model on a plateau from a converged one.  An estimate *recovers* C when it lies within
:data:`RELATIVE_TOLERANCE` of it, or within :data:`ABSOLUTE_TOLERANCE` bits/token where C is small.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_text
from ..data.controlled import CONTROLLED_KINDS, ControlledTask, read_truth, write_controlled

RELATIVE_TOLERANCE = 0.10
ABSOLUTE_TOLERANCE = 0.05  # bits/token
MANIFEST = "demo-controlled.json"


@dataclass(frozen=True)
class ControlledPlan:
    """Which controlled datasets the demo generates and how long their models may train.

    Their models are cheap (a vocabulary of a few dozen words, sentences of about ten), so they get
    their own epoch cap and patience: the NATs of the reordering and mixed kinds sit on a plateau
    for several hundred updates before they learn where the modes are, which a patience of 2 at
    4,000 pairs (40 updates an epoch) mistook for convergence."""

    kinds: tuple[str, ...] = ("none", "phrasing", "reordering")
    #: The dataset of Table 2, knowledge distillation and Figure 1: its registers are the modes that
    #: KD from a competent AT collapses.
    main: str = "phrasing"
    train_sentences: int = 4000
    #: Kinds that need more training pairs than ``train_sentences``: at 4,000 pairs the reordering
    #: NAT memorises each training sentence's order (its training loss fell to 0.27 bits/token, below
    #: its floor of 0.35, while its valid NLL rose from 0.56), at 12,000 it stays at its floor.
    train_sentences_by_kind: tuple[tuple[str, int], ...] = (("reordering", 12000),)
    valid_sentences: int = 500
    test_sentences: int = 500
    seed: int = 0
    max_epochs: int = 60
    patience: int = 3
    #: KD + AXE's skip penalties: KD targets of a competent teacher hold no insertions to skip, so
    #: one τ shows what AXE does here.
    skip_penalties: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in CONTROLLED_KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"controlled kinds must be a non-empty subset of {CONTROLLED_KINDS}, got {self.kinds}")
        if any(kind not in self.kinds for kind, _ in self.train_sentences_by_kind):
            raise ValueError(f"train_sentences_by_kind names a kind not among {self.kinds}")
        if self.main not in self.kinds:
            raise ValueError(f"the controlled benchmark's main dataset {self.main!r} is not among {self.kinds}")


    def train_size(self, kind: str) -> int:
        return dict(self.train_sentences_by_kind).get(kind, self.train_sentences)


def dataset_paths(out: str | Path, plan: ControlledPlan) -> dict[str, Path]:
    return {kind: Path(out) / kind for kind in plan.kinds}


def prepare_controlled(out: str | Path, plan: ControlledPlan) -> dict[str, Path]:
    """Write each kind's dataset under ``out/<kind>`` (reused when its manifest records this plan)."""
    paths = dataset_paths(out, plan)
    for kind, path in paths.items():
        manifest = {"plan": asdict(plan), "kind": kind}
        saved = path / MANIFEST
        if saved.is_file() and json.loads(saved.read_text(encoding="utf-8")) == json.loads(json.dumps(manifest)):
            continue
        write_controlled(path, ControlledTask(kind=kind, seed=plan.seed), n_train=plan.train_size(kind),
                         n_valid=plan.valid_sentences, n_test=plan.test_sentences)
        atomic_write_text(saved, json.dumps(manifest) + "\n")
    return paths


def recovers(estimate: float, truth: float) -> bool:
    """Whether ``estimate`` lies within the tolerance of the exact ``truth`` (bits/token)."""
    return abs(estimate - truth) <= max(RELATIVE_TOLERANCE * abs(truth), ABSOLUTE_TOLERANCE)


def truth_columns(data: str | Path, split: str, c: float | None, nll_nat: float | None,
                  nll_at: float | None) -> dict[str, Any]:
    """The exact values of ``split`` of a controlled dataset beside the estimate ``c`` and the models'
    NLLs (bits/token): C and whether ``c`` recovers it, the NAT's floor (sum of the per-position
    entropies, with the length term) and the AT's (H(Y | X)), and how far each model lies above its
    floor."""
    truth = read_truth(data)["splits"][split]
    nat_floor, at_floor = truth["nat_nll_floor_bits_per_token"], truth["h_y_given_x_bits_per_token"]
    return {"c_true_bits_per_token": truth["c_true_bits_per_token"],
            "recovers": c is not None and recovers(c, truth["c_true_bits_per_token"]),
            "c_true_bits_per_sentence": truth["c_true_bits_per_sentence"],
            "nat_floor_bits_per_token": nat_floor, "at_floor_bits_per_token": at_floor,
            "nat_above_floor_bits_per_token": None if nll_nat is None else nll_nat - nat_floor,
            "at_above_floor_bits_per_token": None if nll_at is None else nll_at - at_floor}
