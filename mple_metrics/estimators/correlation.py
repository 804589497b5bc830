"""Correlating L_MPLE with BLEU over trained models (Tables 2, 3, 7 and 8; Sec. 4.2-4.3).

Each trained model (one proxy target T and proxy input Z, a "method") has a result file holding its
L_NAT, L_input, L_target = -beta * mean sentence BLEU and L_MPLE = L_NAT + L_input + L_target (Eq. 8,
14), with its corpus BLEU under default decoding and, where an input predictor exists, under Input
Sampling.  The paper reports Pearson's r between L_MPLE and BLEU over the methods of one table.

Units, as the paper mixes them: L_NAT and L_input are per-token NLLs (bits/token here), L_target is
BLEU points (0-100) times beta.  L_MPLE adds the two scales, so it is a score that ranks methods, not
an information quantity; beta sets the exchange rate (the paper: beta = 0.2 for WMT14 En-De, 0.25
for WMT17 Zh-En, and |r| >= 0.8 for every beta in [0.1, 0.5] on Table 2).

Main entry points::

    results = read_results(["raw.json", "kd.json", "axe5.json"])
    report = correlate(results, bleu="default", betas=parse_beta_grid("0.1:0.5:0.05"), seed=0)
    print(format_correlation_table(report))

Determinism: the bootstrap over methods draws from ``numpy.random.Generator(PCG64(seed))``; the same
files, settings and seed give the same interval on every run and machine.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.stats

from ..data import dataset_location
from .bootstrap import _check_settings, interval_warning
from .total_correlation import json_ready

#: Keys every result file must hold (written by ``mple estimate mple``).
RESULT_KEYS: tuple[str, ...] = (
    "method", "target", "input", "l_nat_bits_per_token", "l_input_bits_per_token", "l_target",
    "l_target_mean_bleu", "beta", "l_mple", "bleu_default", "bleu_sample")
#: Which BLEU to correlate with: default decoding or Input Sampling (``bleu_default``/``bleu_sample``).
BLEU_KINDS: tuple[str, ...] = ("default", "sample")
#: The fewest methods a correlation is computed over.
MIN_METHODS = 3
#: Largest |L_MPLE - (L_NAT + L_input + L_target)| (and |L_target + beta * mean BLEU|) read without a
#: warning: the rounding of three values printed with two decimals, as in the paper's tables.
SUM_TOLERANCE = 0.015
#: The most beta values a sweep grid may hold.
MAX_SWEEP_POINTS = 10_000
#: The BLEU fields of a result file, each on the 0-100 scale.
BLEU_FIELDS: tuple[str, ...] = ("l_target_mean_bleu", "bleu_default", "bleu_sample")
#: How far (BLEU points) a BLEU field may lie outside [0, 100] and still be read, clamped: float
#: round-off of a mean of sentence BLEU (100.00000000000004 for targets equal to every reference).
BLEU_ROUND_OFF = 1e-9
#: What a result file records of the data it was measured on, as ``(name, key in the file, key in
#: the settings, key in the signature)``: files that differ in one of these measured different
#: sentences, references or BLEU, so their rows do not belong in one table.  ``data`` (the dataset
#: directory) is compared as a resolved path.
PROVENANCE_FIELDS: tuple[tuple[str, str | None, str | None, str | None], ...] = (
    ("data", "data", None, None),
    ("split", "split", "split", "split"),
    ("n_sentences", "n_sentences", None, "n"),
    ("n_sentences_l_target", "n_sentences_l_target", None, None),
    ("target_refs", None, "target_refs", "refs"),
    ("bleu_tokenize", None, "bleu_tokenize", "tok"),
    ("count", None, "count", "count"),
    ("bleu_signature", "bleu_signature", None, None),
)
UNITS_NOTE = ("L_NAT and L_input in bits/token; L_target = -beta x mean sentence BLEU (0-100), in BLEU "
              "points x beta; L_MPLE = L_NAT + L_input + L_target adds a per-token NLL to beta x BLEU, "
              "as the paper does (Eq. 8, 14): a score that ranks methods, not an information quantity")


@dataclass(frozen=True)
class MethodResult:
    """One trained model's terms, as read from its result file.

    ``l_nat``, ``l_input``: bits/token; ``l_target`` = -``beta`` x ``mean_bleu`` (BLEU points x beta);
    ``l_mple`` = l_nat + l_input + l_target; ``mean_bleu``, ``bleu_default``, ``bleu_sample``: BLEU on
    the 0-100 scale (``bleu_*`` may be ``None``: not decoded).  ``ci95`` maps a term's key in the
    file (e.g. ``"l_nat_bits_per_token"``, ``"l_mple"``) to its 95% interval ``(low, high)``.
    ``provenance``: what the file records of the data it was measured on (the names of
    :data:`PROVENANCE_FIELDS`, and ``split_size`` where written), see :func:`provenance_of`.
    """

    path: str
    method: str
    target: str
    input: str
    l_nat: float
    l_input: float
    l_target: float
    mean_bleu: float
    beta: float
    l_mple: float
    bleu_default: float | None
    bleu_sample: float | None
    ci95: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    signature: str | None = None
    provenance: Mapping[str, object] = field(default_factory=dict)

    def bleu(self, kind: str) -> float | None:
        """``bleu_default`` or ``bleu_sample`` for ``kind`` in :data:`BLEU_KINDS`."""
        _check_bleu_kind(kind)
        return self.bleu_default if kind == "default" else self.bleu_sample

    def to_dict(self) -> dict[str, object]:
        """The row under the result file's own key names."""
        return json_ready({
            "path": self.path, "method": self.method, "target": self.target, "input": self.input,
            "l_nat_bits_per_token": self.l_nat, "l_input_bits_per_token": self.l_input,
            "l_target": self.l_target, "l_target_mean_bleu": self.mean_bleu, "beta": self.beta,
            "l_mple": self.l_mple, "bleu_default": self.bleu_default, "bleu_sample": self.bleu_sample,
            "ci95": {key: list(value) for key, value in self.ci95.items()}, "signature": self.signature,
            "provenance": dict(self.provenance),
        })


