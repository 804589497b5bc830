"""Property-based tests of the BLEU ops on token ids: every drawn input either scores exactly what
sacrebleu scores on the ids written as space-separated words (tokenize='none', smooth 'exp', effective
order for sentences), or raises the documented ValueError / TypeError naming the argument.

Drawn: batches of 0-4 hypotheses with 1-3 references each, ragged and empty sentences, ids from a
small pool (so that n-grams match) mixed with ids at the int32 and int64 limits; tensor forms in every
accepted integer dtype that holds the ids, with garbage padding, absent references, permuted, strided
and stride-0 layouts; statistics rows valid or breaking one rule; ids outside int64 and non-integer ids.
Runs in a child process (see property_isolation.py).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from sacrebleu.metrics import BLEU

from mple_metrics.ops import (
    STATS_FIELDS,
    bleu_from_stats,
    bleu_stats,
    corpus_bleu,
    pairwise_bleu,
    pairwise_bleu_stats,
    sentence_bleu,
)
from mple_metrics.ops.reference.bleu import ids_to_text, sacrebleu_sentence, sacrebleu_stats
from property_isolation import record_example
from property_strategies import EXTREME_IDS, INT64_MAX, INT64_MIN, arrange, index_tensor

TOL = 1e-9
SENTENCE_NO_EFFECTIVE_ORDER = BLEU(tokenize="none", effective_order=False)
CORPUS = BLEU(tokenize="none", effective_order=False)
CORPUS_EFFECTIVE_ORDER = BLEU(tokenize="none", effective_order=True)


def assert_score(got: float, expected: float, what: str) -> None:
    assert math.isfinite(got) and abs(got - expected) <= TOL * max(1.0, abs(expected)), \
        f"{what}: got {got!r}, sacrebleu {expected!r}"


def ref_streams(refs):
    """sacrebleu's reference streams; rows with fewer references are padded with None (skipped)."""
    width = max(len(row) for row in refs)
    return [[ids_to_text(row[k]) if k < len(row) else None for row in refs] for k in range(width)]


# ----------------------------------------------------------------------------- strategies


@st.composite
def id_pools(draw):
    """A few distinct ids: small ones (frequent matches) mixed with ids at the int32/int64 limits."""
    ids = st.one_of(st.integers(0, 4), st.sampled_from(EXTREME_IDS), st.integers(INT64_MIN, INT64_MAX))
    return draw(st.lists(ids, min_size=1, max_size=5, unique=True))


@st.composite
def sentences(draw, pool, base=None, max_len=8):
    """A fresh sentence over ``pool``, or (with ``base``) an edited copy or a slice of it, so that
    higher-order n-grams match too."""
    kind = draw(st.sampled_from(["fresh", "edit", "slice"] if base is not None else ["fresh"]))
    token = st.sampled_from(pool)
    if kind == "edit":
        out = [tok if draw(st.integers(0, 3)) else draw(token) for tok in base]
        return out + draw(st.lists(token, max_size=2))
    if kind == "slice":
        a, b = sorted(draw(st.lists(st.integers(0, len(base)), min_size=2, max_size=2)))
        return list(base[a:b])
    return draw(st.lists(token, max_size=max_len))


@st.composite
def bleu_batches(draw, min_batch=1, max_batch=4, max_refs=3):
    """(hyps, refs): B hypotheses with 1..max_refs references each, as lists of Python ints."""
    pool = draw(id_pools())
    hyps, refs = [], []
    for _ in range(draw(st.integers(min_batch, max_batch))):
        hyp = draw(sentences(pool))
        hyps.append(hyp)
        refs.append([draw(sentences(pool, base=hyp)) for _ in range(draw(st.integers(1, max_refs)))])
    return hyps, refs


def padded(draw, seqs, width, pad):
    return [list(s) + [pad] * (width - len(s)) for s in seqs]


# ----------------------------------------------------------------------------- properties


