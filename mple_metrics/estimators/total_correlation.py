"""The conditional total correlation C (Theorem 1) estimated from per-sentence NLLs.

Theorem 1: ``C = sum_i H(y_i | X) - H(Y | X)``, the information an independent-token (NAT) model
must lose.  With V-entropy (footnote 3, Appendix B) both terms are held-out NLLs of models of one
family trained by plain MLE: ``sum_i H_V(y_i | X)`` is that of a NAT and ``H_V(Y | X)`` that of an
autoregressive model (AT) of the same architecture.  Per evaluation sentence ``s``::

    Ĉ_s = NLL_NAT(s) - NLL_AT(s)                              (bits per sentence)

    C per sentence = mean_s Ĉ_s,    C per token = sum_s Ĉ_s / sum_s n_tokens(s)

with paired bootstrap intervals over sentences (:func:`~mple_metrics.estimators.paired_bootstrap`,
weights = tokens for the per-token value).  All values are in bits (log base 2).

Length terms: the AT's ``</s>`` and the NAT's length predictor both score the target length.  Both
NLLs must treat them alike so that length cancels in Ĉ: ``length_terms="include"`` means both NLLs
contain their length term, ``"exclude"`` that neither does.  This module only records the choice;
the scorer applies it.  ``n_tokens`` should count the target tokens without ``</s>`` under either
convention, so per-token values of the two conventions share a denominator.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic_write import atomic_write_bytes, atomic_write_text
from .bootstrap import BootstrapInterval, as_per_sentence, has_interval, interval_warning, paired_bootstrap

LENGTH_TERMS: tuple[str, ...] = ("include", "exclude")
UNITS_NOTE = ("bits (log base 2); per_sentence = mean over sentences, per_token = sum over "
              "sentences / total target tokens; C = NLL_NAT - NLL_AT")
REPORT_FILES: tuple[str, ...] = ("tc.json", "per_sentence.tsv", "c_hist.png")
PER_SENTENCE_COLUMNS: tuple[str, ...] = ("index", "c_bits", "nll_nat_bits", "nll_at_bits",
                                         "n_tokens", "source", "reference")


def tc_signature(*, family: str | None, tokenizer: str | None, length_terms: str, seeds: int,
                 n_sentences: int, version: str = __version__) -> str:
    """The reproducibility signature, e.g.
    ``C|V:nat-d64-h4-ffn256-l2+2-uniform/at-d64-h4-ffn256-l2+2|tok:spm8000|len:include|seeds:1|n:1000|version:0.1.0``
    (:mod:`.tc_pipeline` names both models' architectures and the target tokenizer this way,
    whichever way the models were obtained).

    ``family`` (the model family V) and ``tokenizer`` are free text without ``|``; ``None`` is
    written ``unknown``.
    """
    parts = {"V": family or "unknown", "tok": tokenizer or "unknown", "len": length_terms,
             "seeds": str(seeds), "n": str(n_sentences), "version": version}
    for key, value in parts.items():
        if "|" in value or any(ch.isspace() for ch in value):
            raise ValueError(f"signature field {key} must not contain '|' or whitespace, got "
                             f"{value!r}")
    return "C|" + "|".join(f"{key}:{value}" for key, value in parts.items())


@dataclass(frozen=True, eq=False)
class TCEstimate:
    """An estimate of C with its intervals, in bits.

    The ``ci95_*`` fields hold the bootstrap interval at ``confidence`` (0.95 unless chosen
    otherwise) as ``(low, high)``.  The per-sentence arrays (all (n_sentences,), aligned with the
    evaluation split) are left out of :meth:`to_dict` unless asked for.
    """

    c_bits_per_token: float
    c_bits_per_sentence: float
    ci95_bits_per_token: tuple[float, float]
    ci95_bits_per_sentence: tuple[float, float]
    nll_nat_bits_per_token: float
    nll_at_bits_per_token: float
    nll_nat_bits_per_sentence: float
    nll_at_bits_per_sentence: float
    n_sentences: int
    n_tokens: int
    length_terms: str
    confidence: float
    n_resamples: int
    seed: int
    bootstrap_method: str
    signature: str
    sentence_c_bits: np.ndarray = field(repr=False)
    sentence_nll_nat_bits: np.ndarray = field(repr=False)
    sentence_nll_at_bits: np.ndarray = field(repr=False)
    sentence_n_tokens: np.ndarray = field(repr=False)
    unit: str = "bits"
    units_note: str = UNITS_NOTE

    def to_dict(self, *, per_sentence: bool = False) -> dict[str, object]:
        """JSON-ready fields (non-finite numbers become ``None``); ``per_sentence`` adds the arrays
        as lists."""
        out: dict[str, object] = {
            "c_bits_per_token": self.c_bits_per_token,
            "c_bits_per_sentence": self.c_bits_per_sentence,
            "ci95_bits_per_token": list(self.ci95_bits_per_token),
            "ci95_bits_per_sentence": list(self.ci95_bits_per_sentence),
            "nll_nat_bits_per_token": self.nll_nat_bits_per_token,
            "nll_at_bits_per_token": self.nll_at_bits_per_token,
            "nll_nat_bits_per_sentence": self.nll_nat_bits_per_sentence,
            "nll_at_bits_per_sentence": self.nll_at_bits_per_sentence,
            "n_sentences": self.n_sentences,
            "n_tokens": self.n_tokens,
            "length_terms": self.length_terms,
            "unit": self.unit,
            "units_note": self.units_note,
            "bootstrap": {"method": self.bootstrap_method, "confidence": self.confidence,
                          "n_resamples": self.n_resamples, "seed": self.seed,
                          "unit": "sentences (paired)"},
            "signature": self.signature,
        }
        if per_sentence:
            out["per_sentence"] = {"c_bits": self.sentence_c_bits,
                                   "nll_nat_bits": self.sentence_nll_nat_bits,
                                   "nll_at_bits": self.sentence_nll_at_bits,
                                   "n_tokens": self.sentence_n_tokens}
        return json_ready(out)


def json_ready(value: object) -> object:
    """``value`` with numpy scalars/arrays, tuples and paths turned into JSON types and every
    non-finite float into ``None`` (recursively through dicts and lists)."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return [json_ready(item) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def conditional_tc(nat_nll_bits: object, at_nll_bits: object, n_tokens: object, *,
                   length_terms: str = "include", n_resamples: int = 1000, seed: int = 0,
                   confidence: float = 0.95, family: str | None = None,
                   tokenizer: str | None = None, seeds: int = 1) -> TCEstimate:
    """Estimate C from per-sentence NLLs of a NAT and an AT on the same evaluation sentences.

    Args:
        nat_nll_bits: (n,) NLL_NAT(Y|X) per sentence, bits (>= 0), summed over the target.
        at_nll_bits: (n,) NLL_AT(Y|X) per sentence, bits (>= 0), same sentences and order.
        n_tokens: (n,) target tokens per sentence (integers >= 1, without ``</s>``).
        length_terms: ``"include"`` or ``"exclude"``: whether both NLLs hold their length term
            (recorded; see the module docstring).
        n_resamples, seed, confidence: of the paired bootstrap over sentences.
        family, tokenizer, seeds: recorded in the signature (the model family V, e.g.
            ``transformer-tiny``; the tokenizer kind; how many training seeds the caller ran).

    Returns:
        :class:`TCEstimate`.  Deterministic given the inputs and ``seed``; the per-token and
        per-sentence intervals come from the same resampled sentence indices.

    Raises:
        TypeError / ValueError naming the argument: shapes that differ, empty, non-finite or
        negative NLLs, non-integer or non-positive token counts, unknown ``length_terms``.
    """
    _check_choice(length_terms, "length_terms", LENGTH_TERMS)
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral):
        raise TypeError(f"seeds must be an int, got {type(seeds).__name__}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    nat = as_per_sentence(nat_nll_bits, "nat_nll_bits")
    at = as_per_sentence(at_nll_bits, "at_nll_bits")
    tokens = as_per_sentence(n_tokens, "n_tokens")
    for name, array in (("at_nll_bits", at), ("n_tokens", tokens)):
        if array.shape != nat.shape:
            raise ValueError(f"{name} must have one value per sentence like nat_nll_bits "
                             f"({nat.shape[0]}), got {array.shape[0]}")
    for name, array in (("nat_nll_bits", nat), ("at_nll_bits", at)):
        bad = np.flatnonzero(array < 0)
        if bad.size:
            raise ValueError(f"{name} must be NLLs (>= 0); index {int(bad[0])} is "
                             f"{array[bad[0]]} (a log-probability? negate it)")
    bad = np.flatnonzero((tokens < 1) | (tokens != np.round(tokens)))
    if bad.size:
        raise ValueError(f"n_tokens must be integers >= 1; index {int(bad[0])} is "
                         f"{tokens[bad[0]]}")
    c = nat - at
    settings = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    per_token: BootstrapInterval = paired_bootstrap(nat, at, tokens, **settings)
    per_sentence: BootstrapInterval = paired_bootstrap(nat, at, **settings)
    total_tokens = float(tokens.sum())
    n = int(c.shape[0])
    # One sentence has no interval (every resample is that sentence): NaN, written as null.
    no_interval = (math.nan, math.nan)
    return TCEstimate(
        c_bits_per_token=per_token.estimate,
        c_bits_per_sentence=per_sentence.estimate,
        ci95_bits_per_token=(per_token.low, per_token.high) if has_interval(n) else no_interval,
        ci95_bits_per_sentence=(per_sentence.low, per_sentence.high) if has_interval(n) else no_interval,
        nll_nat_bits_per_token=float(nat.sum() / total_tokens),
        nll_at_bits_per_token=float(at.sum() / total_tokens),
        nll_nat_bits_per_sentence=float(nat.mean()),
        nll_at_bits_per_sentence=float(at.mean()),
        n_sentences=n,
        n_tokens=int(total_tokens),
        length_terms=length_terms,
        confidence=per_token.confidence,
        n_resamples=per_token.n_resamples,
        seed=per_token.seed,
        bootstrap_method=per_token.method,
        signature=tc_signature(family=family, tokenizer=tokenizer, length_terms=length_terms,
                               seeds=int(seeds), n_sentences=n),
        sentence_c_bits=_read_only(c),
        sentence_nll_nat_bits=_read_only(nat),
        sentence_nll_at_bits=_read_only(at),
        sentence_n_tokens=_read_only(tokens.astype(np.int64)),
    )


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _spread(values: list[float]) -> dict[str, object]:
    array = np.asarray(values, dtype=np.float64)
    return {"values": values, "mean": float(array.mean()),
            "std": float(array.std(ddof=1)) if array.size > 1 else None,
            "min": float(array.min()), "max": float(array.max())}


def combine_seeds(estimates: Sequence[TCEstimate]) -> dict[str, object]:
    """Mean and spread over training seeds of ``c_bits_per_token`` and ``c_bits_per_sentence``.

    Returns ``{"n_seeds", "c_bits_per_token": {"values", "mean", "std", "min", "max"},
    "c_bits_per_sentence": {...}}``; ``std`` is the sample standard deviation (ddof = 1), ``None``
    for one seed.  All estimates must be on the same sentences with the same length convention.
    """
    estimates = list(estimates)
    if not estimates:
        raise ValueError("estimates is empty: pass at least one TCEstimate")
    for index, estimate in enumerate(estimates):
        if not isinstance(estimate, TCEstimate):
            raise TypeError(f"estimates[{index}] must be a TCEstimate, got "
                            f"{type(estimate).__name__}")
    first = estimates[0]
    for index, estimate in enumerate(estimates[1:], start=1):
        if (estimate.n_sentences, estimate.n_tokens) != (first.n_sentences, first.n_tokens):
            raise ValueError(f"estimates[{index}] is on {estimate.n_sentences} sentences / "
                             f"{estimate.n_tokens} tokens, estimates[0] on {first.n_sentences} / "
                             f"{first.n_tokens}: seeds must be scored on the same sentences")
        if estimate.length_terms != first.length_terms:
            raise ValueError(f"estimates[{index}] has length_terms={estimate.length_terms!r}, "
                             f"estimates[0] {first.length_terms!r}")
    return json_ready({
        "n_seeds": len(estimates),
        "c_bits_per_token": _spread([e.c_bits_per_token for e in estimates]),
        "c_bits_per_sentence": _spread([e.c_bits_per_sentence for e in estimates]),
    })


def _cell(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _text_column(values: Sequence[str] | None, name: str, n: int) -> Sequence[str]:
    if values is None:
        return [""] * n
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings (one per sentence), not a string")
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} must have one line per sentence ({n}), got {len(values)}")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(value).__name__}")
    return values


