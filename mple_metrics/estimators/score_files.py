"""Per-sentence scores written by other toolkits, read as NLLs in bits per sentence.

The estimator of C needs one negative log-likelihood per evaluation sentence from each model
(:func:`mple_metrics.estimators.conditional_tc`); these readers let the models come from anywhere.

Formats (``fmt``):

- ``"plain"``: one number per line, line ``i`` for sentence ``i`` of the evaluation split.  The sign
  is given by ``sign``: ``"nll"`` (default) reads negative log-likelihoods (>= 0),
  ``"logprob"`` reads log-probabilities (<= 0) and negates them.  The unit is ``unit``: ``"bits"``
  (log base 2, the default) or ``"nats"`` (natural log; divided by ln 2).  Lines end at ``\\n`` only
  (:func:`mple_metrics.data.read_lines`); an empty line or a non-number is an error naming the line.
- ``"fairseq"``: the output of ``fairseq-generate --score-reference``.  It prints, per sentence
  ``<id>``, ``H-<id>\\t<score>\\t<tokens>`` with the *average* log-probability per target token and
  ``P-<id>\\t<s_1> ... <s_T>`` with the log-probability of each target position, the final
  ``</s>`` included (``fairseq/sequence_scorer.py``: ``score_i = avg_probs_i.sum() / tgt_len`` over
  the reference with its ``</s>``).  Since fairseq 0.10.0 both are in **base 2**:
  ``fairseq_cli/generate.py`` (facebookresearch/fairseq at 3d262bb, lines 274 and 286-293) divides
  ``hypo["score"]`` and ``hypo["positional_scores"]`` by ``math.log(2)`` (commit 660d69f, "Print
  base 2 scores in generate.py", January 2020); fairseq 0.9.0 and older printed natural logs, so
  read their output with ``unit="nats"``.  The sentence NLL is ``-sum(P-<id>)`` (positional scores
  are printed with 4 decimals, so the sum is exact to 5e-5 bits per token); a file without ``P-``
  lines falls back to ``-score * (number of tokens on the H- line + 1)`` (the ``+ 1`` is ``</s>``;
  exact only when the tokens were printed as scored, i.e. without ``--post-process``).  Results are
  ordered by id, so they align with the source file; ids must be exactly ``0 .. n-1``, each once.
  The target tokens T of a sentence are its positions less the final ``</s>`` (``P-`` lines: what
  the model scored, which is the ``T-`` line's token count when fairseq printed it without
  ``--post-process``); per-token values divide by T, never by the positions.  ``T-<id>\t<text>``
  lines are kept (the reference as printed) so that two files can be checked to score the same
  targets (:func:`check_same_targets`).  Every other line (``S-``, ``D-``, ``A-``, logging) is
  ignored.
- ``"auto"`` (default): ``"fairseq"`` when some line starts with ``H-<digits>\\t`` or
  ``P-<digits>\\t``, else ``"plain"``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import read_lines

SCORE_FORMATS: tuple[str, ...] = ("auto", "plain", "fairseq")
SCORE_UNITS: tuple[str, ...] = ("bits", "nats")
SCORE_SIGNS: tuple[str, ...] = ("nll", "logprob")

_FAIRSEQ_LINE = re.compile(r"^([HP])-(\d+)\t")
_TARGET_LINE = re.compile(r"^T-(\d+)\t")


@dataclass(frozen=True)
class ScoreFile:
    """What a score file holds.

    ``nll_bits``: (n,) float64 NLL per sentence in bits (>= 0).  ``n_positions``: for fairseq files
    with ``P-`` lines, (n,) int64, the positions fairseq scored per sentence (target tokens + 1 for
    ``</s>``), else ``None``.  ``fmt``: the format that was read (``"plain"`` or ``"fairseq"``).
    ``targets``: for fairseq files with ``T-`` lines, the target text of each sentence id as
    printed, else ``None``.  ``path``: the file read.
    """

    nll_bits: np.ndarray
    n_positions: np.ndarray | None
    fmt: str
    targets: tuple[str, ...] | None = None
    path: str = ""

    @property
    def n_target_tokens(self) -> np.ndarray | None:
        """(n,) int64 target tokens T per sentence: the scored positions without ``</s>``
        (``None`` without ``P-`` lines)."""
        return None if self.n_positions is None else self.n_positions - 1


def check_same_targets(nat: ScoreFile, at: ScoreFile, names: tuple[str, str] = ("nat", "at")) -> None:
    """Refuse two score files that do not score the same targets: a different number of
    sentences, of scored positions for one sentence id, or a different ``T-`` text for one id.
    ``names`` label the files in the message (e.g. the options that gave them).

    Raises:
        ValueError naming both files and the first sentence id that differs.
    """
    label = (f"{names[0]} {nat.path}", f"{names[1]} {at.path}")
    if len(nat.nll_bits) != len(at.nll_bits):
        raise ValueError(f"{label[0]} has {len(nat.nll_bits)} sentences but {label[1]} has "
                         f"{len(at.nll_bits)}")
    if nat.n_positions is not None and at.n_positions is not None:
        differ = np.flatnonzero(nat.n_positions != at.n_positions)
        if differ.size:
            i = int(differ[0])
            raise ValueError(f"{label[0]} and {label[1]} score different targets: sentence id {i} has "
                             f"{int(nat.n_positions[i])} positional scores in the first and "
                             f"{int(at.n_positions[i])} in the second ({differ.size} sentence(s) differ)")
    if nat.targets is not None and at.targets is not None:
        differ = [i for i, (a, b) in enumerate(zip(nat.targets, at.targets)) if a != b]
        if differ:
            i = differ[0]
            raise ValueError(f"{label[0]} and {label[1]} score different targets: T-{i} is "
                             f"{nat.targets[i]!r} in the first and {at.targets[i]!r} in the second "
                             f"({len(differ)} sentence(s) differ)")


def read_scores(path: str | os.PathLike, *, unit: str = "bits", fmt: str = "auto",
                sign: str | None = None) -> np.ndarray:
    """Per-sentence NLLs in bits, (n,) float64, from a score file (formats: module docstring).

    Args:
        path: the file (UTF-8; ``.gz`` is decompressed).
        unit: ``"bits"`` or ``"nats"``: the log base the file is written in.
        fmt: ``"auto"``, ``"plain"`` or ``"fairseq"``.
        sign: for ``plain`` files, ``"nll"`` (default) or ``"logprob"``.  fairseq files hold
            log-probabilities; ``None`` or ``"logprob"`` are accepted for them.

    Raises:
        ValueError naming ``file:line`` for unreadable lines, empty files, non-finite values, values
        of the wrong sign, and missing or duplicate fairseq ids; ValueError for bad arguments.
    """
    return read_score_file(path, unit=unit, fmt=fmt, sign=sign).nll_bits


def read_score_file(path: str | os.PathLike, *, unit: str = "bits", fmt: str = "auto",
                    sign: str | None = None) -> ScoreFile:
    """Like :func:`read_scores`, also returning the scored positions of fairseq files."""
    if unit not in SCORE_UNITS:
        raise ValueError(f"unit must be one of {SCORE_UNITS}, got {unit!r}")
    if fmt not in SCORE_FORMATS:
        raise ValueError(f"fmt must be one of {SCORE_FORMATS}, got {fmt!r}")
    if sign is not None and sign not in SCORE_SIGNS:
        raise ValueError(f"sign must be one of {SCORE_SIGNS}, got {sign!r}")
    path = Path(path)
    lines = read_lines(path)
    if fmt == "auto":
        fmt = "fairseq" if any(_FAIRSEQ_LINE.match(line) for line in lines) else "plain"
    if fmt == "fairseq":
        if sign == "nll":
            raise ValueError("sign='nll' does not apply to fairseq output, which holds "
                             "log-probabilities; leave sign unset")
        nll, positions = _parse_fairseq(path, lines)
        targets = _parse_targets(path, lines, len(nll))
    else:
        nll, positions, targets = _parse_plain(path, lines, sign or "nll"), None, None
    if unit == "nats":
        nll = nll / math.log(2.0)
    return ScoreFile(nll_bits=nll, n_positions=positions, fmt=fmt, targets=targets, path=str(path))


def _number(path: Path, number: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{number}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{number}: the score must be finite, got {text!r}")
    return value


def _logprob(path: Path, number: int, text: str) -> float:
    value = _number(path, number, text)
    if value > 0:
        raise ValueError(f"{path}:{number}: log-probability {text} > 0; fairseq scores are "
                         f"log-probabilities (<= 0)")
    return value


def _parse_plain(path: Path, lines: list[str], sign: str) -> np.ndarray:
    if not lines:
        raise ValueError(f"{path}: no scores (the file is empty)")
    values = np.empty(len(lines), dtype=np.float64)
    for number, line in enumerate(lines, start=1):
        if line.strip() == "":
            raise ValueError(f"{path}:{number}: empty line; every line must hold one score")
        value = _number(path, number, line)
        if sign == "nll" and value < 0:
            raise ValueError(f"{path}:{number}: negative NLL {line.strip()}; NLLs are >= 0. If the "
                             f"file holds log-probabilities, read it with sign='logprob' "
                             f"(--scores-sign logprob)")
        if sign == "logprob" and value > 0:
            raise ValueError(f"{path}:{number}: positive log-probability {line.strip()}; "
                             f"log-probabilities are <= 0. If the file holds NLLs, read it with "
                             f"sign='nll'")
        values[number - 1] = -value if sign == "logprob" else value
    return values + 0.0  # -0.0 -> 0.0


def _parse_fairseq(path: Path, lines: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Sentence NLLs (bits if the file is base 2) and scored positions, ordered by sentence id."""
    h_scores: dict[int, tuple[int, float, int]] = {}   # id -> (line, score, tokens + 1)
    p_scores: dict[int, tuple[int, float, int]] = {}   # id -> (line, sum, positions)
    for number, line in enumerate(lines, start=1):
        match = _FAIRSEQ_LINE.match(line)
        if match is None:
            continue
        kind, sentence = match.group(1), int(match.group(2))
        fields = line[match.end():].split("\t")
        table = h_scores if kind == "H" else p_scores
        if sentence in table:
            raise ValueError(f"{path}:{number}: duplicate {kind}-{sentence} (first at line "
                             f"{table[sentence][0]}); score the reference once per sentence "
                             f"(--score-reference, --nbest 1)")
        if kind == "H":
            score = _logprob(path, number, fields[0])
            tokens = fields[1].split() if len(fields) > 1 else []
            table[sentence] = (number, score, len(tokens) + 1)
        else:
            scores = [_logprob(path, number, text) for text in fields[0].split()]
            if not scores:
                raise ValueError(f"{path}:{number}: P-{sentence} has no positional scores")
            table[sentence] = (number, math.fsum(scores), len(scores))
    use_positions = bool(p_scores)
    table = p_scores if use_positions else h_scores
    if not table:
        raise ValueError(f"{path}: no fairseq H-/P- lines found")
    ids = sorted(table)
    n_missing = ids[-1] + 1 - len(ids)
    if n_missing:
        shown = _first_missing(ids, 10)
        listed = ", ".join(map(str, shown)) + (" ..." if n_missing > len(shown) else "")
        raise ValueError(f"{path}: sentence ids must be 0..{ids[-1]} with none missing; missing "
                         f"{n_missing} ({listed}) — were sentences skipped "
                         f"(--skip-invalid-size-inputs-valid-test)?")
    nll = np.empty(len(ids), dtype=np.float64)
    positions = np.empty(len(ids), dtype=np.int64)
    for sentence in ids:
        _, value, count = table[sentence]
        nll[sentence] = -(value if use_positions else value * count) + 0.0
        positions[sentence] = count
    return nll, (positions if use_positions else None)


