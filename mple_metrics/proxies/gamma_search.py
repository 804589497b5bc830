"""Tuning dynamic KD's candidate weights γ on a multi-reference split (the paper's Appendix F,
"Hyper-parameter Selection"); BLEU only, no model.

Dynamic KD chooses, per source, the proxy target T among the candidates Γ (the outputs of K AT
teachers, then the raw target last) with L'_target (Eq. 21)::

    L'_target(T) = -β Σ_m γ_m S(Γ_m, T)

where S(Y, T) is sacrebleu's sentence BLEU (0-100, 13a tokenisation, exponential smoothing,
effective order) of T as hypothesis against Y as the only reference.  The sum runs over *all*
candidates m, T itself included (S(T, T) = 100 for a non-empty T), as Eq. 21 is written; so γ_k
also rewards candidate k directly, and a large enough γ_k makes every sentence choose k.

With the model term left out (the paper: "if L_NAT is the same for all target candidates"), each γ
gives a selection T_γ(n) = argmin_k L'_target(Γ_k) per sentence n, whose real data distortion is

    L_target(γ) = -β · mean_n  mean_{Y in refs(n)} S(Y, T_γ(n))        (Eq. 14)

measured against the split's extra references by default (samples of P_data independent of the
raw candidate, DESIGN.md §2); ``references="all"`` adds the raw target.  γ is searched on the grid {low, low + step, ..., <= high} per candidate, minimising
L_target:

* ``"coordinate"``: coordinate descent from all ones (or the grid value nearest 1), each step
  trying every grid value of one weight with the others fixed; sweeps repeat until a sweep changes
  nothing.  A weight changes only to a strictly lower L_target, to the best value closest to the
  current one (then the smaller), so the search is deterministic and terminates.
* ``"exhaustive"``: every point of the grid; the global minimum on the grid, so never worse than
  coordinate descent.  Ties go to the point closest to the start (fewest grid steps in total), then
  the lexicographically smallest.
* ``"auto"`` (default): exhaustive when the grid is small enough (:data:`EXHAUSTIVE_WORK` scalar
  multiply-adds), else coordinate descent.

Every sentence BLEU is computed once, by the kernels, before the search: the pairwise BLEU among
the candidates of each source (:func:`mple_metrics.ops.pairwise_bleu`, each candidate's n-grams
counted once) and the BLEU of each candidate against each reference
(:func:`mple_metrics.ops.sentence_bleu`), both on the ids of sacrebleu's own 13a tokens, so the
scores equal ``sacrebleu.sentence_bleu`` on the text.  The search is then numpy argmaxes over those
matrices.  Selection ties go to the earlier candidate (``--kd`` order, raw last).  No randomness.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import is_candidate_dir, kd_dataset_dirs, read_candidates_manifest, read_lines
from ..metrics import BLEU
from ..ops import pairwise_bleu, sentence_bleu

#: Name of the raw-target candidate (always last).
RAW_NAME = "raw"
#: Which references L_target is measured against.
REFERENCE_SETS: tuple[str, ...] = ("all", "extra")
SEARCH_METHODS: tuple[str, ...] = ("auto", "coordinate", "exhaustive")
#: ``"auto"`` searches exhaustively when grid points × sentences × candidates² is at most this.
EXHAUSTIVE_WORK = 2 * 10**8
#: ``"exhaustive"`` refuses grids with more points than this.
MAX_EXHAUSTIVE_POINTS = 5 * 10**7
#: Grid values per weight at most.
MAX_GRID_VALUES = 10_001
#: Elements (float64) of one block of the vectorised evaluation: about 32 MB.
_BLOCK_ELEMENTS = 4 * 10**6
JSON_FORMAT = "mple_metrics.gamma_search"


# ----------------------------------------------------------------------------- reading KD data


@dataclass(frozen=True)
class KDCandidates:
    """The candidate set Γ and the references of one split.

    Attributes:
        split: the split's name.
        names: C = K + 1 candidate names: one per KD dataset directory, then ``"raw"``.
        directories: the K KD dataset directories, in candidate order.
        sources: N source sentences.
        candidates: N rows of C texts: the K teachers' outputs, then the raw target.
        references: N rows: the raw target, then the sentence's non-empty extra references.
    """

    split: str
    names: tuple[str, ...]
    directories: tuple[Path, ...]
    sources: list[str]
    candidates: list[list[str]]
    references: list[list[str]]

    def __len__(self) -> int:
        return len(self.sources)


def _find(directory: Path, stem: str) -> Path | None:
    for path in (directory / stem, directory / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _required(directory: Path, stem: str, split: str) -> Path:
    path = _find(directory, stem)
    if path is None:
        raise FileNotFoundError(f"KD directory {directory} has no {stem} (is split {split!r} distilled? "
                                f"run mple distill --splits {split})")
    return path


def _raw_reference_files(directory: Path, split: str) -> list[Path]:
    """``{split}.raw.ref1``, ``.raw.ref2``, ... (or ``.gz``) in order; a gap is an error."""
    pattern = re.compile(rf"^{re.escape(split)}\.raw\.ref(\d+)(\.gz)?$")
    numbered: dict[int, Path] = {}
    for path in directory.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            number = int(match.group(1))
            if number in numbered:
                raise ValueError(f"both {numbered[number]} and {path} exist; keep one")
            numbered[number] = path
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise ValueError(f"KD directory {directory}: the extra references of split {split!r} must be "
                         f"numbered {split}.raw.ref1, {split}.raw.ref2, ... without gaps; found "
                         f"{', '.join(numbered[n].name for n in sorted(numbered))}")
    return [numbered[n] for n in sorted(numbered)]


def _read_kd_directory(directory: Path, split: str) -> tuple[list[str], list[str], list[str], list[list[str]]]:
    """(sources, teacher outputs, raw targets, raw extra-reference columns), line counts checked."""
    src_path = _required(directory, f"{split}.src", split)
    files = {"src": src_path, "tgt": _required(directory, f"{split}.tgt", split),
             "raw": _required(directory, f"{split}.raw.tgt", split)}
    lines = {key: read_lines(path) for key, path in files.items()}
    ref_paths = _raw_reference_files(directory, split)
    ref_columns = [read_lines(path) for path in ref_paths]
    count = len(lines["src"])
    if count == 0:
        raise ValueError(f"KD directory {directory}: {src_path.name} is empty (split {split!r} has no sentences)")
    columns = [(files["tgt"], lines["tgt"]), (files["raw"], lines["raw"]), *zip(ref_paths, ref_columns)]
    for path, column in columns:
        if len(column) != count:
            raise ValueError(f"KD directory {directory}: {path.name} has {len(column)} lines but "
                             f"{src_path.name} has {count}")
    return lines["src"], lines["tgt"], lines["raw"], ref_columns


def _first_difference(a: Sequence[str], b: Sequence[str]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None


def _candidate_names(directories: Sequence[Path], preferred: Sequence[str]) -> tuple[str, ...]:
    """Short names: ``preferred`` (a candidate manifest's names, else the directory name); where they
    clash, parent/name, then the full path."""
    for make in (lambda i: preferred[i], lambda i: f"{directories[i].parent.name}/{directories[i].name}",
                 lambda i: str(directories[i])):
        names = [make(i) for i in range(len(directories))]
        if len(set(names + [RAW_NAME])) == len(names) + 1:
            return tuple(names) + (RAW_NAME,)
    return tuple(f"kd{i}" for i in range(len(directories))) + (RAW_NAME,)


def _expand(entry: str | Path) -> list[tuple[Path, str]]:
    """(KD dataset directory, name) pairs of one ``--kd`` entry."""
    members = kd_dataset_dirs(entry)
    if is_candidate_dir(entry):
        listed = read_candidates_manifest(entry)["candidates"]
        names = [str(item.get("name") or item["dir"]) for item in listed]
        if len(names) == len(members):
            return list(zip(members, names))
    return [(member, member.name) for member in members]


def read_kd_candidates(kd: Sequence[str | Path], split: str = "valid") -> KDCandidates:
    """The candidates and references of ``split`` from KD directories.

    Args:
        kd: KD dataset directories (``mple distill`` output) or KD candidate directories
            (expanded in order with :func:`mple_metrics.data.kd_dataset_dirs`).
        split: the split to read (``{split}.src``, ``.tgt``, ``.raw.tgt``, ``.raw.refN``).

    Raises:
        FileNotFoundError: a directory or one of its split files is missing.
        ValueError: no directory; a directory named twice; line counts that differ inside a
            directory; directories whose sources or raw data (target, extra references) differ
            from the first one's, naming the directory, the file and the first differing line.
    """
    if isinstance(kd, (str, Path)):
        kd = [kd]
    expanded = [pair for entry in kd for pair in _expand(entry)]
    directories = [directory for directory, _ in expanded]
    if not directories:
        raise ValueError("at least one KD directory is needed (--kd DIR)")
    seen: dict[Path, Path] = {}
    for directory in directories:
        key = directory.resolve()
        if key in seen:
            also = "" if str(seen[key]) == str(directory) else f" (also as {seen[key]})"
            raise ValueError(f"KD directory {directory} is named twice{also}; each teacher's outputs can be "
                             f"only one candidate")
        seen[key] = directory
    first = directories[0]
    src, first_tgt, raw, ref_columns = _read_kd_directory(first, split)
    outputs = [first_tgt]
    for directory in directories[1:]:
        other_src, tgt, other_raw, other_refs = _read_kd_directory(directory, split)
        if len(other_src) != len(src):
            raise ValueError(f"KD directory {directory}: split {split!r} has {len(other_src)} sentences but "
                             f"{first} has {len(src)}; every KD directory must distill the same data")
        if len(other_refs) != len(ref_columns):
            raise ValueError(f"KD directory {directory}: split {split!r} has {len(other_refs)} extra "
                             f"reference files ({split}.raw.refN) but {first} has {len(ref_columns)}; every "
                             f"KD directory must distill the same data")
        for what, mine, theirs in ([(f"{split}.src", other_src, src), (f"{split}.raw.tgt", other_raw, raw)]
                                   + [(f"{split}.raw.ref{k + 1}", other_refs[k], ref_columns[k])
                                      for k in range(len(ref_columns))]):
            line = _first_difference(mine, theirs)
            if line is not None:
                raise ValueError(f"KD directory {directory}: line {line + 1} of {what} differs from {first}'s "
                                 f"({mine[line][:40]!r} vs {theirs[line][:40]!r}); every KD directory must "
                                 f"distill the same data")
        outputs.append(tgt)
    candidates = [[out[n] for out in outputs] + [raw[n]] for n in range(len(src))]
    references = [[raw[n]] + [column[n] for column in ref_columns if column[n].strip()]
                  for n in range(len(src))]
    names = _candidate_names(directories, [name for _, name in expanded])
    return KDCandidates(split, names, tuple(directories), src, candidates, references)


# ----------------------------------------------------------------------------- the BLEU matrices


def bleu_matrices(candidates: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                  tokenize: str = "13a", chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Every sentence BLEU the search needs, each computed once by the kernels.

    Args:
        candidates: N rows of C texts.
        references: N rows of at least one reference text each.
        tokenize: sacrebleu tokenizer the texts are split with (``"13a"``, as sacrebleu's default).
        chunk: sentences per kernel call.

    Returns:
        ``pairwise`` (N, C, C) float64: [n, i, j] = S(Γ_j, Γ_i), candidate i as hypothesis against
        candidate j as the only reference; and ``versus_refs`` (N, C) float64: [n, k] = the mean over
        the references Y of sentence n of S(Y, Γ_k), each reference scored alone.  0-100 scale,
        equal to ``sacrebleu.sentence_bleu(hyp, [ref]).score`` on the text.
    """
    if len(candidates) != len(references):
        raise ValueError(f"references has {len(references)} rows but candidates has {len(candidates)}")
    sizes = {len(row) for row in candidates}
    if len(sizes) > 1:
        raise ValueError(f"every sentence needs the same number of candidates, got {sorted(sizes)}")
    for n, row in enumerate(references):
        if not row:
            raise ValueError(f"sentence {n} has no reference")
    metric = BLEU(tokenize=tokenize)
    n_sent, n_cand = len(candidates), (sizes.pop() if sizes else 0)
    pairwise = np.zeros((n_sent, n_cand, n_cand), dtype=np.float64)
    versus = np.zeros((n_sent, n_cand), dtype=np.float64)
    for start in range(0, n_sent, chunk):
        stop = min(start + chunk, n_sent)
        cand_ids = [[metric.token_ids(text) for text in candidates[n]] for n in range(start, stop)]
        ref_ids = [[metric.token_ids(text) for text in references[n]] for n in range(start, stop)]
        pairwise[start:stop] = pairwise_bleu(cand_ids).numpy()
        hyps = [c for cands, refs in zip(cand_ids, ref_ids) for c in cands for _ in refs]
        refs = [[r] for cands, refs_of in zip(cand_ids, ref_ids) for _ in cands for r in refs_of]
        scores = sentence_bleu(hyps, refs).numpy()
        counts = np.repeat([len(r) for r in ref_ids], n_cand)  # references per (sentence, candidate)
        sums = np.add.reduceat(scores, np.concatenate([[0], np.cumsum(counts)[:-1]]))
        versus[start:stop] = (sums / counts).reshape(stop - start, n_cand)
    return pairwise, versus


# ----------------------------------------------------------------------------- selection and L_target


def select_candidates(pairwise: np.ndarray, gamma: Sequence[float]) -> np.ndarray:
    """T_γ(n) = argmin_k L'_target(Γ_k) = argmax_k Σ_m γ_m S(Γ_m, Γ_k) (Eq. 21, m = k included):
    int64 (N,) candidate indices, ties to the earlier candidate."""
    gammas = np.asarray(gamma, dtype=np.float64)[None, :]
    return _selections(np.asarray(pairwise, dtype=np.float64), gammas)[0]


def l_target(versus_refs: np.ndarray, selection: np.ndarray, beta: float) -> float:
    """-β · mean over sentences of ``versus_refs[n, selection[n]]`` (Eq. 14), BLEU×β units."""
    versus_refs = np.asarray(versus_refs, dtype=np.float64)
    picked = versus_refs[np.arange(versus_refs.shape[0]), np.asarray(selection)]
    return float(-beta * (picked.sum() / max(picked.shape[0], 1)))


def _selections(pairwise: np.ndarray, gammas: np.ndarray) -> np.ndarray:
    """(G, N) selections for G weight vectors (G, C).  Elementwise in a fixed order over m, so a
    weight vector gets bit-identical scores whatever G is."""
    scores = gammas[:, None, None, 0] * pairwise[None, :, :, 0]
    for m in range(1, pairwise.shape[2]):
        scores += gammas[:, None, None, m] * pairwise[None, :, :, m]
    return scores.argmax(axis=2)


def _l_targets(pairwise: np.ndarray, versus_refs: np.ndarray, gammas: np.ndarray, beta: float) -> np.ndarray:
    """(G,) L_target of G weight vectors, evaluated in blocks of bounded memory."""
    n_sent, n_cand = versus_refs.shape
    out = np.empty(gammas.shape[0], dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // max(1, n_sent * n_cand))
    rows = np.arange(n_sent)
    for start in range(0, gammas.shape[0], block):
        selection = _selections(pairwise, gammas[start:start + block])
        picked = versus_refs[rows[None, :], selection]
        out[start:start + block] = -beta * (picked.sum(axis=1) / max(n_sent, 1))
    return out


# ----------------------------------------------------------------------------- the search


def gamma_grid(low: float, high: float, step: float) -> np.ndarray:
    """The values low, low + step, ... up to high (inclusive within rounding), rounded to 10 decimals.

    Raises ValueError naming ``range``/``step`` for non-finite values, low < 0, high < low, step <= 0
    or more than :data:`MAX_GRID_VALUES` values."""
    for name, value in (("range", low), ("range", high), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must hold finite numbers, got {value!r}")
    if low < 0 or high < low:
        raise ValueError(f"range must be LOW HIGH with 0 <= LOW <= HIGH, got {low:g} {high:g}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step:g}")
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    if count > MAX_GRID_VALUES:
        raise ValueError(f"range {low:g} {high:g} with step {step:g} has {count} values per weight; at most "
                         f"{MAX_GRID_VALUES}")
    return np.round(low + step * np.arange(count), 10)


@dataclass(frozen=True)
class GammaSearchResult:
    """The outcome of :func:`search_gamma`.  L_target values are in BLEU×β units (lower is better).

    Attributes:
        gamma: the best weights found, one per candidate (raw last).
        l_target: L_target of ``gamma``.
        selection: (N,) the candidate each sentence chooses under ``gamma``.
        method: ``"coordinate"`` or ``"exhaustive"`` (what ``"auto"`` resolved to).
        start: the weights the search started from (all ones, or the grid value nearest 1).
        sweeps: coordinate-descent sweeps (the last changes nothing); 0 for exhaustive.
        evaluations: weight vectors evaluated.
        ones_l_target, ones_selection: L_target and selection of γ = all ones.
        single_l_target: (C,) L_target of always choosing candidate k.
        oracle_l_target: L_target of choosing, per sentence, the candidate closest to the
            references: a lower bound for every γ.
    """

    gamma: tuple[float, ...]
    l_target: float
    selection: np.ndarray
    method: str
    start: tuple[float, ...]
    sweeps: int
    evaluations: int
    ones_l_target: float
    ones_selection: np.ndarray
    single_l_target: tuple[float, ...]
    oracle_l_target: float
    grid: tuple[float, ...] = field(default=())

    def selection_frequency(self, selection: np.ndarray | None = None) -> list[float]:
        """Fraction of sentences choosing each candidate (default: under the best γ)."""
        chosen = self.selection if selection is None else selection
        counts = np.bincount(chosen, minlength=len(self.single_l_target))
        return (counts / max(len(chosen), 1)).tolist()


def _check_matrices(pairwise: np.ndarray, versus_refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairwise = np.asarray(pairwise, dtype=np.float64)
    versus_refs = np.asarray(versus_refs, dtype=np.float64)
    if pairwise.ndim != 3 or pairwise.shape[1] != pairwise.shape[2]:
        raise ValueError(f"pairwise must have shape (N, C, C), got {pairwise.shape}")
    if versus_refs.shape != pairwise.shape[:2]:
        raise ValueError(f"versus_refs must have shape (N, C) = {pairwise.shape[:2]}, got {versus_refs.shape}")
    if pairwise.shape[0] == 0 or pairwise.shape[1] == 0:
        raise ValueError(f"the search needs at least one sentence and one candidate, got shape {pairwise.shape}")
    if not (np.isfinite(pairwise).all() and np.isfinite(versus_refs).all()):
        raise ValueError("pairwise and versus_refs must be finite BLEU scores")
    return pairwise, versus_refs


def _closest_then_smallest(candidates: np.ndarray, current: int) -> int:
    """Among grid indices ``candidates``, the one closest to ``current``, then the smaller."""
    order = np.lexsort((candidates, np.abs(candidates - current)))
    return int(candidates[order[0]])


def search_gamma(pairwise: np.ndarray, versus_refs: np.ndarray, *, beta: float = 0.2,
                 grid: Sequence[float] | np.ndarray | None = None, method: str = "auto") -> GammaSearchResult:
    """Search the weights γ (one per candidate, on ``grid``) minimising L_target.

    Args:
        pairwise: (N, C, C) from :func:`bleu_matrices` ([n, i, j] = S(Γ_j, Γ_i)).
        versus_refs: (N, C) from :func:`bleu_matrices`.
        beta: β > 0 (it scales L_target and leaves the selection unchanged).
        grid: the values each weight may take (default ``gamma_grid(1, 3, 0.1)``, the paper's).
        method: ``"auto"``, ``"coordinate"`` or ``"exhaustive"`` (module docstring).

    Returns:
        :class:`GammaSearchResult`.  Deterministic.
    """
    pairwise, versus_refs = _check_matrices(pairwise, versus_refs)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    if method not in SEARCH_METHODS:
        raise ValueError(f"method must be one of {', '.join(SEARCH_METHODS)}, got {method!r}")
    values = gamma_grid(1.0, 3.0, 0.1) if grid is None else np.asarray(grid, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all() or bool((values < 0).any()) \
            or bool((np.diff(values) <= 0).any()):
        raise ValueError("grid must be a non-empty increasing list of finite numbers >= 0")
    n_sent, n_cand = versus_refs.shape
    beta = float(beta)
    points = values.size ** n_cand
    if method == "auto":
        method = "exhaustive" if points * n_sent * n_cand * n_cand <= EXHAUSTIVE_WORK else "coordinate"
    if method == "exhaustive" and points > MAX_EXHAUSTIVE_POINTS:
        raise ValueError(f"method 'exhaustive' (--search exhaustive): a search over {values.size} values "
                         f"for each of {n_cand} weights is {points:.3g} points (at most {MAX_EXHAUSTIVE_POINTS:.3g}); use the coordinate "
                         f"search or a coarser grid")
    start = np.full(n_cand, int(np.argmin(np.abs(values - 1.0))), dtype=np.int64)

    if method == "exhaustive":
        best_value, best_index, evaluations = math.inf, start, 0
        block = max(1, _BLOCK_ELEMENTS // max(1, n_sent * n_cand))
        for first in range(0, points, block):
            flat = np.arange(first, min(first + block, points), dtype=np.int64)
            index = np.stack(np.unravel_index(flat, (values.size,) * n_cand), axis=1)
            scores = _l_targets(pairwise, versus_refs, values[index], beta)
            evaluations += len(flat)
            # Row order of ``index`` is lexicographic, so the first of equal keys is the smallest.
            distance = np.abs(index - start).sum(axis=1)
            k = int(np.lexsort((distance, scores))[0])
            if (scores[k], distance[k]) < (best_value, int(np.abs(best_index - start).sum())):
                best_value, best_index = float(scores[k]), index[k]
        sweeps = 0
    else:
        best_index = start.copy()
        evaluations, sweeps, changed = 0, 0, True
        # Every change lowers L_target strictly, so the sweeps end; the cap only guards the loop.
        while changed and sweeps < values.size * n_cand + 1:
            changed, sweeps = False, sweeps + 1
            for c in range(n_cand):
                trial = np.repeat(best_index[None, :], values.size, axis=0)
                trial[:, c] = np.arange(values.size)
                scores = _l_targets(pairwise, versus_refs, values[trial], beta)
                evaluations += values.size
                low = scores.min()
                if low < scores[best_index[c]]:
                    ties = np.flatnonzero(scores == low)
                    best_index = best_index.copy()
                    best_index[c] = _closest_then_smallest(ties, int(best_index[c]))
                    changed = True
    gamma = values[best_index]
    selection = select_candidates(pairwise, gamma)
    ones = np.ones(n_cand)
    ones_selection = select_candidates(pairwise, ones)
    single = tuple(l_target(versus_refs, np.full(n_sent, k), beta) for k in range(n_cand))
    return GammaSearchResult(
        gamma=tuple(float(g) for g in gamma), l_target=l_target(versus_refs, selection, beta),
        selection=selection, method=method, start=tuple(float(g) for g in values[start]), sweeps=sweeps,
        evaluations=evaluations, ones_l_target=l_target(versus_refs, ones_selection, beta),
        ones_selection=ones_selection, single_l_target=single,
        oracle_l_target=l_target(versus_refs, versus_refs.argmax(axis=1), beta),
        grid=tuple(float(v) for v in values))


# ----------------------------------------------------------------------------- the whole job


@dataclass(frozen=True)
class GammaTuning:
    """:func:`tune_gamma`'s result: the data it read, the matrices, the search and its settings."""

    data: KDCandidates
    result: GammaSearchResult
    beta: float
    references: str
    step: float
    range: tuple[float, float]
    sentences_scored: int
    references_per_sentence: float
    signature: str

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable report (what ``mple proxies tune-gamma --out`` writes)."""
        r = self.result
        best_freq, ones_freq = r.selection_frequency(), r.selection_frequency(r.ones_selection)
        directories = [str(d) for d in self.data.directories] + [None]
        return {
            "format": JSON_FORMAT, "version": 1,
            "split": self.data.split, "beta": self.beta,
            "units": {"bleu": "sentence BLEU, 0-100 (sacrebleu, 13a, smooth exp, effective order)",
                      "l_target": "BLEU x beta: -beta * mean sentence BLEU against the references (Eq. 14)"},
            "bleu_signature": self.signature,
            "sentences": len(self.data), "sentences_scored": self.sentences_scored,
            "references": self.references, "references_per_sentence_mean": self.references_per_sentence,
            "eq21_includes_self": True,
            "candidates": [
                {"name": name, "directory": directory, "gamma": gamma,
                 "selection_frequency": freq, "selection_frequency_all_ones": ones_f,
                 "l_target_alone": alone, "mean_bleu_vs_references": -alone / self.beta}
                for name, directory, gamma, freq, ones_f, alone in zip(
                    self.data.names, directories, r.gamma, best_freq, ones_freq, r.single_l_target)],
            "best": {"gamma": list(r.gamma), "l_target": r.l_target, "mean_bleu": -r.l_target / self.beta},
            "all_ones": {"gamma": [1.0] * len(r.gamma), "l_target": r.ones_l_target,
                         "mean_bleu": -r.ones_l_target / self.beta},
            "oracle": {"l_target": r.oracle_l_target, "mean_bleu": -r.oracle_l_target / self.beta},
            "search": {"method": r.method, "range": list(self.range), "step": self.step,
                       "grid_values": len(r.grid), "start": list(r.start), "sweeps": r.sweeps,
                       "evaluations": r.evaluations},
        }


def tune_gamma(kd: Sequence[str | Path], split: str = "valid", *, beta: float = 0.2, low: float = 1.0,
               high: float = 3.0, step: float = 0.1, references: str = "extra", method: str = "auto",
               progress: Callable[[str], None] | None = None) -> GammaTuning:
    """Read the KD directories, compute the BLEU matrices once, and search γ (module docstring).

    Args:
        kd: KD dataset or candidate directories (see :func:`read_kd_candidates`).
        split: the multi-reference split to tune on (default ``"valid"``).
        beta: β > 0 of Eq. 14/21 (default 0.2).
        low, high, step: the grid of each weight (default 1 to 3 in steps of 0.1, the paper's).
        references: ``"extra"`` (default): L_target against the extra references only (DESIGN.md
            §2's independent samples; sentences without an extra reference are left out);
            ``"all"``: against the raw target and the extra references (the raw target is also a
            candidate, so "all" gives the raw candidate an exact match).
        method: ``"auto"``, ``"coordinate"`` or ``"exhaustive"``.
        progress: optional callable ``progress(message)`` told what is being done.

    Raises:
        FileNotFoundError / ValueError naming the directory, file or argument.
    """
    if references not in REFERENCE_SETS:
        raise ValueError(f"references must be one of {', '.join(REFERENCE_SETS)}, got {references!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    grid = gamma_grid(low, high, step)
    if method not in SEARCH_METHODS:
        raise ValueError(f"method must be one of {', '.join(SEARCH_METHODS)}, got {method!r}")
    say = progress or (lambda message: None)
    data = read_kd_candidates(kd, split)
    if references == "all":
        keep = list(range(len(data)))
        refs = data.references
    else:
        keep = [n for n, row in enumerate(data.references) if len(row) > 1]
        if not keep:
            raise ValueError(f"references 'extra' (--references extra): no sentence of split {split!r} has an "
                             f"extra reference ({split}.raw.ref1 ...) in {data.directories[0]}")
        refs = [data.references[n][1:] for n in keep]
    # Refused before any scoring: an exhaustive search the grid makes too large.
    points = grid.size ** len(data.names)
    if method == "exhaustive" and points > MAX_EXHAUSTIVE_POINTS:
        raise ValueError(f"method 'exhaustive' (--search exhaustive): a search over {grid.size} values for each "
                         f"of {len(data.names)} weights is {points:.3g} points (at most "
                         f"{MAX_EXHAUSTIVE_POINTS:.3g}); use the coordinate search or a coarser grid")
    say(f"scoring {len(keep)} sentences x {len(data.names)} candidates of split {split!r} "
        f"(sentence BLEU, 13a)")
    pairwise, versus = bleu_matrices([data.candidates[n] for n in keep], refs)
    say(f"searching gamma on {grid.size} values per weight")
    result = search_gamma(pairwise, versus, beta=float(beta), grid=grid, method=method)
    signature = BLEU(tokenize="13a").signature(1, True).format()
    return GammaTuning(data=data, result=result, beta=float(beta), references=references, step=float(step),
                       range=(float(low), float(high)), sentences_scored=len(keep),
                       references_per_sentence=float(np.mean([len(r) for r in refs])), signature=signature)
