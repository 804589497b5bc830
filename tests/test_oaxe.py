"""The OaXE loss and proxy target against scipy per sentence, brute force, and gradcheck."""

from __future__ import annotations

import itertools
import math
import secrets

import numpy as np
import pytest
import torch

from mple_metrics.ops import oaxe_align, oaxe_loss
from mple_metrics.ops.reference.lap import oaxe_align_reference, oaxe_loss_reference
from mple_metrics.testing import cuda_usable, devices


def fresh_generator() -> tuple[torch.Generator, int]:
    seed = secrets.randbits(48)
    return torch.Generator().manual_seed(seed), seed


def random_nat_batch(batch: int, width: int, vocab: int, gen: torch.Generator,
                     dtype=torch.float64, min_len: int = 0, sharp: float = 3.0):
    """log_probs (B, L, V), targets (B, L) with repeated tokens and padding id -1, lengths (B,)."""
    logits = sharp * torch.randn(batch, width, vocab, generator=gen, dtype=torch.float64)
    log_probs = torch.log_softmax(logits, dim=-1).to(dtype)
    targets = torch.randint(0, vocab, (batch, width), generator=gen)
    lengths = torch.randint(min_len, width + 1, (batch,), generator=gen)
    targets = targets.masked_fill(torch.arange(width) >= lengths[:, None], -1)
    return log_probs, targets, lengths


def proxy_cost(log_probs: torch.Tensor, proxy: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """sum_j -log P_j(T*_j) per sentence, float64 (B,)."""
    lp = log_probs.detach().cpu().double()
    valid = torch.arange(lp.shape[1]) < lengths.cpu()[:, None]
    picked = lp.gather(2, proxy.cpu().clamp(min=0)[..., None]).squeeze(2)
    return torch.where(valid, -picked, torch.zeros_like(picked)).sum(dim=1)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_matches_reference(device, dtype, reduction):
    gen, seed = fresh_generator()
    for width, vocab in [(1, 3), (7, 5), (24, 50), (64, 200)]:
        log_probs, targets, lengths = random_nat_batch(12, width, vocab, gen, dtype)
        got = oaxe_loss(log_probs.to(device), targets.to(device), lengths.to(device), reduction=reduction)
        expected = oaxe_loss_reference(log_probs, targets, lengths, reduction=reduction)
        assert got.dtype == dtype and got.device.type == torch.device(device).type
        assert got.shape == expected.shape
        tol = 1e-10 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(got.cpu().double(), expected, rtol=tol, atol=tol,
                                   msg=lambda m: f"L={width} V={vocab} seed={seed}: {m}")


@pytest.mark.parametrize("device", devices())
def test_align_is_an_optimal_permutation(device):
    gen, seed = fresh_generator()
    for width, vocab in [(5, 3), (30, 20), (100, 1000)]:
        log_probs, targets, lengths = random_nat_batch(10, width, vocab, gen)
        proxy = oaxe_align(log_probs.to(device), targets.to(device), lengths.to(device)).cpu()
        reference = oaxe_align_reference(log_probs, targets, lengths)
        for b in range(10):
            n = int(lengths[b])
            assert sorted(proxy[b, :n].tolist()) == sorted(targets[b, :n].tolist()), f"seed={seed}"
            assert torch.equal(proxy[b, n:], targets[b, n:]), "padding must be copied from targets"
        torch.testing.assert_close(proxy_cost(log_probs, proxy, lengths),
                                   proxy_cost(log_probs, reference, lengths),
                                   rtol=1e-12, atol=1e-12, msg=lambda m: f"seed={seed}: {m}")


@pytest.mark.parametrize("device", devices())
def test_brute_force_over_permutations(device):
    gen, seed = fresh_generator()
    for width in range(1, 8):
        log_probs, targets, lengths = random_nat_batch(4, width, 6, gen, min_len=width)
        loss = oaxe_loss(log_probs.to(device), targets.to(device), lengths.to(device), reduction="none")
        proxy = oaxe_align(log_probs.to(device), targets.to(device), lengths.to(device)).cpu()
        for b in range(4):
            lp = log_probs[b].numpy()
            y = targets[b].numpy()
            best = min(-lp[np.arange(width), y[list(perm)]].sum()
                       for perm in itertools.permutations(range(width)))
            assert abs(float(loss[b]) - best) <= 1e-12 * (1 + best), f"L={width} seed={seed}"
            assert sorted(proxy[b].tolist()) == sorted(y.tolist())
            achieved = -lp[np.arange(width), proxy[b].numpy()].sum()
            assert abs(achieved - best) <= 1e-12 * (1 + best), f"L={width} seed={seed}"


@pytest.mark.parametrize("device", devices())
def test_gradcheck(device):
    gen, seed = fresh_generator()
    log_probs, targets, lengths = random_nat_batch(3, 6, 7, gen, min_len=1)
    log_probs = log_probs.to(device).requires_grad_()
    targets, lengths = targets.to(device), lengths.to(device)
    for reduction, truncate in [("mean", None), ("sum", None), ("none", None), ("mean", 0.1)]:
        assert torch.autograd.gradcheck(
            lambda lp: oaxe_loss(lp, targets, lengths, truncate=truncate, reduction=reduction),
            (log_probs,), eps=1e-6, atol=1e-7), f"{reduction} truncate={truncate} seed={seed}"


@pytest.mark.parametrize("device", devices())
def test_gradient_is_minus_one_on_the_selected_entries(device):
    gen, seed = fresh_generator()
    log_probs, targets, lengths = random_nat_batch(6, 9, 11, gen)
    log_probs = log_probs.to(device).requires_grad_()
    oaxe_loss(log_probs, targets.to(device), lengths.to(device), reduction="sum").backward()
    proxy = oaxe_align(log_probs, targets.to(device), lengths.to(device)).cpu()
    expected = torch.zeros(log_probs.shape, dtype=torch.float64)
    for b in range(6):
        for j in range(int(lengths[b])):
            expected[b, j, proxy[b, j]] = -1.0
    torch.testing.assert_close(log_probs.grad.cpu(), expected, msg=lambda m: f"seed={seed}: {m}")


@pytest.mark.parametrize("device", devices())
def test_truncation(device):
    gen, seed = fresh_generator()
    log_probs, targets, lengths = random_nat_batch(16, 20, 30, gen, sharp=2.0)
    for p in (0.01, 0.05, 0.2, 1.0):
        got = oaxe_loss(log_probs.to(device), targets.to(device), lengths.to(device), truncate=p,
                        reduction="none").cpu()
        expected = oaxe_loss_reference(log_probs, targets, lengths, truncate=p, reduction="none")
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12,
                                   msg=lambda m: f"truncate={p} seed={seed}: {m}")
    untruncated = oaxe_loss(log_probs, targets, lengths, reduction="none")
    assert torch.all(oaxe_loss(log_probs, targets, lengths, truncate=0.05, reduction="none")
                     <= untruncated)