@given(bleu_batches())
def test_list_form_equals_sacrebleu(batch):
    hyps, refs = batch
    record_example(hyps=hyps, refs=refs)
    stats = bleu_stats(hyps, refs)
    sentence = sentence_bleu(hyps, refs)
    sentence_plain = sentence_bleu(hyps, refs, effective_order=False)
    assert stats.dtype == torch.int64 and stats.shape == (len(hyps), len(STATS_FIELDS))
    assert sentence.dtype == torch.float64 and sentence.shape == (len(hyps),)
    for b, (hyp, row) in enumerate(zip(hyps, refs)):
        expected = sacrebleu_sentence(hyp, row)
        assert stats[b].tolist() == sacrebleu_stats(expected), f"statistics of row {b}"
        assert_score(float(sentence[b]), expected.score, f"sentence_bleu row {b}")
        plain = SENTENCE_NO_EFFECTIVE_ORDER.sentence_score(ids_to_text(hyp), [ids_to_text(r) for r in row])
        assert_score(float(sentence_plain[b]), plain.score, f"sentence_bleu(effective_order=False) row {b}")
    texts = [ids_to_text(h) for h in hyps]
    assert_score(float(corpus_bleu(hyps, refs)), CORPUS.corpus_score(texts, ref_streams(refs)).score,
                 "corpus_bleu")
    assert_score(float(corpus_bleu(hyps, refs, effective_order=True)),
                 CORPUS_EFFECTIVE_ORDER.corpus_score(texts, ref_streams(refs)).score,
                 "corpus_bleu(effective_order=True)")


@given(st.data())
def test_tensor_form_equals_sacrebleu(data):
    draw = data.draw
    hyps, refs = draw(bleu_batches(min_batch=0))
    batch = len(hyps)
    # In tensor form a length-0 reference is absent.  Three batches in four drop their empty
    # references (keeping one per row), the others keep them: a row without any is an error.
    if draw(st.integers(0, 3)):
        refs = [[r for r in row if r] or [row[0] or [0]] for row in refs]
    pad = draw(st.one_of(st.sampled_from(EXTREME_IDS), st.integers(-1, 7)))
    width = max([len(h) for h in hyps] + [0]) + draw(st.integers(0, 2))
    ref_width = max([len(r) for row in refs for r in row] + [0]) + draw(st.integers(0, 2))
    num_refs = max([len(row) for row in refs] + [1]) + draw(st.integers(0, 1))
    ids = [t for h in hyps for t in h] + [t for row in refs for r in row for t in r] + [pad]
    low, high = min(ids), max(ids)
    hyps_t = index_tensor(draw, padded(draw, hyps, width, pad), low, high).reshape(batch, width)
    rows = [padded(draw, row, ref_width, pad) + [[pad] * ref_width] * (num_refs - len(row)) for row in refs]
    refs_t = index_tensor(draw, rows, low, high).reshape(batch, num_refs, ref_width)
    hyp_len = index_tensor(draw, [len(h) for h in hyps], 0, 255).reshape(batch)
    ref_len = index_tensor(draw, [[len(r) for r in row] + [0] * (num_refs - len(row)) for row in refs],
                           0, 255).reshape(batch, num_refs)
    hyps_t, refs_t = arrange(draw, hyps_t, pad), arrange(draw, refs_t, pad)
    hyp_len, ref_len = arrange(draw, hyp_len), arrange(draw, ref_len)
    # The expectation is read back from the tensors as the op receives them (layouts may repeat values).
    hl, rl = hyp_len.tolist(), ref_len.tolist()
    hyp_lists = [hyps_t[b, :hl[b]].tolist() for b in range(batch)]
    ref_lists = [[refs_t[b, k, :rl[b][k]].tolist() for k in range(num_refs) if rl[b][k] > 0]
                 for b in range(batch)]
    args = [hyps_t, refs_t, hyp_len, ref_len]
    if all(n == width for n in hl) and draw(st.booleans()):
        args[2] = None  # omitted: the full padded width
    if all(n == ref_width for row in rl for n in row) and draw(st.booleans()):
        args[3] = None
    if num_refs == 1 and draw(st.booleans()):  # a 2-D refs (B, L') is one reference per row
        args[1] = refs_t[:, 0]
        args[3] = None if args[3] is None else ref_len[:, 0]
    record_example(hyps=args[0], refs=args[1], hyp_lengths=args[2], ref_lengths=args[3])

    if any(not row for row in ref_lists):
        event("outcome: a row without references")
        row = next(b for b, r in enumerate(ref_lists) if not r)
        with pytest.raises(ValueError, match=rf"ref_lengths: hypothesis {row} has no reference"):
            sentence_bleu(*args)
        return
    event(f"outcome: compared ({hyps_t.dtype}, {'non-zero' if any(map(bool, hyp_lists)) else 'zero'} hyps)")
    sentence = sentence_bleu(*args)
    assert sentence.shape == (batch,) and sentence.dtype == torch.float64
    for b in range(batch):
        expected = sacrebleu_sentence(hyp_lists[b], ref_lists[b])
        assert_score(float(sentence[b]), expected.score, f"row {b}")
    corpus = float(corpus_bleu(*args))
    if batch:
        texts = [ids_to_text(h) for h in hyp_lists]
        assert_score(corpus, CORPUS.corpus_score(texts, ref_streams(ref_lists)).score, "corpus_bleu")
    else:
        assert corpus == 0.0  # sacrebleu cannot score an empty corpus; no statistics score 0


