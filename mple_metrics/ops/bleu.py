"""Sentence, corpus and pairwise BLEU on token ids, equal to sacrebleu on the same ids.

All functions share one calling convention, ``(hyps, refs, hyp_lengths=None, ref_lengths=None)``:

* tensor form: ``hyps`` integer tensor (B, L) with ``hyp_lengths`` (B,); ``refs`` (B, R, L') with
  ``ref_lengths`` (B, R) for R references per hypothesis (a 2-D ``refs`` (B, L') is one reference).
  A reference of length 0 is *absent*; each row needs at least one present reference.  Omitted
  lengths mean "the full padded width".
* list form: ``hyps`` ``list[list[int]]``, ``refs`` ``list[list[list[int]]]`` (the references of each
  hypothesis; their number may vary).  Lengths are inferred, and an empty reference is a real
  reference of length 0, exactly as sacrebleu treats an empty reference string.

Scores are on sacrebleu's 0-100 scale with smoothing 'exp'; sentence scores use the effective order
(sacrebleu.sentence_bleu), corpus scores do not (sacrebleu.corpus_bleu), unless told otherwise.
Results are deterministic and run on the device of ``hyps``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Union

import numpy as np
import torch
from torch import Tensor

from .. import _extension  # noqa: F401  (registers torch.ops.mple)
from .arguments import check_data_device, check_flag, check_index_tensor, check_same_device, first_index

#: Column names of a statistics row returned by :func:`bleu_stats`.
STATS_FIELDS: tuple[str, ...] = (
    "hyp_len", "ref_len",
    "correct_1", "correct_2", "correct_3", "correct_4",
    "total_1", "total_2", "total_3", "total_4",
)
MAX_ORDER = 4

TokenIds = Union[Tensor, Sequence[Sequence[int]]]
References = Union[Tensor, Sequence[Sequence[Sequence[int]]]]


@torch.library.register_fake("mple::bleu_stats")
def _bleu_stats_fake(hyps, hyp_lengths, refs, ref_lengths):
    return hyps.new_empty((hyps.shape[0], len(STATS_FIELDS)))


@torch.library.register_fake("mple::pairwise_bleu_stats")
def _pairwise_bleu_stats_fake(cands, lengths):
    return cands.new_empty((cands.shape[0], cands.shape[1], cands.shape[1], len(STATS_FIELDS)))


@torch.library.register_fake("mple::bleu_from_stats")
def _bleu_from_stats_fake(stats, effective_order):
    return stats.new_empty(stats.shape[:-1], dtype=torch.float64)


# ----------------------------------------------------------------------------- input handling


def _check_lengths(lengths: Tensor, low: int, high: int, name: str, width_name: str) -> None:
    bad = (lengths < low) | (lengths > high)
    if bool(bad.any()):
        index = first_index(bad)
        raise ValueError(
            f"{name} must lie in [{low}, {width_name} = {high}], got {int(lengths[index])} "
            f"at index {index if len(index) > 1 else index[0]}"
        )


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _check_sequence_list(seqs: object, name: str, what: str) -> None:
    """``seqs`` must be a list or tuple (a generator cannot be measured, None and ints are not lists)."""
    if isinstance(seqs, (str, bytes)) or not isinstance(seqs, Sequence):
        raise TypeError(f"{name} must be a torch.Tensor or a list of {what}, got {type(seqs).__name__}")


def _checked_ids(seqs: Sequence[Sequence[int]], label: Callable[[int], str]) -> np.ndarray:
    """The ids as int64 (the slow path), or an error naming the first entry that is not an integer
    in the int64 range (``label(row)`` names a row, e.g. ``refs[0][1]``)."""
    flat = []
    for row, seq in enumerate(seqs):
        for col, value in enumerate(seq):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                shown = value.item() if isinstance(value, np.generic) else value
                raise TypeError(f"{label(row)}[{col}] = {shown!r} is not an integer token id "
                                f"(got {type(value).__name__})")
            if not INT64_MIN <= int(value) <= INT64_MAX:
                raise ValueError(f"{label(row)}[{col}] = {int(value)} is outside the int64 range "
                                 f"[-2**63, 2**63 - 1] of token ids")
            flat.append(int(value))
    return np.array(flat, dtype=np.int64)


def _pad(seqs: Sequence[Sequence[int]], name: str,
         label: Callable[[int], str] | None = None) -> tuple[Tensor, Tensor]:
    """Right-pads a list of id sequences into (N, max_len) int64 plus lengths (N,).

    Ids must be Python or numpy integers (not bools) in the int64 range: numpy would otherwise store
    ids in [2**63, 2**64) as uint64, which a cast wraps onto negative ids (a false match), turn a
    bool among ints into 0/1, and mix uint64 with negative ids into float64.  Errors name the entry
    as ``label(row)[col]`` (default ``name[row][col]``).
    """
    label = label or (lambda row: f"{name}[{row}]")
    for row, seq in enumerate(seqs):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, (Sequence, np.ndarray)):
            raise TypeError(f"{label(row)} must be a list of integer token ids, got {type(seq).__name__}")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    values = list(itertools.chain.from_iterable(seqs))
    try:
        flat = np.array(values)
    except (TypeError, ValueError, OverflowError):
        flat = None
    fast = (flat is not None and flat.ndim == 1 and flat.dtype.kind in "iu"
            and (flat.dtype.itemsize < 8 or flat.dtype == np.int64)
            and not any(isinstance(v, (bool, np.bool_)) for v in values))
    flat = flat.astype(np.int64) if fast else _checked_ids(seqs, label)
    flat = torch.from_numpy(flat)
    width = int(lengths.max()) if len(seqs) else 0
    padded = torch.zeros((len(seqs), width), dtype=torch.int64)
    # Flat element k of row r lands at r * width + (k - start of row r).
    starts = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts - torch.arange(len(seqs)) * width, lengths)
    padded.view(-1)[torch.arange(flat.numel()) - shift] = flat
    return padded, lengths


def _is_tensor_form(hyps: object, refs: object, name: str = "hyps") -> bool:
    if isinstance(hyps, Tensor) != isinstance(refs, Tensor):
        raise TypeError(f"{name} and refs must both be tensors or both be lists, got "
                        f"{type(hyps).__name__} and {type(refs).__name__}")
    return isinstance(hyps, Tensor)


def prepare_bleu_batch(
    hyps: TokenIds,
    refs: References,
    hyp_lengths: Tensor | None = None,
    ref_lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validates either calling form and returns the kernel's arguments.

    Returns ``hyps`` (B, L), ``hyp_lengths`` (B,), ``refs`` (B, R, L') and ``ref_lengths`` (B, R), all
    int64 on one device, where a reference length of -1 marks an absent reference.
    """
    if _is_tensor_form(hyps, refs):
        hyps_t = check_index_tensor(hyps, "hyps", (2,), "(B, L)")
        refs_t = check_index_tensor(refs, "refs", (2, 3), "(B, R, L') or (B, L')")
        check_same_device(refs_t, hyps_t, "refs", "hyps")
        if refs_t.dim() == 2:
            refs_t = refs_t.unsqueeze(1)
            if ref_lengths is not None and isinstance(ref_lengths, Tensor) and ref_lengths.dim() == 1:
                ref_lengths = ref_lengths.unsqueeze(1)
        batch = hyps_t.shape[0]
        if refs_t.shape[0] != batch:
            raise ValueError(f"refs holds {refs_t.shape[0]} rows but hyps holds {batch}")
        if hyp_lengths is None:
            hyp_len_t = torch.full((batch,), hyps_t.shape[1], dtype=torch.int64, device=hyps_t.device)
        else:
            hyp_len_t = check_index_tensor(hyp_lengths, "hyp_lengths", (1,), "(B,)")
            check_same_device(hyp_len_t, hyps_t, "hyp_lengths", "hyps")
            if hyp_len_t.shape[0] != batch:
                raise ValueError(f"hyp_lengths holds {hyp_len_t.shape[0]} entries but hyps holds {batch} rows")
        if ref_lengths is None:
            ref_len_t = torch.full(refs_t.shape[:2], refs_t.shape[2], dtype=torch.int64, device=refs_t.device)
        else:
            ref_len_t = check_index_tensor(ref_lengths, "ref_lengths", (2,), "(B, R)")
            check_same_device(ref_len_t, hyps_t, "ref_lengths", "hyps")
            if tuple(ref_len_t.shape) != tuple(refs_t.shape[:2]):
                raise ValueError(f"ref_lengths must have shape (B, R) = {tuple(refs_t.shape[:2])}, "
                                 f"got {tuple(ref_len_t.shape)}")
        if refs_t.shape[1] == 0:
            raise ValueError("refs must hold at least one reference per hypothesis (R = 0)")
        # The three value checks read one stacked flag tensor: one host sync on CUDA.
        bad_hyp = (hyp_len_t < 0) | (hyp_len_t > hyps_t.shape[1])
        bad_ref = (ref_len_t < 0) | (ref_len_t > refs_t.shape[2])
        no_reference = (ref_len_t == 0).all(dim=1)
        flags = torch.stack([bad_hyp.any(), bad_ref.any(), no_reference.any()]).tolist()
        if flags[0]:
            _check_lengths(hyp_len_t, 0, hyps_t.shape[1], "hyp_lengths", "hyps.size(1)")
        if flags[1]:
            _check_lengths(ref_len_t, 0, refs_t.shape[2], "ref_lengths", "refs.size(2)")
        if flags[2]:
            row = int(no_reference.nonzero()[0, 0])
            raise ValueError(f"ref_lengths: hypothesis {row} has no reference (all lengths are 0)")
        return hyps_t, hyp_len_t, refs_t, torch.where(ref_len_t == 0, -1, ref_len_t)

    if hyp_lengths is not None or ref_lengths is not None:
        raise ValueError("hyp_lengths and ref_lengths are only accepted with tensor inputs; "
                         "list inputs carry their own lengths")
    _check_sequence_list(hyps, "hyps", "token-id lists")
    _check_sequence_list(refs, "refs", "reference lists (one list of token-id lists per hypothesis)")
    for row, refs_of_row in enumerate(refs):
        if isinstance(refs_of_row, (str, bytes)):
            break  # reported below as text
        if not isinstance(refs_of_row, Sequence):
            raise TypeError(f"refs[{row}] must be a list of token-id lists (the references of hyps[{row}]), "
                            f"got {type(refs_of_row).__name__}")
    if len(hyps) != len(refs):
        raise ValueError(f"refs holds references for {len(refs)} hypotheses but hyps holds {len(hyps)}")
    if not len(hyps):
        return (torch.zeros(0, 0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                torch.zeros(0, 1, 0, dtype=torch.int64), torch.zeros(0, 1, dtype=torch.int64))
    hyps_t, hyp_len_t = _pad(hyps, "hyps")
    num_refs = torch.tensor([len(r) for r in refs], dtype=torch.int64)
    if bool((num_refs == 0).any()):
        raise ValueError(f"refs: hypothesis {int((num_refs == 0).nonzero()[0, 0])} has no reference")
    flat_refs = [ref for row in refs for ref in row]
    if any(isinstance(ref, (str, bytes)) for ref in flat_refs[:1]) or isinstance(refs[0], (str, bytes)):
        raise TypeError("refs must be lists of token-id lists, got strings; use mple_metrics.metrics.BLEU for text")
    # Errors name a reference by its own place, refs[b][r], not its place in the flat list.
    owners = [(b, r) for b, row in enumerate(refs) for r in range(len(row))]
    flat_t, flat_len = _pad(flat_refs, "refs", lambda k: f"refs[{owners[k][0]}][{owners[k][1]}]")
    # Rows with fewer than max_refs references get absent (-1) slots; empty ones are present (0).
    max_refs = int(num_refs.max()) if len(refs) else 1
    rows = torch.repeat_interleave(torch.arange(len(refs)), num_refs)
    starts = torch.cumsum(num_refs, 0) - num_refs
    cols = torch.arange(len(flat_refs)) - torch.repeat_interleave(starts, num_refs)
    refs_t = torch.zeros((len(hyps), max_refs, flat_t.shape[1]), dtype=torch.int64)
    ref_len_t = torch.full((len(hyps), max_refs), -1, dtype=torch.int64)
    refs_t[rows, cols] = flat_t
    ref_len_t[rows, cols] = flat_len
    return hyps_t, hyp_len_t, refs_t, ref_len_t


# ----------------------------------------------------------------------------- public ops


def bleu_stats(
    hyps: TokenIds,
    refs: References,
    hyp_lengths: Tensor | None = None,
    ref_lengths: Tensor | None = None,
) -> Tensor:
    """Per-pair BLEU sufficient statistics.

    Returns an int64 tensor (B, 10) on the device of ``hyps`` whose columns are
    :data:`STATS_FIELDS`: hypothesis length, closest reference length (ties to the shorter), and
    correct_n / total_n for n = 1..4, as sacrebleu counts them.
    """
    return torch.ops.mple.bleu_stats(*prepare_bleu_batch(hyps, refs, hyp_lengths, ref_lengths))


def bleu_from_stats(stats: Tensor, effective_order: bool = True) -> Tensor:
    """BLEU (0-100, float64, shape ``stats.shape[:-1]``) from statistics rows (..., 10)."""
    if not isinstance(stats, Tensor):
        raise TypeError(f"stats must be a torch.Tensor (..., 10), got {type(stats).__name__}")
    if stats.dim() < 1 or stats.shape[-1] != len(STATS_FIELDS):
        raise ValueError(f"stats must have shape (..., 10), got {tuple(stats.shape)}")
    if stats.dtype != torch.int64:
        raise TypeError(f"stats must be int64, got {stats.dtype}")
    check_data_device(stats, "stats")
    _check_stats_values(stats)
    return torch.ops.mple.bleu_from_stats(stats, check_flag(effective_order, "effective_order"))


def _combine(stats: Tensor, effective_order: object) -> Tensor:
    """:func:`bleu_from_stats` for statistics the kernels just produced (valid by construction, so
    no value check and no host sync)."""
    return torch.ops.mple.bleu_from_stats(stats, check_flag(effective_order, "effective_order"))


def _check_stats_values(stats: Tensor) -> None:
    """Statistics rows that no hypothesis can produce are refused (one host sync on CUDA).

    Every count is >= 0, correct_n <= total_n, total_1 = hyp_len (each token is one unigram) and
    total_n+1 <= total_n; these hold for a sentence's row and for any sum of rows.
    """
    correct, total = stats[..., 2:6], stats[..., 6:10]
    checks = torch.stack([
        (stats < 0).any(dim=-1),
        (correct > total).any(dim=-1),
        total[..., 0] != stats[..., 0],
        (total[..., 1:] > total[..., :-1]).any(dim=-1),
    ]).reshape(4, -1)
    failed = checks.any(dim=1).tolist()
    if not any(failed):
        return
    rule = failed.index(True)
    flat_row = int(checks[rule].nonzero()[0, 0])
    index = tuple(int(i) for i in np.unravel_index(flat_row, tuple(stats.shape[:-1]))) if stats.dim() > 1 else ()
    row = stats.reshape(-1, len(STATS_FIELDS))[flat_row].tolist()
    where = f"stats[{', '.join(map(str, index))}]" if index else "stats"
    reason = ("holds a negative count", "has correct_n > total_n for some n",
              "has total_1 != hyp_len (every hypothesis token is one unigram)",
              "has total_n+1 > total_n for some n")[rule]
    raise ValueError(f"{where} = {row} {reason}; columns are {', '.join(STATS_FIELDS)}")


def sentence_bleu(
    hyps: TokenIds,
    refs: References,
    hyp_lengths: Tensor | None = None,
    ref_lengths: Tensor | None = None,
    *,
    effective_order: bool = True,
) -> Tensor:
    """Sentence BLEU of each hypothesis against its references: float64 (B,), 0-100 scale.

    Equals ``sacrebleu.sentence_bleu(hyp, refs).score`` on the ids written as space-separated words.
    """
    return _combine(bleu_stats(hyps, refs, hyp_lengths, ref_lengths), effective_order)


def corpus_bleu(
    hyps: TokenIds,
    refs: References,
    hyp_lengths: Tensor | None = None,
    ref_lengths: Tensor | None = None,
    *,
    effective_order: bool = False,
) -> Tensor:
    """Corpus BLEU from summed statistics: a 0-dim float64 tensor on the 0-100 scale.

    Equals ``sacrebleu.corpus_bleu(hyps, ref_streams, tokenize='none').score`` on the same id strings.
    """
    stats = bleu_stats(hyps, refs, hyp_lengths, ref_lengths)
    return _combine(stats.sum(dim=0), effective_order)


def pairwise_bleu_stats(cands: Union[Tensor, Sequence[Sequence[Sequence[int]]]],
                        lengths: Tensor | None = None) -> Tensor:
    """Statistics (B, K, K, 10) of candidate i (hypothesis) against candidate j (single reference).

    ``cands`` is (B, K, L) with ``lengths`` (B, K), or a list of B lists of K id lists.  Each
    candidate's n-gram counts are computed once and reused for all K pairs it takes part in.
    """
    if isinstance(cands, Tensor):
        cands_t = check_index_tensor(cands, "cands", (3,), "(B, K, L)")
        if lengths is None:
            len_t = torch.full(cands_t.shape[:2], cands_t.shape[2], dtype=torch.int64, device=cands_t.device)
        else:
            len_t = check_index_tensor(lengths, "lengths", (2,), "(B, K)")
            check_same_device(len_t, cands_t, "lengths", "cands")
            if tuple(len_t.shape) != tuple(cands_t.shape[:2]):
                raise ValueError(f"lengths must have shape (B, K) = {tuple(cands_t.shape[:2])}, "
                                 f"got {tuple(len_t.shape)}")
        _check_lengths(len_t, 0, cands_t.shape[2], "lengths", "cands.size(2)")
    else:
        if lengths is not None:
            raise ValueError("lengths is only accepted with a tensor cands")
        _check_sequence_list(cands, "cands", "candidate lists (K token-id lists per source)")
        for row, cands_of_row in enumerate(cands):
            if isinstance(cands_of_row, (str, bytes)) or not isinstance(cands_of_row, Sequence):
                raise TypeError(f"cands[{row}] must be a list of K token-id lists, "
                                f"got {type(cands_of_row).__name__}")
        sizes = {len(row) for row in cands}
        if len(sizes) > 1:
            raise ValueError(f"cands must hold the same number K of candidates per source, got {sorted(sizes)}")
        k = sizes.pop() if sizes else 0
        owners = [(b, i) for b, row in enumerate(cands) for i in range(len(row))]
        flat, flat_len = _pad([c for row in cands for c in row], "cands",
                              lambda k: f"cands[{owners[k][0]}][{owners[k][1]}]")
        cands_t = flat.view(len(cands), k, flat.shape[1])
        len_t = flat_len.view(len(cands), k)
    return torch.ops.mple.pairwise_bleu_stats(cands_t, len_t)


def pairwise_bleu(cands: Union[Tensor, Sequence[Sequence[Sequence[int]]]],
                  lengths: Tensor | None = None, *, effective_order: bool = True) -> Tensor:
    """Pairwise sentence BLEU among K candidates per source: float64 (B, K, K), 0-100 scale.

    Entry [b, i, j] is the sentence BLEU of candidate i as hypothesis against candidate j as the only
    reference; the diagonal is 100 for non-empty candidates.  Used by dynamic KD (Eq. 21).
    """
    return _combine(pairwise_bleu_stats(cands, lengths), effective_order)