def test_truncation_equals_public_skip_with_converted_threshold():
    """The public code zeroes ln-NLL terms above -log2(skip); that is truncate = skip ** (1 / ln 2)."""
    gen, seed = fresh_generator()
    log_probs, targets, lengths = random_nat_batch(8, 15, 25, gen, sharp=2.0)
    skip = 0.15
    proxy = oaxe_align(log_probs, targets, lengths)
    nll = -log_probs.gather(2, proxy.clamp(min=0)[..., None]).squeeze(2)
    nll = torch.where(torch.arange(15) < lengths[:, None], nll, torch.zeros_like(nll))
    nll[nll > -math.log(skip, 2)] = 0  # the public implementation's rule
    ours = oaxe_loss(log_probs, targets, lengths, truncate=skip ** (1 / math.log(2)), reduction="none")
    torch.testing.assert_close(ours, nll.sum(dim=1), msg=lambda m: f"seed={seed}: {m}")


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="no GPU with the CUDA kernels")
def test_cuda_equals_cpu():
    gen, seed = fresh_generator()
    log_probs, targets, lengths = random_nat_batch(64, 48, 500, gen, dtype=torch.float32)
    on_cpu = oaxe_align(log_probs, targets, lengths)
    on_gpu = oaxe_align(log_probs.cuda(), targets.cuda(), lengths.cuda())
    assert torch.equal(on_cpu, on_gpu.cpu()), f"seed={seed}"
    torch.testing.assert_close(oaxe_loss(log_probs, targets, lengths),
                               oaxe_loss(log_probs.cuda(), targets.cuda(), lengths.cuda()).cpu())


@pytest.mark.parametrize("device", devices())
def test_zero_lengths(device):
    log_probs = torch.log_softmax(torch.randn(3, 4, 5), -1).to(device).requires_grad_()
    targets = torch.zeros(3, 4, dtype=torch.long, device=device)
    lengths = torch.zeros(3, dtype=torch.long, device=device)
    loss = oaxe_loss(log_probs, targets, lengths)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.all(log_probs.grad == 0)
    assert torch.equal(oaxe_align(log_probs, targets, lengths), targets)