@given(st.data())
def test_pairwise_equals_sacrebleu(data):
    draw = data.draw
    pool = draw(id_pools())
    batch, k = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    cands = []
    for _ in range(batch):
        first = draw(sentences(pool))
        cands.append([first] + [draw(sentences(pool, base=first)) for _ in range(k - 1)] if k else [])
    tensor_form = draw(st.booleans())
    if tensor_form:
        pad = draw(st.sampled_from(EXTREME_IDS))
        width = max([len(c) for row in cands for c in row] + [0]) + draw(st.integers(0, 2))
        ids = [t for row in cands for c in row for t in c] + [pad]
        cands_t = index_tensor(draw, [padded(draw, row, width, pad) for row in cands], min(ids), max(ids))
        cands_t = arrange(draw, cands_t.reshape(batch, k, width), pad)
        lengths = arrange(draw, index_tensor(draw, [[len(c) for c in row] for row in cands], 0, 255)
                          .reshape(batch, k))
        cands = [[cands_t[b, i, :int(lengths[b, i])].tolist() for i in range(k)] for b in range(batch)]
        args = (cands_t, lengths)
    else:
        args = (cands,)
    if not tensor_form and batch == 0:
        k = 0  # an empty list says nothing about K
    record_example(cands=args[0], lengths=args[1] if tensor_form else None)
    stats = pairwise_bleu_stats(*args)
    scores = pairwise_bleu(*args)
    assert scores.shape == (batch, k, k) and stats.shape == (batch, k, k, len(STATS_FIELDS))
    for b in range(batch):
        for i in range(k):
            for j in range(k):
                expected = sacrebleu_sentence(cands[b][i], [cands[b][j]])
                assert stats[b, i, j].tolist() == sacrebleu_stats(expected), f"stats [{b}, {i}, {j}]"
                assert_score(float(scores[b, i, j]), expected.score, f"pairwise [{b}, {i}, {j}]")


STAT_RULES = ("negative", "correct_above_total", "total_1_not_hyp_len", "total_increases")
RULE_REASONS = {
    "negative": "holds a negative count",
    "correct_above_total": "has correct_n > total_n for some n",
    "total_1_not_hyp_len": "has total_1 != hyp_len",
    "total_increases": "has total_n+1 > total_n for some n",
}


def broken_rules(row: list[int]) -> set[str]:
    hyp_len, correct, total = row[0], row[2:6], row[6:10]
    broken = set()
    if any(v < 0 for v in row):
        broken.add("negative")
    if any(c > t for c, t in zip(correct, total)):
        broken.add("correct_above_total")
    if total[0] != hyp_len:
        broken.add("total_1_not_hyp_len")
    if any(total[n + 1] > total[n] for n in range(3)):
        broken.add("total_increases")
    return broken


@st.composite
def stats_rows(draw):
    """A statistics row that sentences could sum to, or one that breaks a drawn rule."""
    big = draw(st.sampled_from([10, 1000, 2**40, 2**62]))
    hyp_len = draw(st.integers(0, big))
    total = [hyp_len]
    for _ in range(3):
        total.append(draw(st.integers(0, total[-1])))
    correct = [draw(st.integers(0, t)) for t in total]
    row = [hyp_len, draw(st.integers(0, big)), *correct, *total]
    rule = draw(st.sampled_from((None, None, None) + STAT_RULES))
    if rule == "negative":
        row[draw(st.integers(0, 9))] = draw(st.integers(INT64_MIN, -1))
    elif rule == "correct_above_total":
        n = draw(st.integers(0, 3))
        row[2 + n] = row[6 + n] + draw(st.integers(1, 2**40))
    elif rule == "total_1_not_hyp_len":
        row[6] = row[0] + draw(st.sampled_from([-1, 1, 2**40]))
    elif rule == "total_increases":
        n = draw(st.integers(1, 3))
        row[6 + n] = row[5 + n] + draw(st.integers(1, 5))
    return row


