"""Property-based tests of the OaXE loss, its gradient and its proxy target on tiny sentences, against
brute force over every ordering of the target: every drawn batch either gives the least total
-log P_j(Y_sigma(j)) over all permutations sigma (with T* = Y_sigma an optimal reordering, the
gradient -1 exactly on the chosen log-probs and truncation dropping exactly the terms below ln p), or
raises the documented ValueError: a target id outside [0, V) named targets[b, j]; a NaN or +inf
log-prob that the assignment reads named log_probs[b, j, v]; a sentence whose every ordering meets a
zero probability ("every ordering"); a finite log-prob beyond the exact assignment's range.

Drawn: batches of 0-3 sentences with L in 0..5 and ragged (also zero) lengths, V in 0..6, repeated
target tokens; log-probs from log_softmax, from extremes (0, -0, subnormals, -1e300, -1e308, -DBL_MAX,
-inf), with NaN / +inf inside and outside what the assignment reads, or mostly -inf; float32 and
float64; permuted, strided and stride-0 layouts.  Runs in a child process (see property_isolation.py).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from mple_metrics.ops import oaxe_align, oaxe_loss
from mple_metrics.ops.lap import cost_magnitude_limit
from property_isolation import record_example
from property_strategies import (
    FLT_MAX,
    INT32_MIN,
    NONPOSITIVE_EXTREMES_32,
    NONPOSITIVE_EXTREMES_64,
    arrange,
    float_tensor,
    index_tensor,
    scaled,
)

INF, NAN = math.inf, math.nan
ULP, EPS32 = 2.0**-52, 2.0**-23


# ----------------------------------------------------------------------------- strategies


@st.composite
def oaxe_batches(draw):
    """(log_probs, targets, lengths, mode)."""
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    batch, width = draw(st.integers(0, 3)), draw(st.integers(0, 5))
    vocab = draw(st.integers(0, 6)) if draw(st.integers(0, 19)) == 0 else draw(st.integers(1, 6))
    mode = draw(st.sampled_from(["softmax", "extreme", "invalid", "hopeless"]))
    extremes = (NONPOSITIVE_EXTREMES_64 if dtype == torch.float64 else NONPOSITIVE_EXTREMES_32) + (-INF,)
    shape = (batch, width, vocab)
    if mode == "softmax" and vocab:
        log_probs = float_tensor(draw, shape, st.floats(-30, 30), torch.float64).log_softmax(-1).to(dtype)
    else:
        elements = st.sampled_from(extremes)
        if mode == "invalid":
            elements = st.one_of(elements, elements, st.sampled_from([NAN, INF]))
        elif mode == "hopeless":  # mostly zero probabilities: infeasible sentences
            elements = st.one_of(st.just(-INF), st.just(-INF), elements)
        log_probs = float_tensor(draw, shape, elements, dtype)
    lengths = draw(st.lists(st.integers(0, width), min_size=batch, max_size=batch))
    for b, n in enumerate(lengths):  # padding predictions hold garbage that must never be read
        log_probs[b, n:] = draw(st.sampled_from([NAN, INF, -INF, 0.0]))
    garbage_id = draw(st.sampled_from([-1, vocab, vocab + 100, INT32_MIN, 2**40]))
    targets = [[draw(st.integers(0, vocab - 1)) if j < lengths[b] and vocab else garbage_id
                for j in range(width)] for b in range(batch)]
    targets = index_tensor(draw, targets, min(garbage_id, 0), max(garbage_id, vocab)).reshape(batch, width)
    lengths_t = index_tensor(draw, lengths, 0, 255).reshape(batch)
    return (arrange(draw, log_probs), arrange(draw, targets, garbage=garbage_id), arrange(draw, lengths_t),
            mode)


# ----------------------------------------------------------------------------- the independent model


def expected_error(log_probs, targets, lengths) -> str | None:
    """The message the ops must raise (its start), from the definitions, or None."""
    batch, width, vocab = log_probs.shape
    lp = log_probs.double()
    tg, ln = targets.long().tolist(), lengths.long().tolist()
    for b in range(batch):
        for j in range(ln[b]):
            if not 0 <= tg[b][j] < vocab:
                return f"targets[{b}, {j}] = {tg[b][j]} is not a token id in [0, V = {vocab})"
    if vocab == 0:
        return None
    for b in range(batch):
        for j in range(ln[b]):
            for i in range(ln[b]):
                value = float(lp[b, j, tg[b][i]])
                if math.isnan(value) or value == INF:
                    return f"log_probs[{b}, {j}, {tg[b][i]}] = "
    for b in range(batch):
        n = ln[b]
        if not n:
            continue
        cost = -lp[b, :n][:, tg[b][:n]].numpy()
        finite = np.abs(cost[np.isfinite(cost)])
        if finite.size and finite.max() > cost_magnitude_limit(n, n):
            return f"sentence {b}: log_probs holds a finite value"
        if all(not np.isfinite(cost[np.arange(n), list(p)]).all() for p in itertools.permutations(range(n))):
            return f"sentence {b}: every ordering of its {n} target tokens gives some prediction a zero probability"
    return None


def best_total(cost: np.ndarray) -> float:
    """min over permutations sigma of the exactly rounded sum of cost[j, sigma(j)]."""
    n = cost.shape[0]
    return min(math.fsum(cost[np.arange(n), list(p)]) for p in itertools.permutations(range(n)))


def tolerance(cost: np.ndarray, expected: float, dtype: torch.dtype) -> float:
    finite = np.abs(cost[np.isfinite(cost)])
    largest = float(finite.max()) if finite.size else 0.0
    n = cost.shape[0]
    tol = 1e-9 * (1.0 + abs(expected)) + 4.0 * (2 * n + 1) ** 2 * ULP * largest
    if dtype == torch.float32:  # the loss sums float32 terms in float32
        tol += 2 * (n + 1) * EPS32 * (n * largest)
    return tol


def assert_total(got: float, expected: float, cost: np.ndarray, dtype: torch.dtype, what: str) -> None:
    tol = tolerance(cost, expected, dtype)
    if dtype == torch.float32 and expected >= FLT_MAX / (1 + 4 * (cost.shape[0] + 1) * EPS32):
        assert got == INF or abs(got - expected) <= tol, f"{what}: {got!r} vs brute force {expected!r}"
    else:
        assert abs(got - expected) <= tol, f"{what}: {got!r} vs brute force {expected!r} (tolerance {tol:.3g})"


# ----------------------------------------------------------------------------- properties


@scaled(1.5)
@given(oaxe_batches(), st.sampled_from([None, 1.0, 0.5, 1e-3, 1e-300]))
def test_loss_proxy_and_gradient_equal_brute_force_over_orderings(case, truncate):
    log_probs, targets, lengths, mode = case
    record_example(log_probs=log_probs, targets=targets, lengths=lengths, truncate=truncate)
    message = expected_error(log_probs, targets, lengths)
    if message is not None:
        kind = next(k for k in ("targets[", "log_probs[", "every ordering", "finite value") if k in message)
        event(f"outcome: error {kind.strip('[')}")
        for op in (lambda: oaxe_loss(log_probs, targets, lengths), lambda: oaxe_align(log_probs, targets, lengths)):
            with pytest.raises(ValueError) as raised:
                op()
            assert str(raised.value).startswith(message), f"expected {message!r}..., got {raised.value}"
        return
    event(f"outcome: compared ({mode}, {log_probs.dtype})")
    dtype = log_probs.dtype
    leaf = log_probs.detach().clone().requires_grad_(dtype == torch.float64)
    loss = oaxe_loss(leaf, targets, lengths, reduction="none")
    proxy = oaxe_align(log_probs, targets, lengths)
    values = loss.detach().double().tolist()
    assert loss.shape == (log_probs.shape[0],) and loss.dtype == dtype
    assert proxy.shape == targets.shape and proxy.dtype == torch.int64
    lp = log_probs.double()
    tg, ln = targets.long().tolist(), lengths.long().tolist()
    totals = []
    for b, n in enumerate(ln):
        row = proxy[b].tolist()
        assert row[n:] == tg[b][n:], f"sentence {b}: positions past the length must keep the targets"
        assert Counter(row[:n]) == Counter(tg[b][:n]), f"sentence {b}: T* {row[:n]} reorders {tg[b][:n]}?"
        if not n:
            assert values[b] == 0.0
            totals.append(0.0)
            continue
        cost = -lp[b, :n][:, tg[b][:n]].numpy()
        expected = best_total(cost)
        picked = [float(-lp[b, j, row[j]]) for j in range(n)]
        assert_total(math.fsum(picked), expected, cost, dtype, f"sentence {b}: cost of T* {row[:n]}")
        assert_total(values[b], expected, cost, dtype, f"sentence {b}: loss")
        totals.append(values[b])
        if truncate is not None:
            ln_p = math.log(truncate)
            kept = [c for c in picked if -c >= ln_p]
            got = float(oaxe_loss(log_probs, targets, lengths, truncate=truncate, reduction="none")[b])
            assert_total(got, math.fsum(kept), cost, dtype, f"sentence {b}: loss truncated at p = {truncate}")
    if dtype == torch.float64 and leaf.shape[0] and bool(torch.isfinite(loss).all()):
        loss.sum().backward()
        grad = torch.zeros_like(lp)
        for b, n in enumerate(ln):
            for j in range(n):
                grad[b, j, proxy[b, j]] = -1.0
        torch.testing.assert_close(leaf.grad, grad, rtol=0, atol=0)
    if all(math.isfinite(t) for t in totals):
        tokens = max(sum(ln), 1)
        summed = float(oaxe_loss(log_probs, targets, lengths, reduction="sum"))
        mean = float(oaxe_loss(log_probs, targets, lengths, reduction="mean"))
        scale = 1e-12 if dtype == torch.float64 else 8 * (len(totals) + 1) * EPS32
        atol = 1e-300 if dtype == torch.float64 else 1e-44  # float32 subnormals round to 1.4e-45
        exact = math.fsum(totals)
        if dtype == torch.float32 and abs(exact) >= FLT_MAX / (1 + scale):
            assert summed == INF or abs(summed - exact) <= scale * abs(exact)
        else:
            assert abs(summed - exact) <= scale * abs(exact) + atol, (summed, exact)
            assert abs(mean - exact / tokens) <= scale * abs(exact / tokens) + atol, (mean, exact / tokens)


@pytest.mark.parametrize("which", ["log_probs", "targets", "lengths"])
def test_meta_tensors_are_refused_by_name(which):
    device = {name: "meta" if name == which else "cpu" for name in ("log_probs", "targets", "lengths")}
    log_probs = torch.zeros(1, 2, 3, device=device["log_probs"])
    targets = torch.zeros(1, 2, dtype=torch.int64, device=device["targets"])
    lengths = torch.full((1,), 2, dtype=torch.int64, device=device["lengths"])
    match = "log_probs is on the meta device" if which == "log_probs" else f"{which} is on meta"
    with pytest.raises(ValueError, match=match):
        oaxe_loss(log_probs, targets, lengths)


def test_an_empty_vocabulary_batch_backpropagates_zeros():
    log_probs = torch.zeros(2, 3, 0, dtype=torch.float64, requires_grad=True)
    oaxe_loss(log_probs, torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)).backward()
    assert torch.equal(log_probs.grad, torch.zeros_like(log_probs))


def test_truncation_compares_float32_log_probs_with_ln_p_itself():
    log_probs = torch.tensor([[[math.log(0.5)]]], dtype=torch.float32)
    assert float(log_probs) < math.log(0.5)  # float32(ln 0.5) = -0.69314718246...
    loss = oaxe_loss(log_probs, torch.tensor([[0]]), torch.tensor([1]), truncate=0.5, reduction="sum")
    assert float(loss) == 0.0