def _check_bleu_kind(kind: object) -> None:
    if kind not in BLEU_KINDS:
        raise ValueError(f"bleu must be one of {BLEU_KINDS}, got {kind!r}")


def _number(document: Mapping[str, object], key: str, where: str, *, nullable: bool = False) -> float | None:
    value = document[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "a number or null" if nullable else "a number"
        raise ValueError(f"{where}: key {key!r} must be {kind}, got {json.dumps(value)[:40]}")
    value = float(value) + 0.0  # + 0.0: a -0.0 in the file reads as 0.0 (never printed as "-0.00")
    if not math.isfinite(value):
        raise ValueError(f"{where}: key {key!r} must be finite, got {value}")
    return value


def _bleu_number(document: Mapping[str, object], key: str, where: str, *, nullable: bool = False) -> float | None:
    """A BLEU field: a number in [0, 100], clamped there within :data:`BLEU_ROUND_OFF`."""
    value = _number(document, key, where, nullable=nullable)
    if value is None:
        return None
    if not -BLEU_ROUND_OFF <= value <= 100.0 + BLEU_ROUND_OFF:
        raise ValueError(f"{where}: key {key!r} must be a BLEU score in [0, 100], got {value}")
    return min(max(value, 0.0), 100.0)


def _signature_fields(signature: object) -> dict[str, str]:
    """``{"split": "valid", "n": "1200", ...}`` of ``MPLE|T:...|split:valid|n:1200|...``."""
    if not isinstance(signature, str):
        return {}
    fields = {}
    for part in signature.split("|")[1:]:
        key, colon, value = part.partition(":")
        if colon:
            fields[key] = value
    return fields


def provenance_of(document: Mapping[str, object]) -> dict[str, object]:
    """What a result file of ``mple estimate mple`` records of the data it was measured on: each
    field of :data:`PROVENANCE_FIELDS` found in the file (its own key first, then its ``settings``,
    then its signature), as text, plus ``split_size`` (``n_sentences`` + ``dropped_long_or_empty``)
    where written.  Files made by hand may hold none of them."""
    settings = document.get("settings") if isinstance(document.get("settings"), Mapping) else {}
    signed = _signature_fields(document.get("signature"))
    out: dict[str, object] = {}
    for name, key, setting, signature_key in PROVENANCE_FIELDS:
        for source, source_key in ((document, key), (settings, setting), (signed, signature_key)):
            value = source.get(source_key) if source_key is not None else None
            if value is not None and not isinstance(value, (Mapping, list)):
                out[name] = str(value)  # one form, whichever place it came from ("8" = 8)
                break
    if "bleu_signature" in out:  # the package version does not change what was measured
        out["bleu_signature"] = "|".join(part for part in out["bleu_signature"].split("|")
                                         if not part.startswith("version:"))
    n, dropped = document.get("n_sentences"), document.get("dropped_long_or_empty")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (n, dropped)):
        out["split_size"] = n + dropped
    return out