def per_sentence_tsv(estimate: TCEstimate, sources: Sequence[str] | None = None,
                     references: Sequence[str] | None = None) -> str:
    """The per-sentence table as TSV text: a header (:data:`PER_SENTENCE_COLUMNS`), then one row
    per sentence sorted by Ĉ descending (ties by index).  ``index`` is 0-based (line number − 1);
    bits with 6 decimals; tabs and line breaks inside the text become spaces."""
    n = estimate.n_sentences
    sources = _text_column(sources, "sources", n)
    references = _text_column(references, "references", n)
    order = np.argsort(-estimate.sentence_c_bits, kind="stable")
    rows = ["\t".join(PER_SENTENCE_COLUMNS)]
    for i in order.tolist():
        rows.append(f"{i}\t{estimate.sentence_c_bits[i]:.6f}\t"
                    f"{estimate.sentence_nll_nat_bits[i]:.6f}\t"
                    f"{estimate.sentence_nll_at_bits[i]:.6f}\t{estimate.sentence_n_tokens[i]}\t"
                    f"{_cell(sources[i])}\t{_cell(references[i])}")
    return "\n".join(rows) + "\n"


def convergence_caption(converged: bool | None, note: str | None = None) -> str:
    """What the histogram's title says about convergence: ``converged`` True, False (with the
    reason), or None (training not observed: models or scores were given)."""
    if converged is True:
        return "converged"
    if converged is False:
        return f"NOT CONVERGED (do not trust this estimate): {note or 'reason not recorded'}"
    return f"convergence unknown: {note or 'training not observed'}"


