"""Training the two models of a C estimate: an MLE NAT and an AT of one family, within a budget,
early-stopped on the validation split, with a record of whether Ĉ has converged.

V-entropy (Xu et al. 2020; paper footnote 3, Appendix B) is the best held-out NLL reachable within a
model family, so both models are trained by plain maximum likelihood: no label smoothing (it raises
both NLLs and biases Ĉ), the same architecture, size and tokenizer, validation by NLL only (no
decoding), early stopping on the validation split (never the evaluation split).

The schedule is derived from the data and the budget by the trainer's own derivation
(:func:`mple_metrics.train.derive_schedule`, the default of ``mple train`` too): warmup 10% of the
planned updates (1 to 1,000), a token budget per batch giving about 150 updates an epoch (256 to
4,096), the peak learning rate of the model size, no early stop before two warmups.

Convergence: after every validation round r (one per epoch), Ĉ_valid(r) is the difference of the
two models' validation NLLs at their best checkpoints so far, per token, in the estimate's length
convention.  The estimate is ``converged`` when both models have settled and Ĉ_valid moved by at
most :data:`CONVERGENCE_RELATIVE` (or :data:`CONVERGENCE_ABSOLUTE_BITS` bits per token, where Ĉ is
near 0) over the last :data:`CONVERGENCE_WINDOW` rounds.  A model has settled when it early-stopped
(its validation NLL stopped improving before the budget ran out) or when its best validation NLL
improved by at most :data:`PLATEAU_RELATIVE` (or :data:`PLATEAU_ABSOLUTE_BITS` bits per token) over
the last :data:`CONVERGENCE_WINDOW` rounds: an NLL that approaches 0 on a deterministic target
keeps improving by ever smaller amounts and would never early-stop.

Runs live in ``OUT/seed<k>/{nat,at}`` with one shared tokenizer in ``OUT/tokenizer``; a killed run
resumes, and a finished one with the same settings is reused, not retrained.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import (EncodedSplit, TokenizerPair, dataset_tokenizers, load_dataset, resolve_dataset_path,
                    save_tokenizers_whole)
from ..train import Schedule, TrainConfig, train
from ..train import derive_schedule as derive_train_schedule
from .scoring import check_length_terms

CONVERGENCE_WINDOW = 3
CONVERGENCE_RELATIVE = 0.02
CONVERGENCE_ABSOLUTE_BITS = 0.01
PLATEAU_RELATIVE = 0.002
PLATEAU_ABSOLUTE_BITS = 0.002


@dataclass(frozen=True)
class TCTrainingSettings:
    """What the two training runs share.  ``budget_steps`` > 0 caps the updates of each model
    (``max_epochs`` caps them too); ``max_tokens`` None derives the batch size from the data;
    ``lr`` None takes the size's peak learning rate (``mple_metrics.train.DEFAULT_LR``)."""

    data: str
    out: str
    tokenizer_kind: str = "spm"  # byte fallback: no <unk> on any text (word suits the known-C sets)
    vocab_size: int = 8000
    size: str = "tiny"
    max_epochs: int = 30
    budget_steps: int = 0
    patience: int = 3
    #: Early stopping counts an epoch as an improvement only above this many bits/token: Ĉ is a
    #: difference of two NLLs reported to 0.01 bits/token, and without it a model whose NLL creeps
    #: towards 0 (a deterministic dataset) never stops.
    min_delta: float = 1e-3
    lr: float | None = None
    max_tokens: int | None = None
    dropout: float = 0.1
    device: str = "cpu"
    quiet: bool = False

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.tokenizer_kind in ("spm", "bpe") and self.vocab_size < 300:  # SentencePiece's floor
            raise ValueError(f"--vocab-size must be >= 300 with --tokenizer-kind {self.tokenizer_kind} (6 specials "
                             f"+ 256 byte pieces + pieces), got {self.vocab_size}")
        if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, (int, float)) \
                or not 0 <= self.min_delta < float("inf"):
            raise ValueError(f"--min-delta must be a number >= 0 (bits/token), got {self.min_delta!r}")
        if not isinstance(self.budget_steps, int) or self.budget_steps < 0:
            raise ValueError(f"--budget-steps must be an integer >= 0, got {self.budget_steps!r}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ValueError(f"--max-tokens must be an integer >= 1, got {self.max_tokens!r}")


@dataclass
class PairRun:
    """One seed's two trained models and the convergence record of their Ĉ."""

    seed: int
    nat_dir: Path
    at_dir: Path
    nat_summary: dict[str, Any]
    at_summary: dict[str, Any]
    c_valid_bits_per_token: list[float] = field(default_factory=list)
    converged: bool = False
    convergence_note: str = ""

    def checkpoint(self, kind: str) -> Path:
        return (self.nat_dir if kind == "nat" else self.at_dir) / "best.pt"


def shared_tokenizer(settings: TCTrainingSettings) -> TokenizerPair:
    """The tokenizer of both models, learnt once on the training split (or the one the dataset
    carries) and kept in OUT/tokenizer (written to a temporary folder and renamed, so a kill never
    leaves half of it)."""
    target = Path(settings.out) / "tokenizer"
    if target.is_dir():
        return TokenizerPair.load(target)
    tokenizers = dataset_tokenizers(resolve_dataset_path(settings.data))
    if tokenizers is None:  # else the dataset is written for the one it carries (token-level Synthetic A/B)
        train_split = load_dataset(resolve_dataset_path(settings.data), splits=("train",)).train
        tokenizers = TokenizerPair.train(train_split.src, train_split.tgt, kind=settings.tokenizer_kind,
                                         vocab_size=settings.vocab_size)
    save_tokenizers_whole(tokenizers, target)
    return TokenizerPair.load(target)


def _existing_run_config(settings: TCTrainingSettings) -> TrainConfig | None:
    """The settings of a run this estimate already started (any seed), if any."""
    for path in sorted(Path(settings.out).glob("seed*/*/config.json")):
        try:
            return TrainConfig.load_json(path)
        except (ValueError, TypeError):
            continue
    return None


def derive_schedule(settings: TCTrainingSettings, tokenizers: TokenizerPair) -> Schedule:
    """The trainer's schedule derivation on the training split under the estimate's budget, with
    plain MLE (label smoothing 0; module docstring).

    When the estimate's runs exist already, their batch size and warmup are kept, so that a rerun
    with a larger budget continues them instead of being refused as "other settings"."""
    train_split = load_dataset(resolve_dataset_path(settings.data), splits=("train",)).train
    encoded = EncodedSplit.encode(train_split, tokenizers)
    existing = _existing_run_config(settings)
    keep = existing is not None and settings.max_tokens in (None, existing.max_tokens)
    return derive_train_schedule(
        encoded, settings.size, settings.max_epochs, settings.budget_steps, settings.patience, lr=settings.lr,
        max_tokens=existing.max_tokens if keep else settings.max_tokens,
        warmup_steps=existing.warmup_steps if keep else None, label_smoothing=0.0)


def run_config(settings: TCTrainingSettings, schedule: Schedule, kind: str, seed: int) -> TrainConfig:
    out = Path(settings.out)
    return TrainConfig(
        data=settings.data, out=str(out / f"seed{seed}" / kind), model=kind, size=settings.size,
        tokenizer=str(out / "tokenizer"), tokenizer_kind=settings.tokenizer_kind,
        vocab_size=settings.vocab_size, dropout=settings.dropout, lr=schedule.lr,
        warmup_steps=schedule.warmup_steps, label_smoothing=schedule.label_smoothing,
        max_tokens=schedule.max_tokens, max_steps=schedule.max_steps, max_epochs=schedule.max_epochs,
        patience=schedule.patience, min_delta=settings.min_delta, min_updates=schedule.min_updates, keep_best=1, valid_bleu=False, seed=seed,
        device=settings.device, quiet=settings.quiet)


def train_or_reuse(config: TrainConfig) -> dict[str, Any]:
    """Train ``config``; resume its run if one was started; reuse it if it finished with the same
    settings (``summary.json`` beside a matching ``config.json``)."""
    out = Path(config.out)
    saved_config, summary = out / "config.json", out / "summary.json"
    if saved_config.is_file():
        saved = TrainConfig.load_json(saved_config)
        if saved.tokenizer != config.tokenizer:
            # The estimate's folder was moved or copied: its shared tokenizer is the same one.  A
            # resumed run restores the tokenizer from its checkpoint; a run without one restarts.
            if (out / "last.pt").is_file() or Path(str(saved.tokenizer)).is_dir():
                config = TrainConfig.from_dict({**config.to_dict(), "tokenizer": saved.tokenizer})
            else:
                saved_config.unlink()
                return train(config)
        differences = config.resume_differences(saved)
        if differences:
            raise ValueError(f"{out} holds a run with other settings ({'; '.join(differences)}); "
                             "use another --out")
        if summary.is_file() and (out / "best.pt").is_file():
            finished = json.loads(summary.read_text(encoding="utf-8"))
            same_budget = (saved.max_epochs, saved.max_steps) == (config.max_epochs, config.max_steps)
            if same_budget or finished.get("stopped_early"):
                return finished
            # Another budget (e.g. a larger --max-epochs after a "not converged" warning): continue
            # the run from its last checkpoint under the new caps.
        config = TrainConfig.from_dict({**config.to_dict(), "resume": True})
    return train(config)


def validation_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "valid.jsonl"
    records = []
    for line in path.read_text(encoding="utf-8").split("\n") if path.is_file() else []:
        if line.strip():
            records.append(json.loads(line))
    return records


def _sentence_nll(record: dict[str, Any], kind: str, length_terms: str) -> float:
    """A validation record's NLL per sentence (bits) in the estimate's length convention."""
    nll = float(record["nll_bits_per_sentence"])
    length = float(record.get("length_nll_bits_per_sentence", 0.0))
    if kind == "nat":
        return nll + length if length_terms == "include" else nll
    return nll if length_terms == "include" else nll - length


def _best_so_far(records: list[dict[str, Any]], kind: str, length_terms: str) -> list[float]:
    """After each validation, the NLL (per sentence) of the checkpoint early stopping keeps then."""
    best_key, best_value, out = math.inf, math.nan, []
    for record in records:
        if record["nll_bits_per_token"] < best_key:
            best_key, best_value = record["nll_bits_per_token"], _sentence_nll(record, kind, length_terms)
        out.append(best_value)
    return out


def _plateaued(records: list[dict[str, Any]]) -> bool:
    """The best validation NLL (bits per token) improved by at most the plateau tolerance over the
    last :data:`CONVERGENCE_WINDOW` rounds (module docstring)."""
    if len(records) <= CONVERGENCE_WINDOW:
        return False
    best = [min(r["nll_bits_per_token"] for r in records[:k + 1]) for k in range(len(records))]
    gain = best[-CONVERGENCE_WINDOW - 1] - best[-1]
    return gain <= max(PLATEAU_RELATIVE * best[-1], PLATEAU_ABSOLUTE_BITS)


def convergence(nat_records: list[dict[str, Any]], at_records: list[dict[str, Any]],
                nat_stopped: bool, at_stopped: bool, length_terms: str) -> tuple[list[float], bool, str]:
    """(Ĉ_valid in bits per token after each round, converged, why) — module docstring."""
    check_length_terms(length_terms)
    if not nat_records or not at_records:
        return [], False, "no validation records"
    nat, at = _best_so_far(nat_records, "nat", length_terms), _best_so_far(at_records, "at", length_terms)
    sentences = nat_records[-1]["sentences"]
    tokens = nat_records[-1]["scored_positions"]  # the NAT scores the T target tokens of each sentence
    per_token = sentences / max(tokens, 1)
    rounds = max(len(nat), len(at))
    c = [(nat[min(r, len(nat) - 1)] - at[min(r, len(at) - 1)]) * per_token for r in range(rounds)]
    reasons = []
    for name, records, stopped in (("NAT", nat_records, nat_stopped), ("AT", at_records, at_stopped)):
        if not stopped and not _plateaued(records):
            reasons.append(f"the {name} did not early-stop (budget reached while its validation NLL "
                           "still improved)")
    if len(c) < CONVERGENCE_WINDOW:
        reasons.append(f"fewer than {CONVERGENCE_WINDOW} validation rounds")
    else:
        window = c[-CONVERGENCE_WINDOW:]
        moved = max(window) - min(window)
        tolerance = max(CONVERGENCE_RELATIVE * abs(c[-1]), CONVERGENCE_ABSOLUTE_BITS)
        if moved > tolerance:
            reasons.append(f"Ĉ on the valid split moved {moved:.4f} bits/token over the last "
                           f"{CONVERGENCE_WINDOW} validations (tolerance {tolerance:.4f})")
    converged = not reasons
    settled = "both models settled (early-stopped or plateaued) and Ĉ on the valid split is stable"
    note = settled if converged else "; ".join(reasons)
    return c, converged, note


def train_pair(settings: TCTrainingSettings, seed: int, length_terms: str = "include",
               schedule: Schedule | None = None) -> tuple[PairRun, Schedule]:
    """Train (or resume, or reuse) the NAT and AT of one seed; returns the runs and the schedule."""
    tokenizers = shared_tokenizer(settings)
    schedule = schedule or derive_schedule(settings, tokenizers)
    runs = {}
    for kind in ("nat", "at"):
        config = run_config(settings, schedule, kind, seed)
        runs[kind] = (Path(config.out), train_or_reuse(config))
    (nat_dir, nat_summary), (at_dir, at_summary) = runs["nat"], runs["at"]
    c, converged, note = convergence(validation_records(nat_dir), validation_records(at_dir),
                                     bool(nat_summary.get("stopped_early")),
                                     bool(at_summary.get("stopped_early")), length_terms)
    return PairRun(seed, nat_dir, at_dir, nat_summary, at_summary, c, converged, note), schedule


def schedule_dict(schedule: Schedule) -> dict[str, Any]:
    return asdict(schedule)
