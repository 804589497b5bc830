"""The ``mple`` command lines that compute what the demo computes, for the report.

The demo calls the library directly; these are the same calls written as commands, with the
options that differ from each command's defaults, so that anyone can rerun one number by hand.
Paths are relative to the demo's work directory.
"""

from __future__ import annotations

import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..train import TrainConfig
from .controlled import ControlledPlan
from .plan import DemoPlan

#: TrainConfig fields that are not options of ``mple train`` or do not change a result.
_NOT_OPTIONS = {"model", "out", "data", "resume", "quiet", "model_overrides", "betas", "adam_eps", "warmup_init_lr",
                "train_split", "valid_split", "schedule_derivation"}


def _relative(value: Any, root: Path) -> str:
    text = str(value)
    try:
        return str(Path(text).relative_to(root))
    except ValueError:
        return text


def _join(words: list[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def train_command(config: TrainConfig, root: Path) -> str:
    """``mple train`` with every option of ``config`` that differs from the defaults."""
    defaults = TrainConfig(model=config.model)
    words = ["mple", "train", "--model", config.model, "--data", _relative(config.data, root),
             "--out", _relative(config.out, root)]
    for f in fields(TrainConfig):
        name, value = f.name, getattr(config, f.name)
        if name in _NOT_OPTIONS or value == getattr(defaults, name):
            continue
        flag = "--" + name.replace("_", "-")
        if name == "valid_bleu":
            words.append("--no-valid-bleu")
        elif name == "regularizer":
            words.append("--no-regularizer")
        elif name == "kd":
            for directory in value:
                words += ["--kd", _relative(directory, root)]
        elif name == "gamma":
            words += [flag, *(f"{g:g}" for g in value)]
        elif name in ("tokenizer", "init_from"):
            words += [flag, _relative(value, root)]
        elif value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    for key, value in sorted(config.model_overrides.items()):
        words += ["--model-arg", f"{key}={value}"]
    return _join(words)


def controlled_data_command(kind: str, out: str, controlled: ControlledPlan) -> str:
    """``mple data controlled`` writing the controlled benchmark's dataset of ``kind``."""
    return _join(["mple", "data", "controlled", "--kind", kind, "--out", out, "--seed", str(controlled.seed),
                  "--train", str(controlled.train_size(kind)), "--valid", str(controlled.valid_sentences),
                  "--test", str(controlled.test_sentences)])


def tc_command(plan: DemoPlan, data: str, out: str, max_epochs: int, patience: int,
               carries_tokenizer: bool = False) -> str:
    """``mple estimate tc`` on ``data`` with the benchmark's epoch cap and patience; a dataset that
    carries its tokenizer (token-level Synthetic A/B, the controlled benchmark) takes no tokenizer
    options (the command refuses them)."""
    tokenizer = [] if carries_tokenizer else ["--tokenizer-kind", plan.tokenizer_kind, "--vocab-size",
                                              str(plan.vocab_size)]
    words = ["mple", "estimate", "tc", "--data", data, "--out", out, "--split", "test", *tokenizer,
             "--size", plan.size, "--max-tokens", str(plan.max_tokens), "--lr", f"{plan.lr:g}", "--max-epochs",
             str(max_epochs), "--patience", str(patience), "--at-beam", str(plan.at_beam),
             "--resamples", str(plan.n_resamples)]
    if plan.max_steps:
        words += ["--budget-steps", str(plan.max_steps)]
    return _join(words)


def distill_command(plan: DemoPlan, teachers: list[str], data: str, out: str, names: list[str] | None = None) -> str:
    words = ["mple", "distill"]
    for t in teachers:
        words += ["--teacher", t]
    for n in names or []:
        words += ["--name", n]
    return _join(words + ["--data", data, "--out", out, "--beam", str(plan.kd_beam)])


def mple_command(plan: DemoPlan, run: str, data: str, out: str, input_predictor: str | None = None) -> str:
    words = ["mple", "estimate", "mple", "--nat", run, "--data", data, "--split", "test", "--resamples",
             str(plan.n_resamples), "--out", out]
    if input_predictor:
        words += ["--input-predictor", input_predictor]
    return _join(words)


def correlate_command(results: list[str], bleu: str, plot: str, fig5: tuple[str, str] | None = None) -> str:
    words = ["mple", "estimate", "correlate", *results, "--bleu", bleu, "--plot", plot]
    if fig5:
        words += ["--fig5", fig5[0], "--fig5-plot", fig5[1]]
    return _join(words)


def landscape_command(checkpoints: list[str], data: str, out: str, grid: str, margin: float,
                      max_sentences: int) -> str:
    words = ["mple", "landscape"]
    for c in checkpoints:
        words += ["--ckpt", c]
    return _join(words + ["--data", data, "--split", "valid", "--out", out, "--grid", grid, "--margin",
                          f"{margin:g}", "--metrics", "nll,bleu", "--max-sentences", str(max_sentences)])