def _read_ci95(value: object, where: str) -> dict[str, tuple[float, float]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: key 'ci95' must be an object {{term: [low, high]}}")
    out: dict[str, tuple[float, float]] = {}
    for term, pair in value.items():
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)
                       for v in pair)):
            raise ValueError(f"{where}: ci95[{term!r}] must be [low, high] (two finite numbers), got "
                             f"{json.dumps(pair)[:40]}")
        low, high = float(pair[0]), float(pair[1])
        if low > high:
            raise ValueError(f"{where}: ci95[{term!r}] has low {low} > high {high}")
        out[str(term)] = (low, high)
    return out


def result_from_dict(document: object, where: str = "result") -> MethodResult:
    """A :class:`MethodResult` from one decoded result file; ``where`` names it in errors.

    Raises ValueError naming ``where`` and the key: not an object, a screening report (one
    checkpoint under several proxies, one BLEU for all), a missing key, a value of the wrong type,
    a non-finite number, beta < 0, or a BLEU field (:data:`BLEU_FIELDS`) outside [0, 100] (beyond
    :data:`BLEU_ROUND_OFF`; within it the value is clamped).
    """
    if not isinstance(document, Mapping):
        raise ValueError(f"{where}: expected a JSON object (one method's result), got "
                         f"{type(document).__name__}")
    if document.get("screening") or ("results" in document and "method" not in document):
        raise ValueError(f"{where} is a screening report (one checkpoint scored under several proxy "
                         f"targets, with one BLEU for all): correlate trained models, one result file each")
    missing = [key for key in RESULT_KEYS if key not in document]
    if missing:
        keys = ", ".join(repr(key) for key in missing)
        raise ValueError(f"{where}: missing key{'s' if len(missing) > 1 else ''} {keys} (a result "
                         f"file of 'mple estimate mple' is expected)")
    for key in ("method", "target", "input"):
        if not isinstance(document[key], str) or not document[key]:
            raise ValueError(f"{where}: key {key!r} must be a non-empty string, got "
                             f"{json.dumps(document[key])[:40]}")
    signature = document.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise ValueError(f"{where}: key 'signature' must be a string or null")
    beta = _number(document, "beta", where)
    if beta < 0:
        raise ValueError(f"{where}: key 'beta' must be >= 0, got {beta}")
    mean_bleu = _bleu_number(document, "l_target_mean_bleu", where)
    return MethodResult(
        path=where, method=document["method"], target=document["target"], input=document["input"],
        l_nat=_number(document, "l_nat_bits_per_token", where),
        l_input=_number(document, "l_input_bits_per_token", where),
        l_target=_number(document, "l_target", where), mean_bleu=mean_bleu, beta=beta,
        l_mple=_number(document, "l_mple", where),
        bleu_default=_bleu_number(document, "bleu_default", where, nullable=True),
        bleu_sample=_bleu_number(document, "bleu_sample", where, nullable=True),
        ci95=_read_ci95(document.get("ci95"), where), signature=signature, provenance=provenance_of(document))


def read_results(paths: Sequence[str | os.PathLike]) -> list[MethodResult]:
    """Read one result JSON file per method (see :data:`RESULT_KEYS`), in the order given.

    Raises ValueError naming the file (invalid JSON, missing or malformed keys, see
    :func:`result_from_dict`; the same file given twice) or OSError (unreadable).
    """
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError("paths must be a sequence of paths, not one path")
    if not paths:
        raise ValueError("no result files given")
    names = [os.fspath(path) for path in paths]
    seen: dict[str, str] = {}
    for name in names:  # before reading any: a duplicate is a usage error, whatever the contents
        real = os.path.realpath(name)
        if real in seen and not name.startswith("/dev/"):
            raise ValueError(f"{name} is given twice (as {seen[real]} too): each method counts once")
        seen[real] = name
    results = []
    for name in names:
        text = Path(name).read_text(encoding="utf-8")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name}: not valid JSON ({error.msg} at line {error.lineno} column "
                             f"{error.colno})") from None
        results.append(result_from_dict(document, name))
    return results


