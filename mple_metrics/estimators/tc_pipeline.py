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
from ..data import EncodedSplit, Split, load_dataset, resolve_dataset_path
from ..decode import DecodeOptions, translate_encoded
from ..models.checkpoint import checkpoint_file, load_model
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


def score_checkpoints(nat_path: str | Path, at_path: str | Path, split: Split, *, length_terms: str,
                      device: str, max_tokens: int = 4096, bleu: bool = True, at_beam: int = 5,
                      cache: Path | None = None) -> dict[str, Any]:
    """Per-sentence NLLs (bits) of ``split.tgt`` under both checkpoints, token counts, and (``bleu``)
    the BLEU of each model's outputs against all references as written.  The two checkpoints must
    share their target tokenizer (the unit of "per token")."""
    check_length_terms(length_terms)
    key = [_checkpoint_identity(nat_path), _checkpoint_identity(at_path), length_terms, bleu, at_beam,
           len(split)]
    if cache is not None and cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached
    nat, nat_tok, nat_payload = load_model(nat_path, device)
    at, at_tok, at_payload = load_model(at_path, device)
    if nat_payload["model_config"]["kind"] != "nat" or at_payload["model_config"]["kind"] != "at":
        raise ValueError(f"--nat must be a NAT checkpoint and --at an AT checkpoint, got "
                         f"{nat_payload['model_config']['kind']} and {at_payload['model_config']['kind']}")
    if nat_tok.tgt.vocab_size != at_tok.tgt.vocab_size or \
            nat_tok.tgt.encode_batch(split.tgt[:50]) != at_tok.tgt.encode_batch(split.tgt[:50]):
        raise ValueError("the NAT and AT checkpoints use different target tokenizers; Ĉ needs one "
                         "tokenizer (and one model family) on both sides")
    encoded = EncodedSplit.encode(split, at_tok)
    nat_encoded = EncodedSplit.encode(split, nat_tok)
    result: dict[str, Any] = {
        "key": key,
        "nll_nat_bits": score_encoded(nat, nat_encoded, length_terms, max_tokens).tolist(),
        "nll_at_bits": score_encoded(at, encoded, length_terms, max_tokens).tolist(),
        "n_tokens": [len(t) for t in encoded.tgt],
        "models": {"nat": {"checkpoint": str(nat_path), "parameters": _parameters(nat),
                           "model_config": nat_payload["model_config"]},
                   "at": {"checkpoint": str(at_path), "parameters": _parameters(at),
                          "model_config": at_payload["model_config"]}},
    }
    if bleu:
        result["bleu_nat"] = _bleu(nat, nat_tok, split, nat_encoded, DecodeOptions(), max_tokens)
        result["bleu_at"] = _bleu(at, at_tok, split, encoded, DecodeOptions(beam=at_beam), max_tokens)
    if cache is not None:
        atomic_write_text(cache, json.dumps(result) + "\n")
    return result


def _bleu_fields(scored: dict[str, Any], at_beam: int) -> dict[str, Any]:
    if "bleu_at" not in scored:
        return {"bleu_at": None, "bleu_nat": None, "delta_bleu": None}
    at, nat = scored["bleu_at"], scored["bleu_nat"]
    return {"bleu_at": at["bleu"], "bleu_nat": nat["bleu"], "delta_bleu": at["bleu"] - nat["bleu"],
            "bleu_signature": at["bleu_signature"], "bleu_ids_at": at["bleu_ids"],
            "bleu_ids_nat": nat["bleu_ids"], "bleu_ids_signature": at["bleu_ids_signature"],
            "decoding": {"at": f"beam {at_beam}", "nat": "argmax at the predicted length"}}


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
            estimates.append(_estimate(scored, length_terms, settings, len(seeds), n_resamples,
                                       bootstrap_seed))
    nat = np.mean([s["nll_nat_bits"] for s in scored_runs], axis=0)
    at = np.mean([s["nll_at_bits"] for s in scored_runs], axis=0)
    pooled = conditional_tc(nat, at, np.asarray(scored_runs[0]["n_tokens"]), length_terms=length_terms,
                            n_resamples=n_resamples, seed=bootstrap_seed,
                            family=f"transformer-{settings.size}", tokenizer=settings.tokenizer_kind,
                            seeds=len(seeds))
    converged = all(r.converged for r in runs)
    extra: dict[str, Any] = {
        "data": settings.data, "split": split,
        **_bleu_fields(scored_runs[0], at_beam),
        "models": scored_runs[0]["models"],
        "training": {
            "schedule": schedule_dict(schedule) if schedule else None,
            "runs": [{"seed": r.seed, "nat": _run_fields(r.nat_dir, r.nat_summary),
                      "at": _run_fields(r.at_dir, r.at_summary),
                      "c_valid_bits_per_token": r.c_valid_bits_per_token,
                      "converged": r.converged, "convergence_note": r.convergence_note} for r in runs],
        },
        "converged": converged,
        "convergence_note": "; ".join(f"seed {r.seed}: {r.convergence_note}" for r in runs),
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


def _estimate(scored: dict[str, Any], length_terms: str, settings: TCTrainingSettings | None, seeds: int,
              n_resamples: int, bootstrap_seed: int, family: str | None = None,
              tokenizer: str | None = None) -> TCEstimate:
    if settings is not None:
        family, tokenizer = f"transformer-{settings.size}", settings.tokenizer_kind
    return conditional_tc(np.asarray(scored["nll_nat_bits"]), np.asarray(scored["nll_at_bits"]),
                          np.asarray(scored["n_tokens"]), length_terms=length_terms,
                          n_resamples=n_resamples, seed=bootstrap_seed, family=family,
                          tokenizer=tokenizer, seeds=seeds)


def estimate_tc_with_models(nat: str | Path, at: str | Path, data: str, out: str | Path, *, split: str = "test",
                            length_terms: str = "include", device: str = "cpu", at_beam: int = 5,
                            bleu: bool = True, n_resamples: int = 1000, bootstrap_seed: int = 0) -> TCReport:
    """Ĉ from two trained checkpoints (files or run directories) of this package on ``data``'s
    ``split``.  Whether they converged is the caller's knowledge: ``converged`` is None."""
    evaluation = _load_split(data, split)
    scored = score_checkpoints(nat, at, evaluation, length_terms=length_terms, device=device,
                               bleu=bleu, at_beam=at_beam)
    config = scored["models"]["at"]["model_config"]
    family = f"transformer-d{config.get('d_model')}-l{config.get('encoder_layers', '?')}"
    estimate = _estimate(scored, length_terms, None, 1, n_resamples, bootstrap_seed, family=family,
                         tokenizer="checkpoint")
    extra = {"data": data, "split": split, **_bleu_fields(scored, at_beam), "models": scored["models"],
             "converged": None, "convergence_note": "models given: training not observed"}
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
             "convergence_note": "scores given: training not observed", **(extra or {})}
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
             "convergence_note": "scorers given: training not observed"}
    files = write_tc_report(Path(out), estimate, sources=sources, references=targets, extra=extra)
    return TCReport(estimate, extra, files)
