"""Property-based tests of the AXE loss, its gradient and its proxy target: every drawn batch either
equals the float64 reference DP (mple_metrics/ops/reference/axe.py) or raises the documented
ValueError: NaN or +inf among the log-probs the DP reads (the blank's and the targets' log-probs at
the first Lp_b predictions), or a bad argument named.

Drawn: batches of 0-3 sequences with Lp, Ly in 0..5 and ragged (also zero) lengths, V in 1..4 (targets
often equal the blank), skip penalties including 0; log-probs from log_softmax of random logits, or
from extremes (0, -0, subnormals, -1e308, -DBL_MAX, -inf), with NaN / +inf inside and outside what the
DP reads, and (float64) out-of-contract positive values up to DBL_MAX; float32 and float64; permuted,
strided and stride-0 layouts of every tensor.  Runs in a child process (see property_isolation.py).

float64 losses must equal the reference to 1e-12 (the same additions in the same order), and the
gradient and T* must be the reference's.  float32 runs the DP in float32, so its loss is compared to
the float64 reference within float32 rounding of a path of Lp + Ly terms (and may be +inf where the
float64 cost exceeds FLT_MAX).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from mple_metrics.ops import axe_align, axe_loss
from mple_metrics.ops.reference.axe import axe_align_reference, axe_loss_reference
from property_isolation import record_example
from property_strategies import (
    DBL_MAX,
    DBL_TRUE_MIN,
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
EPS32 = 2.0**-23


# ----------------------------------------------------------------------------- strategies


@st.composite
def axe_batches(draw):
    """(log_probs, targets, pred_lengths, target_lengths, blank, skip_penalty, mode)."""
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    batch, pred_width, target_width = draw(st.integers(0, 3)), draw(st.integers(0, 5)), draw(st.integers(0, 5))
    vocab = draw(st.integers(1, 4))
    modes = ["softmax", "extreme", "invalid"] + (["positive"] if dtype == torch.float64 else [])
    mode = draw(st.sampled_from(modes))
    extremes = NONPOSITIVE_EXTREMES_64 if dtype == torch.float64 else NONPOSITIVE_EXTREMES_32
    shape = (batch, pred_width, vocab)
    if mode == "softmax":
        logits = float_tensor(draw, shape, st.floats(-30, 30), torch.float64)
        log_probs = logits.log_softmax(-1).to(dtype)
    else:
        elements = st.sampled_from(extremes + (-INF,))
        if mode == "invalid":
            elements = st.one_of(elements, elements, st.sampled_from([NAN, INF]))
        elif mode == "positive":  # not log-probabilities, but finite: sums overflow both ways
            elements = st.sampled_from([DBL_MAX, 1e308, 1e300, 1.0, DBL_TRUE_MIN, 0.0, -1.0, -1e308, -INF])
        log_probs = float_tensor(draw, shape, elements, dtype)
    pred_lengths = draw(st.lists(st.integers(0, pred_width), min_size=batch, max_size=batch))
    target_lengths = draw(st.lists(st.integers(0, target_width), min_size=batch, max_size=batch))
    for b, n in enumerate(pred_lengths):  # padding predictions hold garbage the DP must never read
        log_probs[b, n:] = draw(st.sampled_from([NAN, INF, -INF, 0.0]))
    garbage_id = draw(st.sampled_from([-7, vocab, vocab + 100, INT32_MIN, 2**40]))
    targets = [[draw(st.integers(0, vocab - 1)) if i < target_lengths[b] else garbage_id
                for i in range(target_width)] for b in range(batch)]
    targets = index_tensor(draw, targets, min(garbage_id, 0), max(garbage_id, vocab)).reshape(batch, target_width)
    pred_len_t = index_tensor(draw, pred_lengths, 0, 255).reshape(batch)
    target_len_t = index_tensor(draw, target_lengths, 0, 255).reshape(batch)
    log_probs = arrange(draw, log_probs)
    targets = arrange(draw, targets, garbage=garbage_id)
    pred_len_t, target_len_t = arrange(draw, pred_len_t), arrange(draw, target_len_t)
    blank = draw(st.integers(0, vocab - 1))
    skip_penalty = draw(st.sampled_from([0.0, 1.0, 0.5, 2.0, 1e-300, 1e10]))
    return log_probs, targets, pred_len_t, target_len_t, blank, skip_penalty, mode


def first_bad_read(log_probs, targets, pred_lengths, target_lengths, blank) -> int | None:
    """The first sequence whose DP reads a NaN or +inf log-prob, from the definition of the DP."""
    lp = log_probs.double()
    for b in range(lp.shape[0]):
        lp_b, ly_b = int(pred_lengths[b]), int(target_lengths[b])
        tokens = {blank} | {int(t) for t in targets[b, :ly_b]} if ly_b else {blank}
        read = lp[b, :lp_b, sorted(tokens)]
        if bool((torch.isnan(read) | (read == INF)).any()):
            return b
    return None


def assert_close_f32(got: torch.Tensor, expected: torch.Tensor, terms: int) -> None:
    """A float32 DP against the float64 reference: float32 rounding of each path's terms."""
    tol = 4 * (terms + 2) * EPS32
    for b, (g, e) in enumerate(zip(got.double().tolist(), expected.tolist())):
        if math.isinf(e) or e >= FLT_MAX / (1 + tol):
            assert g == e or (math.isinf(g) and g > 0) or abs(g - e) <= tol * abs(e), f"sequence {b}: {g} vs {e}"
        else:
            assert abs(g - e) <= tol * abs(e) + 1e-37, f"sequence {b}: float32 loss {g} vs reference {e}"