@given(st.data())
def test_bleu_from_stats_equals_sacrebleu_or_names_the_broken_row(data):
    draw = data.draw
    prefix = draw(st.sampled_from([(), (0,), (1,), (3,), (2, 2), (1, 3)]))
    rows = [draw(stats_rows()) for _ in range(math.prod(prefix))]
    stats = arrange(draw, torch.tensor(rows, dtype=torch.int64).reshape(*prefix, len(STATS_FIELDS)))
    effective_order = draw(st.sampled_from([True, False, np.bool_(True), np.bool_(False)]))
    record_example(stats=stats, effective_order=effective_order)
    flat = stats.reshape(-1, len(STATS_FIELDS)).tolist()  # as the op receives it
    event(f"outcome: {'refused' if any(broken_rules(row) for row in flat) else 'compared'}")
    if any(broken_rules(row) for row in flat):
        with pytest.raises(ValueError) as raised:
            bleu_from_stats(stats, effective_order)
        message = str(raised.value)
        found = re.match(r"stats(?:\[([\d, ]+)\])? = \[[-\d, ]+\] (.*); columns are", message)
        assert found, message
        index = tuple(int(i) for i in found.group(1).split(",")) if found.group(1) else ()
        row = stats[index].tolist() if index else stats.tolist()
        assert any(found.group(2).startswith(RULE_REASONS[r]) for r in broken_rules(row)), \
            f"{message!r} names {row}, which breaks {broken_rules(row)}"
        return
    got = bleu_from_stats(stats, effective_order)
    assert got.shape == prefix and got.dtype == torch.float64
    for index, row in zip(np.ndindex(*prefix), flat):
        expected = BLEU.compute_bleu(row[2:6], row[6:10], row[0], row[1], smooth_method="exp",
                                     effective_order=bool(effective_order)).score
        assert_score(float(got[index]), expected, f"stats{list(index)} = {row}")


BAD_IDS = st.one_of(
    st.integers(INT64_MAX + 1, 2**70), st.integers(-(2**70), INT64_MIN - 1),
    st.sampled_from([2**63, 2**64 - 1, 2**64, INT64_MIN - 1]),
    st.integers(2**63, 2**64 - 1).map(np.uint64),
)
NON_INTEGER_IDS = st.sampled_from([1.0, 2.5, float("nan"), np.float64(3.0), "5", b"5", None, [1], 1j, True,
                                   np.bool_(False)])


@given(bleu_batches(), st.data())
def test_ids_outside_int64_or_not_integers_are_refused_by_entry(batch, data):
    draw = data.draw
    hyps, refs = batch
    where = draw(st.sampled_from(["hyps", "refs"]))
    if where == "hyps":
        b = draw(st.integers(0, len(hyps) - 1))
        hyps[b] = hyps[b] + [0]
        col = draw(st.integers(0, len(hyps[b]) - 1))
        target, name = hyps[b], f"hyps[{b}][{col}]"
    else:
        b = draw(st.integers(0, len(refs) - 1))
        r = draw(st.integers(0, len(refs[b]) - 1))
        refs[b][r] = refs[b][r] + [0]
        col = draw(st.integers(0, len(refs[b][r]) - 1))
        target, name = refs[b][r], f"refs[{b}][{r}][{col}]"
    out_of_range = draw(st.booleans())
    target[col] = draw(BAD_IDS if out_of_range else NON_INTEGER_IDS)
    record_example(hyps=hyps, refs=refs)
    if out_of_range:
        with pytest.raises(ValueError) as raised:
            sentence_bleu(hyps, refs)
        assert f"= {int(target[col])} is outside the int64 range" in str(raised.value)
    else:
        with pytest.raises(TypeError) as raised:
            sentence_bleu(hyps, refs)
        assert "is not an integer token id" in str(raised.value)
    assert name in str(raised.value), str(raised.value)
    if where == "hyps":
        assert str(raised.value).startswith(f"hyps[{b}][{col}] = "), str(raised.value)


