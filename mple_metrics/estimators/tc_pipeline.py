"""The whole C estimate of a dataset: train (or take) the two models, score the evaluation split,
measure ΔBLEU, bootstrap the intervals, write the report.

Three entry points, one per way of getting the per-sentence NLLs (``mple estimate tc`` exposes each):

- :func:`estimate_tc_by_training`: trains an MLE NAT and AT per seed (:mod:`.tc_training`);
- :func:`estimate_tc_with_models`: scores two given checkpoints of this package;
- :func:`estimate_tc_from_scores`: takes per-sentence NLLs computed by any toolkit;
- :func:`estimate_tc_with_scorers`: asks two :class:`~.scoring.SentenceScorer` objects (any model).

Every file is written atomically, per-sentence scores are cached beside the runs
(``OUT/seed<k>/scores-<split>-<length_terms>.json``), so a killed estimate resumes and a repeated one
reuses its models and scores.

Premises (DESIGN §2): Ĉ compares a NAT and an AT of one family, one tokenizer, both trained by plain
MLE on the raw targets and early-stopped on a split other than the evaluated one.  Checkpoints
record all of it, so :func:`score_checkpoints` refuses a family or tokenizer mismatch and the
reports carry a ``warnings`` list for what biases Ĉ (label smoothing, a proxy target or input, the
early-stopping split evaluated, ``<unk>`` targets, an unconverged estimate).  The signature names
both architectures and the target tokenizer from the checkpoints themselves
(:func:`family_signature`, :func:`tokenizer_signature`), so the same models get the same signature
whichever entry point scored them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic_write import atomic_write_text
from ..data import (EncodedSplit, Split, TokenizerPair, UnkRate, load_dataset, resolve_dataset_path,
                    unk_rate, unk_rate_warning)
from ..decode import DecodeOptions, translate_encoded
from ..models.checkpoint import checkpoint_file, load_model, same_dataset
from ..train.validation import bleu_scores
from .scoring import SentenceScorer, check_length_terms, score_encoded
from .tc_training import PairRun, Schedule, TCTrainingSettings, schedule_dict, train_pair
from .total_correlation import TCEstimate, combine_seeds, conditional_tc, write_tc_report


@dataclass
class TCReport:
    """An estimate with everything the report holds beside it (``extra`` goes into tc.json)."""

    estimate: TCEstimate
    extra: dict[str, Any]
    files: dict[str, Path]


def _load_split(data: str, split: str) -> Split:
    return load_dataset(resolve_dataset_path(data), splits=(split,))[split]


def _bleu(model, tokenizers, split: Split, encoded: EncodedSplit, options: DecodeOptions,
          max_tokens: int) -> dict[str, Any]:
    device = next(model.parameters()).device
    hyps = translate_encoded(model, encoded.src, options, max_tokens=max_tokens, device=device)
    return bleu_scores(hyps, split.refs, tokenizers)


def _parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _checkpoint_identity(path: str | Path) -> list:
    """What the score cache is keyed on: the checkpoint file (a run directory's best.pt, else its
    last.pt) with its size and modification time, so that scores of a model trained further are
    never reused."""
    path = checkpoint_file(path)
    stat = path.stat() if path.exists() else None
    return [str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None]


#: Bumped when the cached scores gain fields, so that older caches are recomputed, not misread.
SCORES_CACHE_VERSION = 2
#: Model config fields that are not the family: regularisation, and the NAT's own parts (its
#: decoder input and length predictor), which an AT has no counterpart of.
NOT_FAMILY_FIELDS: frozenset[str] = frozenset({"kind", "dropout", "attention_dropout", "nat_input",
                                               "soft_copy_tau", "max_length_offset"})


def family_differences(nat_config: dict[str, Any], at_config: dict[str, Any]) -> list[str]:
    """``field NAT-value != AT-value`` for each architecture field (layers, widths, heads,
    vocabularies, positions, …) in which the NAT and the AT differ: V-entropy needs one family."""
    names = sorted((set(nat_config) | set(at_config)) - NOT_FAMILY_FIELDS)
    return [f"{name} {nat_config.get(name)!r} (NAT) != {at_config.get(name)!r} (AT)"
            for name in names if nat_config.get(name) != at_config.get(name)]


def architecture_name(config: dict[str, Any]) -> str:
    """One model's architecture in a signature, e.g. ``d64-h4-ffn256-l2+2`` (encoder+decoder
    layers), with the position kind when not learned and a NAT's decoder input."""
    name = (f"d{config.get('d_model')}-h{config.get('n_heads')}-ffn{config.get('ffn_dim')}-"
            f"l{config.get('encoder_layers')}+{config.get('decoder_layers')}")
    if config.get("positions", "learned") != "learned":
        name += f"-{config.get('positions')}"
    if config.get("kind") == "nat":
        name += f"-{config.get('nat_input')}"
    return name