def c_histogram_png(estimate: TCEstimate, converged: bool | None = None,
                    convergence_note: str | None = None) -> bytes:
    """PNG bytes of :func:`c_histogram_figure`."""
    figure = c_histogram_figure(estimate, converged, convergence_note)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def c_histogram_figure(estimate: TCEstimate, converged: bool | None = None,
                       convergence_note: str | None = None):
    """The histogram of per-sentence Ĉ (bits/sentence), the mean as a vertical line and its
    confidence interval shaded; the title gives n, the signature and whether the estimate converged
    (:func:`convergence_caption`; an unconverged one is also marked in red inside the axes, since a
    picture travels without its JSON).  A matplotlib Figure on the Agg canvas (no global backend
    change)."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    c = estimate.sentence_c_bits
    bins = int(min(100, max(10, round(math.sqrt(c.size)))))
    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    low_c, high_c = float(c.min()), float(c.max())
    spread = None
    if high_c - low_c <= 1e-9 * max(1.0, abs(high_c)):  # (nearly) constant: matplotlib cannot bin it
        spread = (low_c - 0.5, high_c + 0.5)
    axes.hist(c, bins=bins, range=spread, color="#4c72b0", alpha=0.85)
    low, high = estimate.ci95_bits_per_sentence
    label = f"{estimate.confidence:.0%} CI"
    if math.isfinite(low) and math.isfinite(high):
        axes.axvspan(low, high, color="#dd8452", alpha=0.3, label=f"{label} [{low:.3f}, {high:.3f}]")
    axes.axvline(estimate.c_bits_per_sentence, color="#c44e52", linewidth=1.5,
                 label=f"mean {estimate.c_bits_per_sentence:.3f} bits/sentence")
    axes.set_xlabel("per-sentence Ĉ = NLL_NAT − NLL_AT (bits/sentence)")
    axes.set_ylabel("sentences")
    # The signature names both architectures: break it at a field so that it fits the width.
    fields_ = estimate.signature.split("|")
    half = (len(fields_) + 1) // 2
    signature = "|".join(fields_[:half]) + "|\n" + "|".join(fields_[half:])
    caption = textwrap.fill(f"n = {estimate.n_sentences} sentences; "
                            f"{convergence_caption(converged, convergence_note)}", 95)
    axes.set_title(f"{caption}\n{signature}", fontsize=7,
                   color="#c00000" if converged is False else "black")
    if converged is False:
        axes.text(0.02, 0.96, "NOT CONVERGED", transform=axes.transAxes, ha="left", va="top",
                  fontsize=11, fontweight="bold", color="#c00000")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def write_tc_report(out_dir: str | os.PathLike, estimate: TCEstimate, *,
                    sources: Sequence[str] | None = None,
                    references: Sequence[str] | None = None,
                    extra: Mapping[str, object] | None = None) -> dict[str, Path]:
    """Write ``tc.json``, ``per_sentence.tsv`` and ``c_hist.png`` to ``out_dir``, each atomically.

    ``tc.json`` is ``estimate.to_dict()`` plus ``extra`` (BLEU, models, convergence, per-seed
    values: anything JSON-ready; its keys must not repeat the estimate's); non-finite numbers are
    written as ``null``.  ``extra["converged"]`` (True/False/None) and ``extra["convergence_note"]``
    are also written into the histogram's title.  ``sources``/``references``: one line per sentence for the TSV, or
    ``None`` for empty columns.  Returns ``{file name: path}``.
    """
    if not isinstance(estimate, TCEstimate):
        raise TypeError(f"estimate must be a TCEstimate, got {type(estimate).__name__}")
    document = estimate.to_dict()
    extra = dict(extra or {})
    clash = sorted(set(document) & set(extra))
    if clash:
        raise ValueError(f"extra must not redefine the estimate's fields: {clash}")
    small_sample = interval_warning(estimate.n_sentences)
    if small_sample:
        extra["warnings"] = [*extra.get("warnings", []), small_sample]
    document.update(json_ready(extra))
    json_text = json.dumps(document, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    tsv_text = per_sentence_tsv(estimate, sources, references)
    converged = extra.get("converged")
    note = extra.get("convergence_note")
    png = c_histogram_png(estimate, converged if isinstance(converged, bool) else None,
                          note if isinstance(note, str) else None)
    out_dir = Path(out_dir)
    paths = {name: out_dir / name for name in REPORT_FILES}
    atomic_write_text(paths["per_sentence.tsv"], tsv_text)
    atomic_write_bytes(paths["c_hist.png"], png)
    atomic_write_text(paths["tc.json"], json_text)  # last: its presence means the report is whole
    return paths


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    return str(value)


def format_tc_table(estimate: TCEstimate, extra: Mapping[str, object] | None = None) -> str:
    """A short terminal table of the estimate with units; ``extra`` adds ``label: value`` rows
    (scalars only, e.g. ``{"BLEU AT": 27.1, "ΔBLEU": 3.2}``)."""
    ci = f"{estimate.confidence:.0%} CI"
    tok_lo, tok_hi = estimate.ci95_bits_per_token
    sen_lo, sen_hi = estimate.ci95_bits_per_sentence
    rows = [
        ("", "bits/token", "bits/sentence"),
        ("C = NLL_NAT - NLL_AT", f"{estimate.c_bits_per_token:.4f}",
         f"{estimate.c_bits_per_sentence:.3f}"),
        (f"  {ci}", *((f"[{tok_lo:.4f}, {tok_hi:.4f}]", f"[{sen_lo:.3f}, {sen_hi:.3f}]")
                      if has_interval(estimate.n_sentences) else ("none (1 sentence)", "none"))),
        ("NLL NAT", f"{estimate.nll_nat_bits_per_token:.4f}",
         f"{estimate.nll_nat_bits_per_sentence:.3f}"),
        ("NLL AT", f"{estimate.nll_at_bits_per_token:.4f}",
         f"{estimate.nll_at_bits_per_sentence:.3f}"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"conditional total correlation  {estimate.signature}"]
    lines += [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    lines.append(f"n = {estimate.n_sentences} sentences, {estimate.n_tokens} tokens; length terms "
                 f"{estimate.length_terms}; {estimate.bootstrap_method} bootstrap, "
                 f"{estimate.n_resamples} resamples, seed {estimate.seed}")
    for label, value in (extra or {}).items():
        if value is None or isinstance(value, (str, numbers.Number)):
            lines.append(f"{label}: {_format_value(value)}")
    return "\n".join(lines)