@given(bleu_batches(), st.data())
def test_numpy_signed_integer_ids_score_as_python_ints(batch, data):
    hyps, refs = batch
    expected = sentence_bleu(hyps, refs)

    def as_numpy(seq):
        dtypes = [d for d in (np.int8, np.int16, np.int32, np.int64)
                  if all(np.iinfo(d).min <= t <= np.iinfo(d).max for t in seq)]
        dtype = data.draw(st.sampled_from(dtypes))
        return np.array(seq, dtype=dtype) if data.draw(st.booleans()) else [dtype(t) for t in seq]

    np_hyps = [as_numpy(h) for h in hyps]
    np_refs = [[as_numpy(r) for r in row] for row in refs]
    record_example(hyps=np_hyps, refs=np_refs)
    torch.testing.assert_close(sentence_bleu(np_hyps, np_refs), expected, rtol=0, atol=0)


NOT_BOOLS = st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=3), st.none(),
                      st.sampled_from(["yes", "no", "", [], [True], np.int64(1), torch.tensor(True)]))


@given(NOT_BOOLS, st.sampled_from(["sentence_bleu", "corpus_bleu", "pairwise_bleu", "bleu_from_stats"]))
def test_effective_order_must_be_a_bool(value, op):
    record_example(effective_order=value, op=op)
    call = {
        "sentence_bleu": lambda: sentence_bleu([[1, 2]], [[[1, 2]]], effective_order=value),
        "corpus_bleu": lambda: corpus_bleu([[1, 2]], [[[1, 2]]], effective_order=value),
        "pairwise_bleu": lambda: pairwise_bleu([[[1, 2], [2]]], effective_order=value),
        "bleu_from_stats": lambda: bleu_from_stats(torch.zeros(10, dtype=torch.int64), value),
    }[op]
    with pytest.raises(TypeError, match="effective_order must be True or False"):
        call()


# ----------------------------------------------------------------------------- fixed examples


@pytest.mark.parametrize("call", [
    lambda m: bleu_stats(torch.zeros(2, 3, dtype=torch.long, device=m), torch.zeros(2, 3, dtype=torch.long)),
    lambda m: sentence_bleu(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 1, 3, dtype=torch.long, device=m)),
    lambda m: pairwise_bleu(torch.zeros(1, 2, 3, dtype=torch.long, device=m)),
    lambda m: bleu_from_stats(torch.zeros(10, dtype=torch.long, device=m)),
], ids=["bleu_stats-hyps", "sentence_bleu-refs", "pairwise_bleu", "bleu_from_stats"])
def test_meta_tensors_are_refused_by_name(call):
    with pytest.raises(ValueError, match=r"(hyps|refs|cands|stats) is on the meta device"):
        call("meta")


@pytest.mark.parametrize("hyps", [[np.array([1, 2], dtype=np.uint32)], [np.array([1, 2], dtype=np.uint16)],
                                  [[np.uint64(1), 2]], [[np.uint64(1), -1, 2]]],
                         ids=["uint32-array", "uint16-array", "uint64-scalar", "uint64-and-negative"])
def test_numpy_unsigned_ids_within_int64_are_accepted(hyps):
    expected = sacrebleu_sentence([int(t) for t in hyps[0]], [[1, 2]]).score
    assert_score(float(sentence_bleu(hyps, [[[1, 2]]])[0]), expected, "numpy unsigned ids")


def test_a_bad_reference_id_is_named_by_its_own_index():
    with pytest.raises(ValueError, match=re.escape("refs[0][1][1] = 18446744073709551616")):
        sentence_bleu([[5]], [[[5], [6, 2**64]]])


@pytest.mark.parametrize("flag", [True, np.bool_(True)], ids=["bool", "numpy-bool"])
def test_bool_ids_mixed_with_ints_are_refused(flag):
    with pytest.raises(TypeError, match=re.escape("hyps[0][0] = True is not an integer token id")):
        sentence_bleu([[flag, 0]], [[[1, 0]]])