def family_signature(nat_config: dict[str, Any], at_config: dict[str, Any]) -> str:
    """The ``V:`` field: both models' architectures, ``nat-<arch>/at-<arch>``."""
    return f"nat-{architecture_name(nat_config)}/at-{architecture_name(at_config)}"


def tokenizer_signature(tokenizers: TokenizerPair) -> str:
    """The ``tok:`` field: the target tokenizer's kind and vocabulary size, e.g. ``spm8000``."""
    return f"{tokenizers.tgt.kind}{tokenizers.tgt.vocab_size}"


def _vocabulary(tokenizer) -> list[str]:
    return [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]


def tokenizer_differences(nat: TokenizerPair, at: TokenizerPair, nat_encoded: EncodedSplit,
                          at_encoded: EncodedSplit) -> list[str]:
    """How the two checkpoints' tokenizers differ (kind, vocabulary, or the ids of the evaluated
    split), empty when they are one tokenizer."""
    out = []
    for side in ("src", "tgt"):
        a, b = getattr(nat, side), getattr(at, side)
        if a.kind != b.kind or a.vocab_size != b.vocab_size:
            out.append(f"{side} tokenizer {a.kind}{a.vocab_size} (NAT) != {b.kind}{b.vocab_size} (AT)")
        elif _vocabulary(a) != _vocabulary(b):
            out.append(f"{side} vocabularies of {a.vocab_size} tokens differ")
    if not out:
        for side in ("src", "tgt"):
            differ = [i for i, (x, y) in enumerate(zip(getattr(nat_encoded, side), getattr(at_encoded, side)))
                      if x != y]
            if differ:
                out.append(f"the {side} side of sentence {differ[0]} is tokenized differently")
    return out


def premise_warnings(role: str, checkpoint: str, train_config: dict[str, Any]) -> list[str]:
    """What in a checkpoint's training breaks Ĉ's plain-MLE premise (``role``: ``NAT``/``AT``):
    label smoothing, a proxy target, a proxy input."""
    option = f"--{role.lower()} {checkpoint}"
    out = []
    smoothing = train_config.get("label_smoothing", 0.0) or 0.0
    if smoothing > 0:
        out.append(f"{option}: the {role} was trained with label smoothing (train config label_smoothing="
                   f"{smoothing:g}); Ĉ needs plain MLE (label smoothing raises the NLL and biases Ĉ): train "
                   f"with --label-smoothing 0")
    target = train_config.get("target", "raw")
    if target != "raw":
        out.append(f"{option}: the {role} was trained on a proxy target (train config target={target!r}), not "
                   f"the raw targets; Ĉ needs models trained by MLE on the raw data")
    inputs = train_config.get("input", "vanilla")
    if inputs != "vanilla":
        out.append(f"{option}: the {role} was trained with a proxy input (train config input={inputs!r}), not "
                   f"the vanilla input; Ĉ needs a NAT trained by MLE on the raw data with its vanilla input")
    return out


def split_warnings(split: str, data: str, models: dict[str, dict[str, Any]]) -> list[str]:
    """A warning when the evaluated ``split`` of ``data`` is one the models were trained or
    early-stopped on (their train configs' ``train_split``/``valid_split``)."""
    roles: dict[str, list[str]] = {}
    for role in ("nat", "at"):
        config = models.get(role, {}).get("train_config") or {}
        if config.get("data") is not None and not same_dataset(data, config["data"]):
            continue
        if split == config.get("valid_split", "valid"):
            roles.setdefault("early-stopping (validation)", []).append(role.upper())
        elif split == config.get("train_split", "train"):
            roles.setdefault("training", []).append(role.upper())
    return [f"--split {split} is the {what} split of the {' and the '.join(names)} (train config "
            f"{'valid_split' if what.startswith('early') else 'train_split'}={split!r}): the NLLs there are "
            f"not held-out, so Ĉ is biased; evaluate on a split the models never saw (e.g. --split test)"
            for what, names in roles.items()]