def _files(paths: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def mixed_provenance(results: Sequence[MethodResult]) -> list[str]:
    """Each field of :data:`PROVENANCE_FIELDS` on which ``results`` differ, as
    ``"split 'valid' (a.json, b.json) vs 'test' (c.json)"``; empty when they agree.  A field is
    compared among the files that record it (hand-made files may record none)."""
    out = []
    for name, *_ in PROVENANCE_FIELDS:
        groups: dict[str, list[str]] = {}
        for r in results:
            if name in r.provenance:
                value = str(r.provenance[name])
                groups.setdefault(dataset_location(value) if name == "data" else value, []).append(r.path)
        if len(groups) > 1:
            out.append(f"{name} " + " vs ".join(f"{value!r} ({_files(paths)})" for value, paths in groups.items()))
    return out


def consistency_warnings(results: Sequence[MethodResult], tolerance: float = SUM_TOLERANCE, *,
                         recomputing: bool = False) -> list[str]:
    """What is worth a warning in ``results`` (an empty list when nothing is): an L_MPLE that is not
    the sum of its terms, an L_target that is not -beta x mean BLEU (both beyond ``tolerance``), and
    files made with different beta (their L_MPLE are on different scales).  ``recomputing``: L_MPLE
    is about to be recomputed at one beta, so only the L_target check applies."""
    out = []
    for r in results:
        total = r.l_nat + r.l_input + r.l_target
        if not recomputing and abs(r.l_mple - total) > tolerance:
            out.append(f"{r.path}: l_mple {r.l_mple:.4f} differs from l_nat + l_input + l_target = "
                       f"{total:.4f}; the file's l_mple is used")
        if abs(r.l_target + r.beta * r.mean_bleu) > tolerance:
            used = ("L_target is recomputed from l_target_mean_bleu" if recomputing
                    else "the file's l_target is used")
            out.append(f"{r.path}: l_target {r.l_target:.4f} differs from -beta x l_target_mean_bleu = "
                       f"{-r.beta * r.mean_bleu:.4f}; {used}")
    betas = sorted({r.beta for r in results})
    if len(betas) > 1 and not recomputing:
        examples = ", ".join(f"{b:g} ({next(r.path for r in results if r.beta == b)})" for b in betas[:4])
        out.append(f"the files use different beta: {examples}; pass --beta B to put every L_MPLE on one scale")
    return out


def recompute_with_beta(results: Sequence[MethodResult], beta: float) -> list[MethodResult]:
    """``results`` with L_target = -``beta`` x mean BLEU and L_MPLE = L_NAT + L_input + L_target.

    The interval of L_target scales with beta (it is -beta times an interval of the mean BLEU) and
    is kept when the file's beta is > 0; that of L_MPLE is a joint resample and is dropped.
    """
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    beta = float(beta)
    out = []
    for r in results:
        l_target = 0.0 - beta * r.mean_bleu  # 0.0 - : +0.0, not -0.0, for a mean BLEU of 0
        ci95 = {key: value for key, value in r.ci95.items() if key not in ("l_target", "l_mple")}
        if "l_target" in r.ci95 and r.beta > 0:
            low, high = r.ci95["l_target"]
            scale = beta / r.beta
            ci95["l_target"] = (low * scale + 0.0, high * scale + 0.0)
        out.append(replace(r, beta=beta, l_target=l_target, l_mple=r.l_nat + r.l_input + l_target,
                           ci95=ci95))
    return out


def _as_vector(value: object, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per method), got shape {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite; index {int(np.flatnonzero(~np.isfinite(array))[0])} is not")
    return array


def _pair(x: object, y: object, minimum: int, names: tuple[str, str] = ("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = _as_vector(x, names[0]), _as_vector(y, names[1])
    if xs.shape != ys.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have one value per method each, got {xs.size} "
                         f"and {ys.size}")
    if xs.size < minimum:
        raise ValueError(f"a correlation needs at least {minimum} methods, got {xs.size}")
    for name, values in zip(names, (xs, ys)):
        if np.ptp(values) == 0:
            raise ValueError(f"{name} is constant ({values[0]:g} for every method): Pearson's r is undefined")
    return xs, ys


def pearson_r(x: object, y: object) -> float:
    """Pearson's r of (n,) ``x`` and ``y`` (n >= 2, neither constant), by ``scipy.stats.pearsonr``."""
    xs, ys = _pair(x, y, 2)
    return float(scipy.stats.pearsonr(xs, ys).statistic)


@dataclass(frozen=True)
class PearsonInterval:
    """A percentile bootstrap interval of Pearson's r over methods (resampled with replacement).

    ``n_skipped`` resamples drew constant x or y (r undefined) and were left out; the interval is
    the ``(1 -/+ confidence) / 2`` quantiles of the other ``n_used`` resampled r.
    ``standard_error``: their standard deviation (ddof = 1; 0 with one).
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    n_used: int
    n_skipped: int
    seed: int
    standard_error: float
    method: str = "percentile"
    unit: str = "methods (resampled with replacement)"

    def to_dict(self) -> dict[str, object]:
        return json_ready(asdict(self))


def bootstrap_pearson_interval(x: object, y: object, *, n_resamples: int = 1000, confidence: float = 0.95,
                               seed: int = 0) -> PearsonInterval:
    """Bootstrap interval of Pearson's r between (n,) ``x`` and ``y`` (n >= :data:`MIN_METHODS`).

    One resample draws n method indices with replacement (the same for x and y); resamples with
    zero variance in x or y are skipped and counted.  Deterministic for given inputs, settings and
    ``seed`` (``Generator(PCG64(seed))``).  Raises ValueError when every resample is degenerate.
    """
    _check_settings(n_resamples, confidence, seed, "percentile")
    xs, ys = _pair(x, y, MIN_METHODS)
    estimate = float(scipy.stats.pearsonr(xs, ys).statistic)
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    idx = rng.integers(0, xs.size, size=(int(n_resamples), xs.size))
    rx, ry = xs[idx], ys[idx]
    usable = (np.ptp(rx, axis=1) > 0) & (np.ptp(ry, axis=1) > 0)
    n_used = int(usable.sum())
    if n_used == 0:
        raise ValueError(f"all {n_resamples} bootstrap resamples drew constant values; use more resamples")
    stats = np.clip(scipy.stats.pearsonr(rx[usable], ry[usable], axis=1).statistic, -1.0, 1.0)
    alpha = 1.0 - float(confidence)
    low, high = (float(q) for q in np.quantile(stats, [alpha / 2, 1.0 - alpha / 2]))
    std = float(stats.std(ddof=1)) if stats.size > 1 else 0.0
    return PearsonInterval(estimate=estimate, low=low, high=high, confidence=float(confidence),
                           n_resamples=int(n_resamples), n_used=n_used, n_skipped=int(n_resamples) - n_used,
                           seed=int(seed), standard_error=std if math.isfinite(std) else 0.0)


def parse_beta_grid(text: str) -> tuple[float, ...]:
    """The grid ``A:B:STEP`` = A, A + STEP, ..., up to B inclusive (within 1e-9 of a step), each
    value rounded to 12 decimals.  Needs 0 < A <= B, STEP > 0, at most :data:`MAX_SWEEP_POINTS`
    values; raises ValueError otherwise."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"expected A:B:STEP (e.g. 0.1:0.5:0.05), got {text!r}")
    try:
        start, stop, step = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"expected three numbers A:B:STEP (e.g. 0.1:0.5:0.05), got {text!r}") from None
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise ValueError(f"A, B and STEP must be finite, got {text!r}")
    if start <= 0:
        raise ValueError(f"beta must be > 0 (L_target = -beta x BLEU; a beta <= 0 does not reward BLEU): A is "
                         f"{start:g} in {text!r}")
    if stop < start:
        raise ValueError(f"B must be >= A, got {text!r}")
    if step <= 0:
        raise ValueError(f"STEP must be > 0, got {text!r}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_SWEEP_POINTS:
        raise ValueError(f"{text!r} has {count} values; at most {MAX_SWEEP_POINTS}")
    return tuple(round(start + k * step, 12) for k in range(count))


def bleu_values(results: Sequence[MethodResult], bleu: str = "default") -> np.ndarray:
    """(n,) BLEU of each method for ``bleu`` in :data:`BLEU_KINDS`; ValueError naming the files
    where it is null."""
    _check_bleu_kind(bleu)
    missing = [r.path for r in results if r.bleu(bleu) is None]
    if missing:
        hint = (" (no Input Sampling BLEU: score those models with --input-predictor, or use --bleu default)"
                if bleu == "sample" else " (decoded with --no-bleu?)")
        raise ValueError(f"bleu_{bleu} is null in {', '.join(missing)}{hint}")
    return np.array([r.bleu(bleu) for r in results], dtype=np.float64)


@dataclass(frozen=True)
class BetaSweep:
    """Pearson's r between L_MPLE (recomputed at each beta) and BLEU over a grid of beta."""

    betas: tuple[float, ...]
    r: tuple[float, ...]
    best_beta: float
    best_r: float
    min_abs_r: float
    min_abs_r_beta: float

    def to_dict(self) -> dict[str, object]:
        return json_ready({"betas": list(self.betas), "r": list(self.r), "best_beta": self.best_beta,
                           "best_r": self.best_r, "best": "max |r| (first of ties)",
                           "min_abs_r": self.min_abs_r, "min_abs_r_beta": self.min_abs_r_beta})


def beta_sweep(results: Sequence[MethodResult], betas: Sequence[float], *, bleu: str = "default") -> BetaSweep:
    """r(L_MPLE, BLEU) for every beta in ``betas`` (L_target and L_MPLE recomputed with
    :func:`recompute_with_beta`); the beta maximising |r| (the first of ties) and the smallest |r|."""
    if len(betas) == 0:
        raise ValueError("betas is empty")
    y = bleu_values(results, bleu)
    values = []
    for beta in betas:
        rows = recompute_with_beta(results, beta)
        x = [row.l_mple for row in rows]
        try:
            _pair(x, y, 2, names=("L_MPLE", f"BLEU ({bleu})"))
        except ValueError as error:
            raise ValueError(f"beta {beta:g}: {error}") from None
        values.append(pearson_r(x, y))
    magnitudes = np.abs(values)
    best, worst = int(np.argmax(magnitudes)), int(np.argmin(magnitudes))
    return BetaSweep(betas=tuple(float(b) for b in betas), r=tuple(values), best_beta=float(betas[best]),
                     best_r=values[best], min_abs_r=float(magnitudes[worst]), min_abs_r_beta=float(betas[worst]))


@dataclass(frozen=True)
class CorrelationReport:
    """The table rows and r(L_MPLE, BLEU) over them (see :func:`correlate`).

    ``r_by_bleu``: r with each BLEU kind that every file has (``None`` where a file lacks it).
    """

    rows: tuple[MethodResult, ...]
    bleu: str
    beta: float | None
    r: float
    interval: PearsonInterval
    sweep: BetaSweep | None
    r_by_bleu: Mapping[str, float | None]
    warnings: tuple[str, ...] = ()

    @property
    def interval_note(self) -> str | None:
        """What the interval of r is worth over so few methods (the paper's tables have 4-8, so this
        is a note beside the interval rather than a warning), or None."""
        return interval_warning(len(self.rows), "methods")

    def to_dict(self) -> dict[str, object]:
        return json_ready({
            "rows": [row.to_dict() for row in self.rows], "n_methods": len(self.rows),
            "bleu": self.bleu, "beta": self.beta,
            "beta_note": ("L_target and L_MPLE recomputed with this beta" if self.beta is not None
                          else "each file's own beta, L_target and L_MPLE"),
            "pearson_r": self.r, "interval": self.interval.to_dict(), "interval_note": self.interval_note,
            "r_by_bleu": dict(self.r_by_bleu), "beta_sweep": None if self.sweep is None else self.sweep.to_dict(),
            "units": {"l_nat": "bits/token", "l_input": "bits/token",
                      "l_target": "-beta x mean sentence BLEU (BLEU points x beta)",
                      "l_mple": "bits/token + BLEU points x beta (as the paper mixes them)",
                      "bleu": "corpus BLEU (0-100)"},
            "units_note": UNITS_NOTE, "warnings": list(self.warnings),
        })


def correlate(results: Sequence[MethodResult], *, bleu: str = "default", beta: float | None = None,
              betas: Sequence[float] | None = None, n_resamples: int = 1000, confidence: float = 0.95,
              seed: int = 0, allow_mixed: bool = False) -> CorrelationReport:
    """Pearson's r between L_MPLE and BLEU over ``results`` (>= :data:`MIN_METHODS` methods) with a
    bootstrap interval over methods, optionally with every L_target and L_MPLE recomputed at
    ``beta`` and a sweep over ``betas``.  Raises ValueError for too few methods, files measured
    on different data (:func:`mixed_provenance`; a warning instead with ``allow_mixed``), a null
    BLEU of the chosen kind (naming the files), or a constant L_MPLE or BLEU."""
    _check_bleu_kind(bleu)
    if len(results) < MIN_METHODS:
        raise ValueError(f"a correlation needs at least {MIN_METHODS} result files (methods), got "
                         f"{len(results)}")
    # Rows measured on other sentences or references are not comparable: r over them mixes
    # datasets (and BLEU scales) rather than methods.
    mixed = mixed_provenance(results)
    if mixed and not allow_mixed:
        raise ValueError("the result files were measured on different data: " + "; ".join(mixed)
                         + " (correlate files of one dataset, split and reference set, or pass --allow-mixed)")
    warnings = [f"correlating files measured on different data (--allow-mixed): {'; '.join(mixed)}"] if mixed else []
    warnings += consistency_warnings(results, recomputing=beta is not None)
    rows = list(results) if beta is None else recompute_with_beta(results, beta)
    y = bleu_values(rows, bleu)
    x = np.array([row.l_mple for row in rows], dtype=np.float64)
    _pair(x, y, MIN_METHODS, names=("L_MPLE", f"BLEU ({bleu})"))  # names a constant column
    r = pearson_r(x, y)
    interval = bootstrap_pearson_interval(x, y, n_resamples=n_resamples, confidence=confidence, seed=seed)
    r_by_bleu: dict[str, float | None] = {}
    for kind in BLEU_KINDS:
        values = [row.bleu(kind) for row in rows]
        try:
            r_by_bleu[kind] = None if None in values else pearson_r(x, values)
        except ValueError:
            r_by_bleu[kind] = None
    sweep = None if betas is None else beta_sweep(results, betas, bleu=bleu)
    return CorrelationReport(rows=tuple(rows), bleu=bleu, beta=None if beta is None else float(beta), r=r,
                             interval=interval, sweep=sweep, r_by_bleu=r_by_bleu, warnings=tuple(warnings))


def number_text(value: float, spec: str) -> str:
    """``format(value, spec)`` without a negative zero: -0.0, and a small negative number that
    rounds to zero (-0.001 with ``.2f``), print as 0.00 (+0.00 with a ``+`` spec)."""
    text = format(value, spec)
    digits = [ch for ch in text.split("e")[0] if ch.isdigit()]
    if text.startswith("-") and digits and set(digits) == {"0"}:
        text = ("+" if "+" in spec else "") + text[1:]
    return text


def _columns(report: CorrelationReport) -> tuple[list[str], list[list[str]]]:
    header = ["method", "L_NAT (bits/token)", "L_input (bits/token)", "L_target (-β·BLEU)", "L_MPLE",
              f"BLEU ({report.bleu})"]
    body = [[row.method, *(number_text(v, ".2f") for v in (row.l_nat, row.l_input, row.l_target, row.l_mple,
                                                             row.bleu(report.bleu)))] for row in report.rows]
    return header, body


def _summary_lines(report: CorrelationReport) -> list[str]:
    i = report.interval

    def f4(value: float) -> str:
        return number_text(value, ".4f")

    beta = (f"β = {number_text(report.beta, 'g')} for every file (L_target, L_MPLE recomputed)"
            if report.beta is not None
            else "β = " + ", ".join(sorted({number_text(row.beta, "g") for row in report.rows})) + " (the files' own)")
    lines = [f"Pearson r(L_MPLE, BLEU {report.bleu}) = {f4(report.r)} over {len(report.rows)} methods, "
             f"{i.confidence:.0%} bootstrap CI [{f4(i.low)}, {f4(i.high)}] ({i.n_resamples} resamples of the "
             f"methods, seed {i.seed}, {i.n_skipped} skipped with zero variance); {beta}"]
    if report.interval_note:
        lines.append(f"note on r's interval: {report.interval_note}")
    other = [f"r with BLEU {kind} = {f4(value)}" for kind, value in report.r_by_bleu.items()
             if kind != report.bleu and value is not None]
    if other:
        lines.append("; ".join(other))
    if report.sweep is not None:
        s = report.sweep
        lines.append(f"β sweep {number_text(s.betas[0], 'g')}..{number_text(s.betas[-1], 'g')} ({len(s.betas)} "
                     f"values): max |r| = {f4(abs(s.best_r))} (r = {f4(s.best_r)}) at β = "
                     f"{number_text(s.best_beta, 'g')}; min |r| = {f4(s.min_abs_r)} at β = "
                     f"{number_text(s.min_abs_r_beta, 'g')}")
    lines.append("units: " + UNITS_NOTE)
    return lines


def format_correlation_table(report: CorrelationReport) -> str:
    """A short terminal table (one row per method) with r, its interval and the sweep below it."""
    header, body = _columns(report)
    widths = [max(len(line[k]) for line in [header, *body]) for k in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if k == 0 else cell.rjust(w) for k, (cell, w) in enumerate(zip(line, widths)))
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if report.sweep is not None and len(report.sweep.betas) <= 40:
        lines.append("")
        lines.append("β      r(L_MPLE, BLEU)")
        lines += [f"{number_text(b, 'g'):<6} {number_text(r, '+.4f')}"
                  for b, r in zip(report.sweep.betas, report.sweep.r)]
    return "\n".join([*lines, "", *_summary_lines(report)])


def markdown_table(report: CorrelationReport) -> str:
    """The table as markdown (the layout of the paper's Tables 2 and 3), r and the sweep below."""
    header, body = _columns(report)

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in line) + " |" for line in body]
    lines.append("")
    if report.sweep is not None:
        lines += ["| β | r(L_MPLE, BLEU) |", "|---:|---:|"]
        lines += [f"| {number_text(b, 'g')} | {number_text(r, '.4f')} |"
                  for b, r in zip(report.sweep.betas, report.sweep.r)]
        lines.append("")
    lines += [line + "  " for line in _summary_lines(report)]
    return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True)