def _parse_targets(path: Path, lines: list[str], n: int) -> tuple[str, ...] | None:
    """The ``T-<id>`` texts ordered by id (``None`` when the file has none); they must name the
    same ids ``0 .. n-1`` as the scores."""
    targets: dict[int, tuple[int, str]] = {}
    for number, line in enumerate(lines, start=1):
        match = _TARGET_LINE.match(line)
        if match is None:
            continue
        sentence = int(match.group(1))
        if sentence in targets:
            raise ValueError(f"{path}:{number}: duplicate T-{sentence} (first at line {targets[sentence][0]})")
        targets[sentence] = (number, line[match.end():])
    if not targets:
        return None
    if sorted(targets) != list(range(n)):
        extra = sorted(set(targets) - set(range(n)))
        missing = sorted(set(range(n)) - set(targets))
        what = f"T-{extra[0]} has no scores" if extra else f"sentence id {missing[0]} has scores but no T- line"
        raise ValueError(f"{path}: the T- lines and the scores name different sentence ids ({what})")
    return tuple(targets[i][1] for i in range(n))


def _first_missing(ids: list[int], limit: int) -> list[int]:
    """Up to ``limit`` of the numbers in ``0 .. ids[-1]`` absent from the sorted ``ids``."""
    missing: list[int] = []
    expected = 0
    for present in ids:
        while expected < present and len(missing) < limit:
            missing.append(expected)
            expected += 1
        expected = present + 1
        if len(missing) >= limit:
            break
    return missing
