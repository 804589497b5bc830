"""AXE loss and proxy target: brute force over all alignments, Eq. 20, the float64 reference DP,
gradcheck, opcheck, edge cases and bad input.  CUDA cases compare against the CPU kernel and skip
without a GPU."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mple_metrics.ops import axe_align, axe_loss
from mple_metrics.ops.reference.axe import (
    ALIGN,
    SKIP_PREDICTION,
    SKIP_TARGET,
    axe_align_reference,
    axe_loss_reference,
)
from mple_metrics.testing import cuda_usable, devices

DEVICES = devices()


def random_batch(batch, pred_width, target_width, vocab, *, seed, dtype=torch.float64, device="cpu",
                 min_len=0, blank=None):
    """Random log-probs (B, Lp, V), targets (B, Ly) that may contain the blank id, ragged lengths."""
    gen = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(batch, pred_width, vocab, generator=gen, dtype=torch.float64) * 2
    log_probs = log_probs.log_softmax(-1).to(dtype)
    targets = torch.randint(0, vocab, (batch, target_width), generator=gen)
    pred_lengths = torch.randint(min(min_len, pred_width), pred_width + 1, (batch,), generator=gen)
    target_lengths = torch.randint(min(min_len, target_width), target_width + 1, (batch,), generator=gen)
    # Garbage in the padding must never be read: ids out of range and NaN log-probs.
    targets[torch.arange(target_width) >= target_lengths[:, None]] = -7
    log_probs[torch.arange(pred_width) >= pred_lengths[:, None]] = float("nan")
    blank = vocab - 1 if blank is None else blank
    return (log_probs.to(device), targets.to(device), pred_lengths.to(device),
            target_lengths.to(device), blank)


# ----------------------------------------------------------------------------- brute force


def enumerate_paths(pred_length, target_length):
    """Every monotonic path of the three moves from (0, 0) to (Ly, Lp), as lists of (move, i, j)
    (the move into cell (i, j))."""
    def walk(i, j):
        if i == target_length and j == pred_length:
            yield []
            return
        if i < target_length and j < pred_length:
            for rest in walk(i + 1, j + 1):
                yield [(ALIGN, i + 1, j + 1)] + rest
        if j < pred_length:
            for rest in walk(i, j + 1):
                yield [(SKIP_PREDICTION, i, j + 1)] + rest
        if i < target_length:
            for rest in walk(i + 1, j):
                yield [(SKIP_TARGET, i + 1, j)] + rest
    return list(walk(0, 0))


def path_cost_and_gradient(path, log_probs, targets, blank, delta):
    """Cost of a path and its gradient as {(position, token): d cost / d log_prob}; None if the path
    charges a prediction that does not exist (Lp = 0)."""
    cost, grad = 0.0, {}
    for move, i, j in path:
        if move == ALIGN:
            key, weight = (j - 1, int(targets[i - 1])), 1.0
        elif move == SKIP_PREDICTION:
            key, weight = (j - 1, blank), 1.0
        else:
            key, weight = (max(j, 1) - 1, int(targets[i - 1])), delta
        if key[0] >= log_probs.shape[0]:
            return None
        cost -= weight * float(log_probs[key])
        grad[key] = grad.get(key, 0.0) - weight
    return cost, grad


def path_proxy_target(path, targets, pred_length, blank):
    out = [blank] * pred_length
    for move, i, j in path:
        if move == ALIGN:
            out[j - 1] = int(targets[i - 1])
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes", [(0, 0), (0, 3), (3, 0), (1, 1), (2, 5), (5, 2), (4, 4), (6, 6), (6, 3), (3, 6)])
def test_brute_force_over_all_alignments(device, sizes):
    pred_length, target_length = sizes
    vocab = 5
    for seed in range(3):
        log_probs, targets, _, _, blank = random_batch(1, pred_length, target_length, vocab, seed=seed,
                                                       min_len=99)
        delta = 0.3 + 2 * seed / 3
        lp, tg = log_probs[0], targets[0]
        candidates = []
        for path in enumerate_paths(pred_length, target_length):
            result = path_cost_and_gradient(path, lp, tg, blank, delta)
            if result is not None:
                candidates.append((result[0], result[1], path))
        dev_lp = log_probs.to(device).clone().requires_grad_()
        loss = axe_loss(dev_lp, targets.to(device), blank=blank, skip_penalty=delta, reduction="none")
        if not candidates:  # Lp = 0 < Ly: no alignment exists
            assert loss.item() == math.inf
            loss.sum().backward()
            assert dev_lp.grad.abs().sum().item() == 0
            continue
        best = min(c[0] for c in candidates)
        assert loss.item() == pytest.approx(best, rel=1e-12, abs=1e-12)
        # Tie-free draw: every path within rounding of the minimum has the same gradient and proxy
        # target (paths that differ only in the order of moves charged to P_1 cost exactly the same).
        winners = [c for c in candidates if c[0] <= best + 1e-9]
        assert all(w[1] == winners[0][1] for w in winners)
        expected_t = path_proxy_target(winners[0][2], tg, pred_length, blank)
        assert all(path_proxy_target(w[2], tg, pred_length, blank) == expected_t for w in winners)

        loss.sum().backward()
        expected_grad = torch.zeros(pred_length, vocab, dtype=torch.float64)
        for (position, token), weight in winners[0][1].items():
            expected_grad[position, token] += weight
        torch.testing.assert_close(dev_lp.grad[0].cpu(), expected_grad, rtol=0, atol=1e-12)
        proxy = axe_align(log_probs.to(device), targets.to(device), blank=blank, skip_penalty=delta)
        assert proxy[0].tolist() == expected_t


def proxy_targets_of(reference, pred_length, blank):
    """S(R) of Eq. 20: every length-Lp sequence of a subsequence of R with blanks inserted."""
    for k in range(min(len(reference), pred_length) + 1):
        for positions in itertools.combinations(range(pred_length), k):
            for chosen in itertools.combinations(range(len(reference)), k):
                t = [blank] * pred_length
                for p, c in zip(positions, chosen):
                    t[p] = reference[c]
                yield t


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes", [(1, 0), (1, 3), (3, 1), (3, 3), (4, 2), (2, 4), (5, 4), (0, 2), (0, 0)])
def test_delta_zero_is_min_nll_over_proxy_targets(device, sizes):
    """Eq. 20 with delta = 0: the loss is min over T in S(R) of -sum_j log P_j(T_j)."""
    pred_length, target_length = sizes
    for seed in range(3):
        log_probs, targets, _, _, blank = random_batch(1, pred_length, target_length, 6, seed=seed,
                                                       min_len=99)
        lp, reference = log_probs[0], targets[0].tolist()
        loss = axe_loss(log_probs.to(device), targets.to(device), blank=blank, skip_penalty=0.0,
                        reduction="none")
        if pred_length == 0 and target_length > 0:
            assert loss.item() == math.inf
            continue
        nll = [-sum(float(lp[j, t[j]]) for j in range(pred_length))
               for t in proxy_targets_of(reference, pred_length, blank)]
        assert loss.item() == pytest.approx(min(nll), rel=1e-12, abs=1e-12)
        # T* realises the minimum: its NLL is the loss.
        proxy = axe_align(log_probs.to(device), targets.to(device), blank=blank, skip_penalty=0.0)[0].cpu()
        proxy_nll = -lp.gather(1, proxy[:, None]).sum().item()
        assert proxy_nll == pytest.approx(loss.item(), rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------------------- reference parity


PARITY_CASES = [
    # batch, Lp, Ly, V, delta
    (2, 0, 0, 3, 1.0),
    (3, 0, 4, 5, 1.0),
    (3, 4, 0, 5, 0.0),
    (1, 1, 1, 3, 1.0),
    (5, 7, 4, 11, 1.0),
    (6, 4, 9, 11, 0.5),
    (4, 16, 16, 50, 0.0),
    (8, 33, 20, 101, 5.0),
    (3, 64, 80, 300, 1.0),
    (2, 256, 256, 64, 2.0),
    (2, 200, 256, 64, 0.0),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", PARITY_CASES)
def test_matches_reference_float64(device, case):
    batch, pred_width, target_width, vocab, delta = case
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(
        batch, pred_width, target_width, vocab, seed=hash(case) % 1000, device=device)
    kernel_in = log_probs.clone().requires_grad_()
    loss = axe_loss(kernel_in, targets, pred_lengths, target_lengths, blank=blank, skip_penalty=delta,
                    reduction="none")
    grad_out = torch.rand(batch, dtype=torch.float64, device=device) + 0.5
    loss.backward(grad_out)

    ref_in = log_probs.clone().requires_grad_()
    ref = axe_loss_reference(ref_in, targets, pred_lengths, target_lengths, blank=blank,
                             skip_penalty=delta)
    ref.backward(grad_out)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-10)
    expected_grad = ref_in.grad.nan_to_num(0.0)  # padding rows hold NaN log-probs, zero gradient
    torch.testing.assert_close(kernel_in.grad, expected_grad, rtol=1e-12, atol=1e-12)
    assert torch.equal(
        axe_align(log_probs, targets, pred_lengths, target_lengths, blank=blank, skip_penalty=delta),
        axe_align_reference(log_probs, targets, pred_lengths, target_lengths, blank=blank,
                            skip_penalty=delta))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_against_float64(device, dtype):
    """Lower precisions: the loss is within the DP's rounding of the float64 reference, and the
    gradient is the exact subgradient of some path whose cost is the returned loss."""
    batch, pred_width, target_width, vocab = 6, 40, 30, 97
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(
        batch, pred_width, target_width, vocab, seed=11, dtype=dtype, device=device, min_len=1)
    log_probs = log_probs.nan_to_num(0.0)
    kernel_in = log_probs.clone().requires_grad_()
    loss = axe_loss(kernel_in, targets, pred_lengths, target_lengths, blank=blank, reduction="none")
    assert loss.dtype == torch.float32 and kernel_in.grad is None
    loss.sum().backward()
    assert kernel_in.grad.dtype == dtype
    ref = axe_loss_reference(log_probs.double(), targets, pred_lengths, target_lengths, blank=blank)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-4)
    # With skip_penalty = 1 every charged entry has weight -1 per use, so <grad, log_probs> is the
    # cost of the path the gradient describes.
    path_cost = (kernel_in.grad.double() * log_probs.double()).sum((1, 2))
    torch.testing.assert_close(path_cost, loss.double(), rtol=1e-5, atol=1e-4)
    if dtype != torch.float32:
        # The DP reads the half values and runs in float32: identical to the float32 kernel on the
        # same (rounded) values.
        same = axe_loss(log_probs.float(), targets, pred_lengths, target_lengths, blank=blank,
                        reduction="none")
        assert torch.equal(loss, same)


@pytest.mark.parametrize("device", DEVICES)
def test_integer_ties_follow_the_stated_order(device):
    """Integer log-probs make ties everywhere; sums are exact, so the chosen path must be the one the
    reference picks by the order align, skip prediction, skip target."""
    gen = torch.Generator().manual_seed(3)
    batch, pred_width, target_width, vocab = 16, 9, 8, 4
    log_probs = -torch.randint(0, 3, (batch, pred_width, vocab), generator=gen).double()
    targets = torch.randint(0, vocab, (batch, target_width), generator=gen)
    pred_lengths = torch.randint(1, pred_width + 1, (batch,), generator=gen)
    target_lengths = torch.randint(0, target_width + 1, (batch,), generator=gen)
    for delta in (0.0, 1.0, 2.0):
        args = (targets.to(device), pred_lengths.to(device), target_lengths.to(device))
        kernel_in = log_probs.to(device).clone().requires_grad_()
        axe_loss(kernel_in, *args, blank=0, skip_penalty=delta, reduction="sum").backward()
        ref_in = log_probs.clone().requires_grad_()
        axe_loss_reference(ref_in, targets, pred_lengths, target_lengths, blank=0,
                           skip_penalty=delta).sum().backward()
        assert torch.equal(kernel_in.grad.cpu(), ref_in.grad)
        assert torch.equal(axe_align(log_probs.to(device), *args, blank=0, skip_penalty=delta).cpu(),
                           axe_align_reference(log_probs, targets, pred_lengths, target_lengths,
                                               blank=0, skip_penalty=delta))


@pytest.mark.parametrize("device", DEVICES)
def test_tie_breaking_by_hand(device):
    # Lp = Ly = 1, delta = 0, all costs 1: align (1), skip prediction (0 + 1) and skip target
    # (1 + 0) tie; align wins, so T* = [Y_1] and the gradient is -1 on P_1(Y_1) only.
    log_probs = torch.full((1, 1, 3), -1.0, dtype=torch.float64, device=device, requires_grad=True)
    targets = torch.tensor([[2]], device=device)
    loss = axe_loss(log_probs, targets, blank=0, skip_penalty=0.0, reduction="sum")
    assert loss.item() == 1.0
    loss.backward()
    assert log_probs.grad.cpu().tolist() == [[[0.0, 0.0, -1.0]]]
    assert axe_align(log_probs, targets, blank=0, skip_penalty=0.0).tolist() == [[2]]
    # Make align dearer (G = 3): skip prediction (A[1,0] + E = 0 + 1) ties with skip target
    # (A[0,1] + 0 = 1); skip prediction wins, and with delta = 0 the skipped target costs nothing.
    log_probs = torch.tensor([[[-1.0, 0.0, -3.0]]], dtype=torch.float64, device=device, requires_grad=True)
    loss = axe_loss(log_probs, targets, blank=0, skip_penalty=0.0, reduction="sum")
    assert loss.item() == 1.0
    loss.backward()
    assert log_probs.grad.cpu().tolist() == [[[-1.0, 0.0, 0.0]]]
    assert axe_align(log_probs, targets, blank=0, skip_penalty=0.0).tolist() == [[0]]


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("device", DEVICES)
def test_zero_lengths_and_empty_batch(device):
    log_probs = torch.log_softmax(torch.randn(4, 3, 5, dtype=torch.float64), -1).to(device)
    targets = torch.tensor([[1, 2], [1, 2], [1, 2], [1, 2]], device=device)
    pred_lengths = torch.tensor([0, 0, 3, 2], device=device)
    target_lengths = torch.tensor([0, 2, 0, 2], device=device)
    loss = axe_loss(log_probs, targets, pred_lengths, target_lengths, blank=4, reduction="none")
    assert loss[0].item() == 0.0
    assert loss[1].item() == math.inf  # no prediction to align two target tokens with
    assert loss[2].item() == pytest.approx(-log_probs[2, :, 4].sum().item(), rel=1e-12)
    assert math.isfinite(loss[3].item())
    proxy = axe_align(log_probs, targets, pred_lengths, target_lengths, blank=4)
    assert proxy[:3].tolist() == [[4, 4, 4]] * 3 and proxy[3, 2].item() == 4

    empty = axe_loss(log_probs[:0], targets[:0], blank=4, reduction="none")
    assert empty.shape == (0,)
    assert axe_loss(log_probs[:0], targets[:0], blank=4).item() == 0.0
    no_width = axe_loss(torch.zeros(2, 0, 5, device=device), torch.zeros(2, 0, dtype=torch.long, device=device),
                        blank=0, reduction="none")
    assert no_width.tolist() == [0.0, 0.0]
    assert axe_align(torch.zeros(2, 0, 5, device=device), torch.zeros(2, 0, dtype=torch.long, device=device),
                     blank=0).shape == (2, 0)


@pytest.mark.parametrize("device", DEVICES)
def test_minus_inf_log_probs_give_inf_not_nan(device):
    log_probs = torch.log_softmax(torch.randn(2, 3, 4, dtype=torch.float64), -1)
    targets = torch.tensor([[1, 2], [1, 2]])
    # Sequence 0: token 1 impossible everywhere, so every alignment pays +inf.
    log_probs[0, :, 1] = -math.inf
    # Sequence 1: prediction 2 cannot be blank; alignments that avoid that stay finite.
    log_probs[1, 1, 0] = -math.inf
    x = log_probs.to(device).clone().requires_grad_()
    loss = axe_loss(x, targets.to(device), blank=0, skip_penalty=0.5, reduction="none")
    assert loss[0].item() == math.inf and math.isfinite(loss[1].item())
    loss.sum().backward()
    assert not torch.isnan(x.grad).any()
    ref = axe_loss_reference(log_probs, targets, torch.tensor([3, 3]), torch.tensor([2, 2]), blank=0,
                             skip_penalty=0.5)
    torch.testing.assert_close(loss.cpu(), ref)
    # delta = 0 with a -inf entry that is only ever skipped: still finite, never 0 * inf.
    lp = torch.log_softmax(torch.randn(1, 2, 4, dtype=torch.float64), -1)
    lp[0, :, 3] = -math.inf
    loss = axe_loss(lp.to(device), torch.tensor([[3]], device=device), blank=0, skip_penalty=0.0,
                    reduction="none")
    assert loss.item() == pytest.approx(-lp[0, :, 0].sum().item(), rel=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_log_probs_are_an_error(device):
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(3, 5, 4, 7, seed=1, min_len=2)
    log_probs = log_probs.nan_to_num(0.0)
    bad = log_probs.clone()
    bad[1, 0, blank] = float("nan")
    with pytest.raises(ValueError, match="log_probs.*NaN.*sequence 1"):
        axe_loss(bad.to(device), targets.to(device), pred_lengths.to(device), target_lengths.to(device),
                 blank=blank)
    bad = log_probs.clone()
    bad[2, 1, targets[2, 0]] = math.inf
    with pytest.raises(ValueError, match="log_probs"):
        axe_align(bad.to(device), targets.to(device), pred_lengths.to(device), target_lengths.to(device),
                  blank=blank)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_log_probs(device):
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(5, 12, 9, 31, seed=5, device=device)
    log_probs = log_probs.nan_to_num(0.0)
    time_major = log_probs.transpose(0, 1).contiguous().transpose(0, 1)  # (B, Lp, V) view of (Lp, B, V)
    strided_vocab = torch.stack([log_probs, torch.zeros_like(log_probs)], -1)[..., 0]  # stride 2 over V
    assert not time_major.is_contiguous() and not strided_vocab.is_contiguous()
    y = log_probs.clone().requires_grad_()
    expected = axe_loss(y, targets, pred_lengths, target_lengths, blank=blank, reduction="none")
    expected.sum().backward()
    for view in (time_major, strided_vocab):
        x = view.detach().requires_grad_()
        loss = axe_loss(x, targets, pred_lengths, target_lengths, blank=blank, reduction="none")
        assert torch.equal(loss, expected)
        loss.sum().backward()
        assert torch.equal(x.grad, y.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_reductions(device):
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(6, 8, 7, 13, seed=9, device=device,
                                                                           min_len=1)
    per_seq = axe_loss(log_probs, targets, pred_lengths, target_lengths, blank=blank, reduction="none")
    total = axe_loss(log_probs, targets, pred_lengths, target_lengths, blank=blank, reduction="sum")
    mean = axe_loss(log_probs, targets, pred_lengths, target_lengths, blank=blank, reduction="mean")
    assert per_seq.shape == (6,) and total.shape == () and mean.shape == ()
    torch.testing.assert_close(total, per_seq.sum())
    torch.testing.assert_close(mean, per_seq.sum() / target_lengths.sum().double())
    # Same for the int32 index tensors a user may pass.
    mean32 = axe_loss(log_probs, targets.int(), pred_lengths.int(), target_lengths.int(), blank=blank)
    torch.testing.assert_close(mean32, mean)


# ----------------------------------------------------------------------------- autograd, opcheck


def tie_free_inputs(batch, pred_width, target_width, vocab, seed):
    """Distinct costs spread widely, so a perturbation of 1e-6 never changes the chosen path."""
    gen = torch.Generator().manual_seed(seed)
    log_probs = -torch.rand(batch, pred_width, vocab, generator=gen, dtype=torch.float64) * 5 - 0.1
    targets = torch.randint(0, vocab - 1, (batch, target_width), generator=gen)
    pred_lengths = torch.randint(1, pred_width + 1, (batch,), generator=gen)
    target_lengths = torch.randint(0, target_width + 1, (batch,), generator=gen)
    return log_probs, targets, pred_lengths, target_lengths


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gradcheck(device, reduction):
    log_probs, targets, pred_lengths, target_lengths = tie_free_inputs(3, 5, 4, 6, seed=2)
    args = (targets.to(device), pred_lengths.to(device), target_lengths.to(device))
    for delta in (0.0, 0.7, 2.0):
        x = log_probs.to(device).clone().requires_grad_()
        assert torch.autograd.gradcheck(
            lambda lp: axe_loss(lp, *args, blank=5, skip_penalty=delta, reduction=reduction),
            (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    log_probs, targets, pred_lengths, target_lengths = tie_free_inputs(4, 6, 5, 7, seed=4)
    for dtype in (torch.float64, torch.float32):
        x = log_probs.to(device, dtype).clone().requires_grad_()
        args = (x, targets.to(device), pred_lengths.to(device), target_lengths.to(device), 6, 1.5)
        torch.library.opcheck(torch.ops.mple.axe_forward.default, args)
        loss, choices = torch.ops.mple.axe_forward(*args)
        grad_loss = torch.rand_like(loss)
        torch.library.opcheck(torch.ops.mple.axe_backward.default,
                              (grad_loss, x.detach(), *args[1:4], choices, 6, 1.5))
        torch.library.opcheck(torch.ops.mple.axe_proxy_targets.default, (choices, *args[1:4], 6))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile(device):
    log_probs, targets, pred_lengths, target_lengths = tie_free_inputs(3, 6, 4, 7, seed=8)
    args = (targets.to(device), pred_lengths.to(device), target_lengths.to(device))
    compiled = torch.compile(lambda lp: axe_loss(lp, *args, blank=6, reduction="sum"), backend="aot_eager")
    x = log_probs.to(device).clone().requires_grad_()
    compiled(x).backward()
    y = log_probs.to(device).clone().requires_grad_()
    axe_loss(y, *args, blank=6, reduction="sum").backward()
    assert torch.equal(x.grad, y.grad)


# ----------------------------------------------------------------------------- bad input


def _good():
    log_probs = torch.log_softmax(torch.randn(2, 4, 5), -1)
    return dict(log_probs=log_probs, targets=torch.tensor([[1, 2, 3], [1, 1, 0]]),
                pred_lengths=torch.tensor([4, 3]), target_lengths=torch.tensor([3, 2]), blank=0)


BAD_INPUTS = [
    ("log_probs", lambda a: a.update(log_probs=a["log_probs"][0]), ValueError),
    ("log_probs", lambda a: a.update(log_probs=a["log_probs"].long()), TypeError),
    ("log_probs", lambda a: a.update(log_probs=a["log_probs"].tolist()), TypeError),
    ("targets", lambda a: a.update(targets=a["targets"].float()), TypeError),
    ("targets", lambda a: a.update(targets=a["targets"][0]), ValueError),
    ("targets", lambda a: a.update(targets=a["targets"][:1]), ValueError),
    ("pred_lengths", lambda a: a.update(pred_lengths=torch.tensor([4, 5])), ValueError),
    ("pred_lengths", lambda a: a.update(pred_lengths=torch.tensor([-1, 2])), ValueError),
    ("pred_lengths", lambda a: a.update(pred_lengths=torch.tensor([4, 2, 1])), ValueError),
    ("pred_lengths", lambda a: a.update(pred_lengths=torch.tensor([[4, 2]])), ValueError),
    ("target_lengths", lambda a: a.update(target_lengths=torch.tensor([4, 2])), ValueError),
    ("target_lengths", lambda a: a.update(target_lengths=torch.tensor([3.0, 2.0])), TypeError),
    ("targets", lambda a: a["targets"].__setitem__((1, 1), 5), ValueError),
    ("targets", lambda a: a["targets"].__setitem__((0, 2), -1), ValueError),
    ("blank", lambda a: a.update(blank=5), ValueError),
    ("blank", lambda a: a.update(blank=-1), ValueError),
    ("blank", lambda a: a.update(blank=1.0), TypeError),
    ("skip_penalty", lambda a: a.update(skip_penalty=-0.5), ValueError),
    ("skip_penalty", lambda a: a.update(skip_penalty=float("nan")), ValueError),
    ("skip_penalty", lambda a: a.update(skip_penalty="1"), TypeError),
    ("reduction", lambda a: a.update(reduction="avg"), ValueError),
]


@pytest.mark.parametrize("name, mutate, error", BAD_INPUTS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_INPUTS)])
def test_bad_input_names_the_argument(name, mutate, error):
    args = _good()
    args["skip_penalty"] = 1.0
    args["reduction"] = "mean"
    mutate(args)
    with pytest.raises(error, match=name):
        axe_loss(args.pop("log_probs"), args.pop("targets"), args.pop("pred_lengths"),
                 args.pop("target_lengths"), **args)


def test_padding_target_ids_are_not_checked():
    args = _good()
    args["targets"][1, 2] = 99  # beyond target_lengths[1] = 2: padding
    axe_loss(args.pop("log_probs"), args.pop("targets"), args.pop("pred_lengths"),
             args.pop("target_lengths"), **args)


def test_kernel_checks_without_the_wrapper():
    """The ops themselves reject bad shapes and values with errors naming the argument."""
    a = _good()
    lp, tg, pl, tl = a["log_probs"], a["targets"], a["pred_lengths"], a["target_lengths"]
    with pytest.raises(RuntimeError, match="pred_lengths"):
        torch.ops.mple.axe_forward(lp, tg, torch.tensor([9, 1]), tl, 0, 1.0)
    with pytest.raises(RuntimeError, match="targets"):
        torch.ops.mple.axe_forward(lp, torch.tensor([[1, 2, 7], [0, 0, 0]]), pl, tl, 0, 1.0)
    with pytest.raises(RuntimeError, match="blank"):
        torch.ops.mple.axe_forward(lp, tg, pl, tl, 5, 1.0)
    with pytest.raises(RuntimeError, match="skip_penalty"):
        torch.ops.mple.axe_forward(lp, tg, pl, tl, 0, -1.0)
    with pytest.raises(RuntimeError, match="targets"):
        torch.ops.mple.axe_forward(lp, tg.int(), pl, tl, 0, 1.0)
    loss, choices = torch.ops.mple.axe_forward(lp, tg, pl, tl, 0, 1.0)
    with pytest.raises(RuntimeError, match="choices"):
        torch.ops.mple.axe_backward(loss, lp, tg, pl, tl, choices[:, 1:], 0, 1.0)
    with pytest.raises(RuntimeError, match="grad_loss"):
        torch.ops.mple.axe_backward(loss.double(), lp, tg, pl, tl, choices, 0, 1.0)


def test_mixed_devices_are_an_error_without_a_gpu():
    a = _good()
    # A meta tensor holds no data, so it is refused by name before any device comparison.
    with pytest.raises(ValueError, match="log_probs is on the meta device"):
        axe_loss(a["log_probs"].to("meta"), a["targets"], a["pred_lengths"], a["target_lengths"], blank=0)
    with pytest.raises(ValueError, match="target_lengths is on the meta device"):
        axe_loss(a["log_probs"], a["targets"], a["pred_lengths"], a["target_lengths"].to("meta"), blank=0)


@pytest.mark.skipif(not cuda_usable(), reason="needs a GPU")
def test_mixed_devices_are_an_error():
    a = _good()
    with pytest.raises(ValueError, match="targets"):
        axe_loss(a["log_probs"].cuda(), a["targets"], a["pred_lengths"].cuda(), a["target_lengths"].cuda(),
                 blank=0)
    with pytest.raises(ValueError, match="pred_lengths"):
        axe_loss(a["log_probs"], a["targets"], a["pred_lengths"].cuda(), a["target_lengths"], blank=0)


# ----------------------------------------------------------------------------- CUDA against CPU


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", [(1, 1, 1, 3), (7, 20, 13, 50), (16, 64, 64, 1000), (3, 300, 280, 40),
                                  (4, 40, 1100, 30)])
def test_cuda_matches_cpu_kernel(dtype, case):
    batch, pred_width, target_width, vocab = case
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(
        batch, pred_width, target_width, vocab, seed=sum(case), dtype=dtype)
    for delta in (0.0, 1.0, 3.0):
        results = []
        for device in ("cpu", "cuda"):
            x = log_probs.to(device).clone().requires_grad_()
            args = (targets.to(device), pred_lengths.to(device), target_lengths.to(device))
            loss = axe_loss(x, *args, blank=blank, skip_penalty=delta, reduction="none")
            loss.sum().backward()
            results.append((loss.cpu(), x.grad.cpu(), axe_align(x.detach(), *args, blank=blank,
                                                                   skip_penalty=delta).cpu()))
        (cpu_loss, cpu_grad, cpu_t), (gpu_loss, gpu_grad, gpu_t) = results
        # Both backends run the same IEEE operations in the same order (no FMA contraction, see
        # axe_product), so they choose the same paths; the loss is allowed a last-bit difference.
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        torch.testing.assert_close(gpu_loss, cpu_loss, rtol=tol, atol=tol)
        assert torch.equal(gpu_t, cpu_t)
        assert torch.equal(gpu_grad, cpu_grad)


def test_huge_shapes_are_refused_before_allocating():
    # The alignment table of Lp = Ly = 1e6 needs ~931 GiB: a ValueError that says so, not the
    # allocator's std::bad_alloc.  log_probs is a stride-0 view, so the test itself allocates little.
    width = 1_000_000
    log_probs = torch.zeros(1, 1, 2, dtype=torch.float64).expand(1, width, 2)
    targets = torch.zeros(1, 1, dtype=torch.long).expand(1, width)
    with pytest.raises(ValueError, match=r"axe_forward: the alignment table \(B, Lp \+ 1, Ly \+ 1\) = "
                                         r"\(1, 1000001, 1000001\) would need 931\.\d+ GiB, more than the"):
        axe_loss(log_probs, targets, blank=1)
    # Beyond int64 bytes altogether.
    with pytest.raises(ValueError, match="would need more than 2\\^63 bytes"):
        torch.ops.mple.axe_forward(torch.zeros(1, 1, 2).expand(2**40, 2**20, 2),
                                   torch.zeros(1, 1, dtype=torch.long).expand(2**40, 2**20),
                                   torch.zeros(1, dtype=torch.long).expand(2**40),
                                   torch.zeros(1, dtype=torch.long).expand(2**40), 1, 1.0)


def test_meta_tensors_are_refused_by_name():
    with pytest.raises(ValueError, match="log_probs is on the meta device"):
        axe_loss(torch.zeros(1, 2, 3, device="meta"), torch.zeros(1, 2, dtype=torch.long, device="meta"),
                 blank=0)