class TotalCorrelationLine:
    """C of a dataset as ``mple estimate tc`` writes it (``tc.json``): bits/token and its interval,
    with what the file records of its data (``data``, ``split``, ``n_sentences``) and whether the
    estimate converged (``converged``: None where training was not observed)."""

    c_bits_per_token: float
    ci95_bits_per_token: tuple[float, float] | None
    signature: str | None
    path: str
    data: str | None = None
    split: str | None = None
    n_sentences: int | None = None
    converged: bool | None = None
    convergence_note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return json_ready(asdict(self))


def read_tc_json(path: str | os.PathLike) -> TotalCorrelationLine:
    """``c_bits_per_token`` and ``ci95_bits_per_token`` of a ``tc.json`` (the interval may be
    absent or null), with its ``data``, ``split``, ``n_sentences``, ``converged`` and
    ``convergence_note`` where written.  Raises ValueError naming the file and key, OSError if
    unreadable."""
    name = os.fspath(path)
    try:
        document = json.loads(Path(name).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{name}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(document, Mapping) or "c_bits_per_token" not in document:
        raise ValueError(f"{name}: missing key 'c_bits_per_token' (a tc.json of 'mple estimate tc' is expected)")
    if document.get("unit", "bits") != "bits":
        raise ValueError(f"{name}: unit is {document.get('unit')!r}; bits are expected")
    c = _number(document, "c_bits_per_token", name)
    interval = document.get("ci95_bits_per_token")
    ci = None
    if interval is not None:
        if (not isinstance(interval, (list, tuple)) or len(interval) != 2
                or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in interval if v is not None)):
            raise ValueError(f"{name}: key 'ci95_bits_per_token' must be [low, high]")
        if None not in interval:
            ci = (float(interval[0]), float(interval[1]))

    def text(key: str) -> str | None:
        return document[key] if isinstance(document.get(key), str) else None

    n = document.get("n_sentences")
    converged = document.get("converged")
    return TotalCorrelationLine(c_bits_per_token=c, ci95_bits_per_token=ci, signature=text("signature"), path=name,
                                data=text("data"), split=text("split"),
                                n_sentences=n if isinstance(n, int) and not isinstance(n, bool) else None,
                                converged=converged if isinstance(converged, bool) else None,
                                convergence_note=text("convergence_note"))