def score_checkpoints(nat_path: str | Path, at_path: str | Path, split: Split, *, length_terms: str,
                      device: str, max_tokens: int = 4096, bleu: bool = True, at_beam: int = 5,
                      cache: Path | None = None) -> dict[str, Any]:
    """Per-sentence NLLs (bits) of ``split.tgt`` under both checkpoints, token counts, the
    ``<unk>`` rate of the targets, the tokenizer's signature, both models' configs and (``bleu``)
    the BLEU of each model's outputs against all references as written.

    Raises:
        ValueError naming ``--nat``/``--at``: not a NAT and an AT, different families
        (:func:`family_differences`) or different tokenizers (the unit of "per token")."""
    check_length_terms(length_terms)
    key = [SCORES_CACHE_VERSION, _checkpoint_identity(nat_path), _checkpoint_identity(at_path), length_terms,
           bleu, at_beam, len(split)]
    if cache is not None and cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached
    nat, nat_tok, nat_payload = load_model(nat_path, device)
    at, at_tok, at_payload = load_model(at_path, device)
    nat_config, at_config = nat_payload["model_config"], at_payload["model_config"]
    if nat_config["kind"] != "nat" or at_config["kind"] != "at":
        raise ValueError(f"--nat must be a NAT checkpoint and --at an AT checkpoint, got "
                         f"{nat_config['kind']} and {at_config['kind']}")
    encoded = EncodedSplit.encode(split, at_tok)
    nat_encoded = EncodedSplit.encode(split, nat_tok)
    differences = tokenizer_differences(nat_tok, at_tok, nat_encoded, encoded)
    if differences:
        raise ValueError(f"--nat {nat_path} and --at {at_path} use different tokenizers: "
                         f"{'; '.join(differences)}; Ĉ needs one tokenizer on both sides")
    differences = family_differences(nat_config, at_config)
    if differences:
        raise ValueError(f"--nat {nat_path} and --at {at_path} are not of one model family: "
                         f"{'; '.join(differences)}; Ĉ compares a NAT and an AT of the same architecture")
    result: dict[str, Any] = {
        "key": key,
        "nll_nat_bits": score_encoded(nat, nat_encoded, length_terms, max_tokens).tolist(),
        "nll_at_bits": score_encoded(at, encoded, length_terms, max_tokens).tolist(),
        "n_tokens": [len(t) for t in encoded.tgt],
        "tokenizer": tokenizer_signature(at_tok),
        "target_unk": unk_rate(encoded.tgt, at_tok.tgt.unk_id).to_dict(),
        "models": {"nat": {"checkpoint": str(nat_path), "parameters": _parameters(nat),
                           "model_config": nat_config, "train_config": nat_payload.get("train_config")},
                   "at": {"checkpoint": str(at_path), "parameters": _parameters(at),
                          "model_config": at_config, "train_config": at_payload.get("train_config")}},
    }
    if bleu:
        result["bleu_nat"] = _bleu(nat, nat_tok, split, nat_encoded, DecodeOptions(), max_tokens)
        result["bleu_at"] = _bleu(at, at_tok, split, encoded, DecodeOptions(beam=at_beam), max_tokens)
    if cache is not None:
        atomic_write_text(cache, json.dumps(result) + "\n")
    return result


def _scored_warnings(scored: dict[str, Any], data: str, split: str) -> list[str]:
    """The premise, split and ``<unk>`` warnings of scored checkpoints (see the module docstring)."""
    warnings = []
    for role in ("nat", "at"):
        model = scored["models"][role]
        warnings += premise_warnings(role.upper(), model["checkpoint"], model.get("train_config") or {})
    warnings += split_warnings(split, data, scored["models"])
    unk = scored["target_unk"]
    message = unk_rate_warning(UnkRate(unk["unk_tokens"], unk["tokens"]), f"the {split} targets' tokens")
    return warnings + ([message] if message else [])


def _bleu_fields(scored: dict[str, Any], at_beam: int) -> dict[str, Any]:
    if "bleu_at" not in scored:
        return {"bleu_at": None, "bleu_nat": None, "delta_bleu": None}
    at, nat = scored["bleu_at"], scored["bleu_nat"]
    return {"bleu_at": at["bleu"], "bleu_nat": nat["bleu"], "delta_bleu": at["bleu"] - nat["bleu"],
            "bleu_signature": at["bleu_signature"], "bleu_ids_at": at["bleu_ids"],
            "bleu_ids_nat": nat["bleu_ids"], "bleu_ids_signature": at["bleu_ids_signature"],
            "decoding": {"at": f"beam {at_beam}", "nat": "argmax at the predicted length"}}


def not_converged_warning(note: str) -> str:
    return (f"the estimate has not converged: {note}; train longer (--max-epochs/--budget-steps) before "
            "trusting it")