@pytest.mark.parametrize("device", devices())
def test_bad_inputs(device):
    log_probs = torch.log_softmax(torch.randn(3, 4, 5), -1).to(device)
    targets = torch.randint(0, 5, (3, 4), device=device)
    lengths = torch.tensor([4, 2, 3], device=device)
    with pytest.raises(ValueError, match=r"lengths\[1\] = 5 is outside \[0, L = 4\]"):
        oaxe_loss(log_probs, targets, torch.tensor([4, 5, 3], device=device))
    with pytest.raises(ValueError, match=r"lengths\[2\] = -1"):
        oaxe_align(log_probs, targets, torch.tensor([4, 2, -1], device=device))
    bad_targets = targets.clone()
    bad_targets[1, 1] = 5
    with pytest.raises(ValueError, match=r"targets\[1, 1\] = 5 is not a token id in \[0, V = 5\)"):
        oaxe_loss(log_probs, bad_targets, lengths)
    padded = targets.clone()
    padded[1, 3] = -100  # beyond lengths[1]: ignored
    oaxe_loss(log_probs, padded, lengths)
    nan_probs = log_probs.clone()
    nan_probs[2, 0, targets[2, 1]] = math.nan
    with pytest.raises(ValueError, match=rf"log_probs\[2, 0, {int(targets[2, 1])}\] = nan \(sentence 2, "
                                         r"prediction 0"):
        oaxe_loss(nan_probs, targets, lengths)
    # +inf is not a log-probability: named as such, not as the internal cost's "-inf".
    inf_probs = log_probs.clone()
    inf_probs[1, 1, :] = math.inf
    with pytest.raises(ValueError, match=r"log_probs\[1, 1, \d+\] = inf .* must be finite or -inf"):
        oaxe_align(inf_probs, targets, lengths)
    # Two predictions that can only take the same one token: no ordering has a non-zero probability.
    zero_probs = log_probs.clone()
    distinct = targets.clone()
    distinct[0] = torch.tensor([0, 1, 2, 3], device=device)
    zero_probs[0, :2, :] = -math.inf
    zero_probs[0, :2, 0] = 0.0
    with pytest.raises(ValueError, match=r"sentence 0: every ordering of its 4 target tokens gives some "
                                         r"prediction a zero probability"):
        oaxe_loss(zero_probs, distinct, lengths)
    meta = torch.zeros(3, 4, 5, device="meta")
    with pytest.raises(ValueError, match="log_probs is on the meta device"):
        oaxe_loss(meta, targets, lengths)
    with pytest.raises(ValueError, match=r"targets must have shape \(B, L\)"):
        oaxe_loss(log_probs, targets[:, :3], lengths)
    with pytest.raises(ValueError, match=r"log_probs must have shape \(B, L, V\)"):
        oaxe_loss(log_probs[0], targets, lengths)
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\)"):
        oaxe_loss(log_probs, targets, lengths[:2])
    with pytest.raises(TypeError, match="targets must be an integer tensor"):
        oaxe_loss(log_probs, targets.float(), lengths)
    with pytest.raises(TypeError, match="log_probs must be a floating tensor"):
        oaxe_loss(targets[..., None], targets, lengths)
    with pytest.raises(ValueError, match="reduction must be one of"):
        oaxe_loss(log_probs, targets, lengths, reduction="avg")
    for p in (0.0, -0.5, 1.5, True):
        with pytest.raises(ValueError, match="truncate must be a probability"):
            oaxe_loss(log_probs, targets, lengths, truncate=p)
    if torch.device(device).type == "cpu" and cuda_usable():
        with pytest.raises(ValueError, match="lengths is on"):
            oaxe_loss(log_probs, targets, lengths.cuda())


@pytest.mark.parametrize("device", devices())
def test_empty_vocabulary_and_empty_sentences(device):
    # V = 0 is legal when every sentence is empty (no target token needs an id); it once indexed
    # into the empty vocabulary.
    for width in (0, 3):
        log_probs = torch.zeros(2, width, 0, device=device, requires_grad=True)
        targets = torch.zeros(2, width, dtype=torch.long, device=device)
        lengths = torch.zeros(2, dtype=torch.long, device=device)
        loss = oaxe_loss(log_probs, targets, lengths)
        assert loss.item() == 0.0
        assert oaxe_loss(log_probs, targets, lengths, reduction="none").tolist() == [0.0, 0.0]
        assert torch.equal(oaxe_align(log_probs, targets, lengths), targets)
    with pytest.raises(ValueError, match=r"targets\[0, 0\] = 0 is not a token id in \[0, V = 0\)"):
        oaxe_loss(torch.zeros(1, 2, 0, device=device), torch.zeros(1, 2, dtype=torch.long, device=device),
                  torch.tensor([1], device=device))


def test_huge_batches_are_refused_before_allocating():
    log_probs = torch.zeros(1, 1, 2).expand(4, 60000, 2)
    targets = torch.zeros(1, 1, dtype=torch.long).expand(4, 60000)
    with pytest.raises(ValueError, match=r"oaxe: the cost matrices \(B, L, L\) = \(4, 60000, 60000\) "
                                         r"would need 107\.\d+ GiB"):
        oaxe_loss(log_probs, targets, torch.full((4,), 60000))


def test_truncation_compares_in_float64():
    # float32(ln 0.5) = -0.69314718246... < ln 0.5: below the threshold, so the term is dropped; a
    # float32 comparison would round ln 0.5 to the same float32 and keep it.
    log_probs = torch.tensor([[[math.log(0.5)]]], dtype=torch.float32)
    assert float(log_probs) < math.log(0.5)
    loss = oaxe_loss(log_probs, torch.tensor([[0]]), torch.tensor([1]), truncate=0.5, reduction="sum")
    assert float(loss) == 0.0