def fig5_mismatches(results: Sequence[MethodResult], tc: TotalCorrelationLine) -> list[str]:
    """How ``tc`` was measured on other data than ``results`` (dataset directory, split, split
    size), each as ``"split 'test' (tc.json) vs 'valid' (a.json, b.json)"``; empty when they agree
    or where either side does not record a field."""
    out = []
    sides = (("data", tc.data, dataset_location), ("split", tc.split, str), ("split_size", tc.n_sentences, str))
    for name, mine, normal in sides:
        if mine is None:
            continue
        theirs: dict[str, list[str]] = {}
        for r in results:
            if name in r.provenance:
                theirs.setdefault(str(r.provenance[name]), []).append(r.path)
        if name == "data":
            theirs = {dataset_location(value): paths for value, paths in theirs.items()}
        differ = {value: paths for value, paths in theirs.items() if value != normal(mine)}
        if differ:
            shown = " and ".join(f"{value!r} ({_files(paths)})" for value, paths in differ.items())
            out.append(f"{'n_sentences' if name == 'split_size' else name} {normal(mine)!r} ({tc.path}) vs {shown}")
    return out


def fig5_warnings(results: Sequence[MethodResult], tc: TotalCorrelationLine, *, allow_mixed: bool = False) -> list[str]:
    """Check that ``tc`` is C of the data ``results`` were measured on (:func:`fig5_mismatches`):
    ValueError naming the fields and files, or with ``allow_mixed`` a warning.  Also a warning
    when ``tc`` records that C has not converged, or records no data or split to check."""
    out = []
    mismatches = fig5_mismatches(results, tc)
    if mismatches and not allow_mixed:
        raise ValueError(f"--fig5 {tc.path} is C of other data than the result files: {'; '.join(mismatches)} "
                         f"(give the tc.json of their dataset and split, or pass --allow-mixed)")
    if mismatches:
        out.append(f"--fig5 {tc.path} is C of other data than the result files (--allow-mixed): "
                   + "; ".join(mismatches))
    if tc.split is None and tc.data is None:
        out.append(f"--fig5 {tc.path} records neither its data nor its split: whether its C is that of the "
                   f"result files' data is not checked")
    if tc.converged is False:
        note = f" ({tc.convergence_note})" if tc.convergence_note else ""
        out.append(f"--fig5 {tc.path}: C = {number_text(tc.c_bits_per_token, '.4f')} bits/token has not "
                   f"converged{note}; Figure 5 marks it so")
    return out