def estimate_tc_by_training(settings: TCTrainingSettings, *, seeds: Sequence[int] = (1,), split: str = "test",
                            length_terms: str = "include", at_beam: int = 5, bleu: bool = True,
                            n_resamples: int = 1000, bootstrap_seed: int = 0) -> TCReport:
    """Train an MLE NAT and AT per seed on ``settings.data``, score ``split``, write the report in
    ``settings.out``.  With several seeds the headline estimate pools the seeds' per-sentence Ĉ
    (mean over seeds per sentence) and ``per_seed`` holds each seed's estimate and their spread."""
    check_length_terms(length_terms)
    if not seeds:
        raise ValueError("--seeds must name at least one seed")
    evaluation = _load_split(settings.data, split)
    out = Path(settings.out)
    runs: list[PairRun] = []
    estimates: list[TCEstimate] = []
    scored_runs: list[dict[str, Any]] = []
    schedule: Schedule | None = None
    for seed in seeds:
        run, schedule = train_pair(settings, seed, length_terms, schedule)
        scored = score_checkpoints(run.checkpoint("nat"), run.checkpoint("at"), evaluation,
                                   length_terms=length_terms, device=settings.device, bleu=bleu,
                                   at_beam=at_beam, cache=out / f"seed{seed}" / f"scores-{split}-{length_terms}.json")
        runs.append(run)
        scored_runs.append(scored)
        if len(seeds) > 1:  # one seed: its estimate is the pooled one below
            estimates.append(_estimate(scored, length_terms, len(seeds), n_resamples, bootstrap_seed))
    nat = np.mean([s["nll_nat_bits"] for s in scored_runs], axis=0)
    at = np.mean([s["nll_at_bits"] for s in scored_runs], axis=0)
    first = scored_runs[0]
    pooled = conditional_tc(nat, at, np.asarray(first["n_tokens"]), length_terms=length_terms,
                            n_resamples=n_resamples, seed=bootstrap_seed,
                            family=family_signature(first["models"]["nat"]["model_config"],
                                                    first["models"]["at"]["model_config"]),
                            tokenizer=first["tokenizer"], seeds=len(seeds))
    converged = all(r.converged for r in runs)
    note = "; ".join(f"seed {r.seed}: {r.convergence_note}" for r in runs)
    warnings = _scored_warnings(first, settings.data, split)
    if not converged:
        warnings.append(not_converged_warning(note))
    extra: dict[str, Any] = {
        "data": settings.data, "split": split,
        **_bleu_fields(first, at_beam),
        "target_unk": first["target_unk"],
        "models": first["models"],
        "training": {
            "schedule": schedule_dict(schedule) if schedule else None,
            "runs": [{"seed": r.seed, "nat": _run_fields(r.nat_dir, r.nat_summary),
                      "at": _run_fields(r.at_dir, r.at_summary),
                      "c_valid_bits_per_token": r.c_valid_bits_per_token,
                      "converged": r.converged, "convergence_note": r.convergence_note} for r in runs],
        },
        "converged": converged,
        "convergence_note": note,
        "warnings": warnings,
    }
    if len(seeds) > 1:
        extra["per_seed"] = [{"seed": s, **e.to_dict()} for s, e in zip(seeds, estimates)]
        extra["seed_spread"] = combine_seeds(estimates)
        extra["delta_bleu_per_seed"] = [_bleu_fields(s, at_beam)["delta_bleu"] for s in scored_runs]
    files = write_tc_report(out, pooled, sources=evaluation.src, references=evaluation.tgt, extra=extra)
    return TCReport(pooled, extra, files)