# ----------------------------------------------------------------------------- properties


@scaled(1.5)
@given(axe_batches())
def test_loss_gradient_and_proxy_equal_the_reference_dp(case):
    log_probs, targets, pred_lengths, target_lengths, blank, delta, mode = case
    args = (targets, pred_lengths, target_lengths)
    record_example(log_probs=log_probs, targets=targets, pred_lengths=pred_lengths,
                   target_lengths=target_lengths, blank=blank, skip_penalty=delta)
    # Layouts may repeat lengths onto garbage, so the expectation is read from the final tensors.
    vocab = log_probs.shape[2]
    inside = torch.arange(targets.shape[1]) < target_lengths[:, None].long()
    bad_ids = inside & ((targets.long() < 0) | (targets.long() >= vocab))
    if bool(bad_ids.any()):
        b, i = (int(x) for x in bad_ids.nonzero()[0])
        event("outcome: target id out of range")
        with pytest.raises(ValueError, match=rf"targets must hold token ids in \[0, V = {vocab}\) within "
                                             rf"target_lengths, got {int(targets[b, i])} at index \({b}, {i}\)"):
            axe_loss(log_probs, *args, blank=blank, skip_penalty=delta)
        return
    bad = first_bad_read(log_probs, *args, blank)
    if bad is not None:
        event("outcome: NaN or +inf read")
        for op in (axe_loss, axe_align):
            with pytest.raises(ValueError, match=rf"log_probs holds NaN or \+inf at entries the AXE DP reads "
                                                 rf"\(sequence {bad}\)"):
                op(log_probs, *args, blank=blank, skip_penalty=delta)
        return
    expected = axe_loss_reference(log_probs, *args, blank=blank, skip_penalty=delta)
    if bool(torch.isnan(expected).any()):  # only out-of-contract positive values make inf - inf
        assert mode == "positive", f"reference NaN on {mode} log-probs: {expected}"
        event("outcome: NaN from +-inf costs (positive log-probs)")
        with pytest.raises(ValueError, match="log_probs holds NaN or"):
            axe_loss(log_probs, *args, blank=blank, skip_penalty=delta)
        return
    event(f"outcome: compared ({mode}, {log_probs.dtype}, "
          f"{'all finite' if bool(torch.isfinite(expected).all()) else 'some inf'})")

    leaf = log_probs.detach().clone().requires_grad_(log_probs.dtype == torch.float64)
    loss = axe_loss(leaf, *args, blank=blank, skip_penalty=delta, reduction="none")
    assert loss.shape == expected.shape
    assert loss.dtype == (torch.float64 if log_probs.dtype == torch.float64 else torch.float32)
    terms = log_probs.shape[1] + targets.shape[1]
    if log_probs.dtype == torch.float32:
        assert_close_f32(loss.detach(), expected, terms)
    else:
        torch.testing.assert_close(loss.detach(), expected, rtol=1e-12, atol=0)
        finite = torch.isfinite(expected)
        if bool(finite.any()):
            loss[finite].sum().backward()
            ref_leaf = log_probs.detach().clone().requires_grad_(True)
            axe_loss_reference(ref_leaf, *args, blank=blank, skip_penalty=delta)[finite].sum().backward()
            torch.testing.assert_close(leaf.grad, ref_leaf.grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(axe_align(log_probs, *args, blank=blank, skip_penalty=delta),
                                   axe_align_reference(log_probs, *args, blank=blank, skip_penalty=delta),
                                   rtol=0, atol=0)

    total = float(expected.sum()) if log_probs.dtype == torch.float64 else float(loss.detach().double().sum())
    if math.isfinite(total):
        summed = float(axe_loss(log_probs, *args, blank=blank, skip_penalty=delta, reduction="sum"))
        mean = float(axe_loss(log_probs, *args, blank=blank, skip_penalty=delta, reduction="mean"))
        tokens = max(int(target_lengths.sum()), 1)
        tol = 1e-12 if log_probs.dtype == torch.float64 else 4 * (terms + 2) * EPS32 * max(1, len(expected))
        for got, want in ((summed, total), (mean, total / tokens)):
            if log_probs.dtype == torch.float32 and want >= FLT_MAX / (1 + tol):
                assert got == INF or abs(got - want) <= tol * want, (got, want)  # float32 overflow
            else:
                atol = 1e-300 if log_probs.dtype == torch.float64 else 1e-44  # float32 subnormals
                assert abs(got - want) <= tol * abs(want) + atol, (got, want)


@given(axe_batches())
def test_proxy_target_is_an_alignment_whose_nll_is_the_loss_without_skip_penalty(case):
    log_probs, targets, pred_lengths, target_lengths, blank, _, mode = case
    args = (targets, pred_lengths, target_lengths)
    inside = torch.arange(targets.shape[1]) < target_lengths[:, None].long()
    valid_ids = not bool((inside & ((targets.long() < 0) | (targets.long() >= log_probs.shape[2]))).any())
    if mode in ("invalid", "positive") or not valid_ids or first_bad_read(log_probs, *args, blank) is not None:
        return
    record_example(log_probs=log_probs, targets=targets, pred_lengths=pred_lengths,
                   target_lengths=target_lengths, blank=blank)
    proxy = axe_align(log_probs, *args, blank=blank, skip_penalty=0.0)
    assert proxy.dtype == torch.int64 and proxy.shape == log_probs.shape[:2]
    loss = axe_loss(log_probs, *args, blank=blank, skip_penalty=0.0, reduction="none").double()
    lp = log_probs.double()
    for b in range(log_probs.shape[0]):
        n, ly = int(pred_lengths[b]), int(target_lengths[b])
        row = proxy[b].tolist()
        assert all(t == blank for t in row[n:]), f"sequence {b}: padding of T* must be the blank: {row}"
        # The non-blank entries of T* are a subsequence of the target's non-blank tokens.
        target = iter(t for t in targets[b, :ly].tolist() if t != blank)
        assert all(any(t == y for y in target) for t in row[:n] if t != blank), \
            f"sequence {b}: T* {row[:n]} is not an alignment of {targets[b, :ly].tolist()}"
        if math.isfinite(float(loss[b])):
            nll = -math.fsum(lp[b, j, row[j]].item() for j in range(n))
            tol = 1e-12 if log_probs.dtype == torch.float64 else 4 * (n + ly + 2) * EPS32
            atol = 1e-300 if log_probs.dtype == torch.float64 else 1e-44
            assert abs(nll - float(loss[b])) <= tol * abs(nll) + atol, \
                f"sequence {b}: NLL(T*) {nll} vs loss {float(loss[b])}"


BAD_ARGUMENTS = ("pred_lengths", "target_lengths", "targets", "blank", "skip_penalty", "reduction")


@given(st.data(), st.sampled_from(BAD_ARGUMENTS))
def test_bad_arguments_are_refused_by_name(data, what):
    draw = data.draw
    batch, pred_width, target_width, vocab = (draw(st.integers(1, 3)), draw(st.integers(0, 4)),
                                              draw(st.integers(0, 4)), draw(st.integers(1, 4)))
    log_probs = torch.randn(batch, pred_width, vocab, dtype=torch.float64).log_softmax(-1)
    targets = torch.randint(0, vocab, (batch, target_width))
    pred_lengths = torch.full((batch,), pred_width)
    target_lengths = torch.full((batch,), target_width)
    kwargs = dict(blank=0, skip_penalty=1.0)
    b = draw(st.integers(0, batch - 1))
    if what == "pred_lengths":
        pred_lengths[b] = draw(st.sampled_from([-1, pred_width + 1, 2**31]))
        message = rf"pred_lengths must lie in \[0, log_probs.size\(1\) = {pred_width}\], got .* at index {b}"
    elif what == "target_lengths":
        target_lengths[b] = draw(st.sampled_from([-1, target_width + 1, -(2**40)]))
        message = rf"target_lengths must lie in \[0, targets.size\(1\) = {target_width}\], got .* at index {b}"
    elif what == "targets":
        if target_width == 0:
            return
        i = draw(st.integers(0, target_width - 1))
        targets[b, i] = draw(st.sampled_from([-1, vocab, 2**62, -(2**63)]))
        message = rf"targets must hold token ids in \[0, V = {vocab}\).* at index \({b}, {i}\)"
    elif what == "blank":
        kwargs["blank"] = draw(st.sampled_from([-1, vocab, 2**63 - 1]))
        message = rf"blank must be a token id in \[0, V = {vocab}\)"
    elif what == "skip_penalty":
        kwargs["skip_penalty"] = draw(st.sampled_from([-1e-300, -1.0, NAN, INF, -INF]))
        message = r"skip_penalty \(delta\) must be finite and >= 0"
    else:
        kwargs["reduction"] = draw(st.sampled_from(["avg", "", "None", "MEAN"]))
        message = "reduction must be one of"
    record_example(log_probs=log_probs, targets=targets, pred_lengths=pred_lengths,
                   target_lengths=target_lengths, **kwargs)
    with pytest.raises(ValueError, match=message):
        axe_loss(log_probs, targets, pred_lengths, target_lengths, **kwargs)


@pytest.mark.parametrize("which", ["log_probs", "targets"])
def test_meta_tensors_are_refused_by_name(which):
    log_probs = torch.zeros(1, 2, 3, device="meta" if which == "log_probs" else "cpu")
    targets = torch.zeros(1, 2, dtype=torch.int64, device="meta" if which == "targets" else "cpu")
    with pytest.raises(ValueError, match=f"{which} is on the meta device"):
        axe_loss(log_probs, targets, blank=0)