def _run_fields(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    return {"run": str(run_dir), "checkpoint": str(run_dir / "best.pt"), "steps": summary.get("steps"),
            "epochs_completed": summary.get("epochs_completed"), "best_step": summary.get("best_step"),
            "stopped_early": summary.get("stopped_early"),
            "best_valid_nll_bits_per_token": summary.get("best_nll_bits_per_token")}


def _estimate(scored: dict[str, Any], length_terms: str, seeds: int, n_resamples: int,
              bootstrap_seed: int) -> TCEstimate:
    """The estimate of one pair of scored checkpoints, signed with their family and tokenizer."""
    models = scored["models"]
    return conditional_tc(np.asarray(scored["nll_nat_bits"]), np.asarray(scored["nll_at_bits"]),
                          np.asarray(scored["n_tokens"]), length_terms=length_terms,
                          n_resamples=n_resamples, seed=bootstrap_seed,
                          family=family_signature(models["nat"]["model_config"], models["at"]["model_config"]),
                          tokenizer=scored["tokenizer"], seeds=seeds)


def estimate_tc_with_models(nat: str | Path, at: str | Path, data: str, out: str | Path, *, split: str = "test",
                            length_terms: str = "include", device: str = "cpu", at_beam: int = 5,
                            bleu: bool = True, n_resamples: int = 1000, bootstrap_seed: int = 0) -> TCReport:
    """Ĉ from two trained checkpoints (files or run directories) of this package on ``data``'s
    ``split``.  Whether they converged is the caller's knowledge: ``converged`` is None.  A family
    or tokenizer mismatch is refused (:func:`score_checkpoints`); what biases Ĉ is in ``warnings``."""
    evaluation = _load_split(data, split)
    scored = score_checkpoints(nat, at, evaluation, length_terms=length_terms, device=device,
                               bleu=bleu, at_beam=at_beam)
    estimate = _estimate(scored, length_terms, 1, n_resamples, bootstrap_seed)
    extra = {"data": data, "split": split, **_bleu_fields(scored, at_beam), "target_unk": scored["target_unk"],
             "models": scored["models"], "converged": None,
             "convergence_note": "models given: training not observed",
             "warnings": _scored_warnings(scored, data, split)}
    files = write_tc_report(Path(out), estimate, sources=evaluation.src, references=evaluation.tgt, extra=extra)
    return TCReport(estimate, extra, files)


def estimate_tc_from_scores(nat_nll_bits: np.ndarray, at_nll_bits: np.ndarray, n_tokens: np.ndarray,
                            out: str | Path, *, sources: Sequence[str] | None = None,
                            references: Sequence[str] | None = None, length_terms: str = "include",
                            n_resamples: int = 1000, bootstrap_seed: int = 0,
                            extra: dict[str, Any] | None = None) -> TCReport:
    """Ĉ from per-sentence NLLs (bits) computed elsewhere; ``n_tokens`` per sentence is the unit of
    "per token" (the same tokenization on both sides)."""
    estimate = conditional_tc(nat_nll_bits, at_nll_bits, n_tokens, length_terms=length_terms,
                              n_resamples=n_resamples, seed=bootstrap_seed, family="external",
                              tokenizer="external", seeds=1)
    extra = {"bleu_at": None, "bleu_nat": None, "delta_bleu": None, "converged": None,
             "convergence_note": "scores given: training not observed", "warnings": [], **(extra or {})}
    files = write_tc_report(Path(out), estimate, sources=sources, references=references, extra=extra)
    return TCReport(estimate, extra, files)


def estimate_tc_with_scorers(nat: SentenceScorer, at: SentenceScorer, sources: Sequence[str],
                             targets: Sequence[str], out: str | Path, *, n_resamples: int = 1000,
                             bootstrap_seed: int = 0, family: str | None = None,
                             tokenizer: str | None = None) -> TCReport:
    """Ĉ from any two models that implement :class:`SentenceScorer` (a NAT-like and an AT-like
    scorer of one family), on ``targets`` given ``sources``.  Both must use one length convention
    and count tokens the same way."""
    for name, scorer in (("nat", nat), ("at", at)):
        if not isinstance(scorer, SentenceScorer):
            raise TypeError(f"{name} must implement SentenceScorer (sentence_nll_bits, token_counts, "
                            f"length_terms), got {type(scorer).__name__}")
    if nat.length_terms != at.length_terms:
        raise ValueError(f"the scorers use different length conventions: nat {nat.length_terms!r}, "
                         f"at {at.length_terms!r}")
    tokens = np.asarray(at.token_counts(targets))
    if not np.array_equal(tokens, np.asarray(nat.token_counts(targets))):
        raise ValueError("the scorers count target tokens differently; Ĉ per token needs one tokenization")
    estimate = conditional_tc(np.asarray(nat.sentence_nll_bits(sources, targets), dtype=np.float64),
                              np.asarray(at.sentence_nll_bits(sources, targets), dtype=np.float64),
                              tokens, length_terms=nat.length_terms, n_resamples=n_resamples,
                              seed=bootstrap_seed, family=family, tokenizer=tokenizer, seeds=1)
    extra = {"bleu_at": None, "bleu_nat": None, "delta_bleu": None, "converged": None,
             "convergence_note": "scorers given: training not observed", "warnings": []}
    files = write_tc_report(Path(out), estimate, sources=sources, references=targets, extra=extra)
    return TCReport(estimate, extra, files)
