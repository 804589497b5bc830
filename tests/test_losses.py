"""``mple_metrics.losses``: AXELoss and OaXELoss against their ops, against independent references
(the paper's formulations enumerated by brute force on tiny sizes, the float64 reference DP, scipy's
assignment), gradients, reductions, constructor checks and the documented examples."""

from __future__ import annotations

import copy
import itertools
import math
import pickle
import re
import secrets
from pathlib import Path

import pytest
import torch

import mple_metrics.losses as losses
from mple_metrics.data import BLANK_ID
from mple_metrics.losses import AXELoss, OaXELoss
from mple_metrics.ops import axe_align, axe_loss, oaxe_align, oaxe_loss
from mple_metrics.ops.reference.axe import axe_align_reference, axe_loss_reference
from mple_metrics.ops.reference.lap import oaxe_align_reference, oaxe_loss_reference
from mple_metrics.testing import devices

DEVICES = devices()
REDUCTIONS = ("none", "sum", "mean")
DOCS = Path(__file__).resolve().parents[1] / "docs"


def fresh_seed() -> int:
    return secrets.randbits(40)


def axe_batch(batch: int, pred_width: int, target_width: int, vocab: int, seed: int, *, min_len: int = 0):
    """log_probs (B, Lp, V) float64, targets (B, Ly) in [1, V) (so id 0 is never a target, while
    BLANK_ID may be), ragged lengths (B,)."""
    gen = torch.Generator().manual_seed(seed)
    log_probs = 2 * torch.randn(batch, pred_width, vocab, generator=gen, dtype=torch.float64)
    log_probs = log_probs.log_softmax(-1)
    targets = torch.randint(1, vocab, (batch, target_width), generator=gen)
    pred_lengths = torch.randint(min(min_len, pred_width), pred_width + 1, (batch,), generator=gen)
    target_lengths = torch.randint(min(min_len, target_width), target_width + 1, (batch,), generator=gen)
    return log_probs, targets, pred_lengths, target_lengths


def oaxe_batch(batch: int, width: int, vocab: int, seed: int, *, min_len: int = 0):
    """log_probs (B, L, V) float64, targets (B, L) with repeats and padding -1, lengths (B,)."""
    gen = torch.Generator().manual_seed(seed)
    log_probs = (3 * torch.randn(batch, width, vocab, generator=gen, dtype=torch.float64)).log_softmax(-1)
    targets = torch.randint(0, vocab, (batch, width), generator=gen)
    lengths = torch.randint(min(min_len, width), width + 1, (batch,), generator=gen)
    targets = targets.masked_fill(torch.arange(width) >= lengths[:, None], -1)
    return log_probs, targets, lengths


# ----------------------------------------------------------------------------- AXE: brute force


def lattice_paths(pred_length: int, target_length: int):
    """Every path of the DP's three moves from (0, 0) to (Ly, Lp), as lists of (move, i, j): the
    move ('align', 'skip_prediction', 'skip_target') into cell (i, j)."""
    if pred_length == 0 and target_length == 0:
        yield []
        return
    if pred_length > 0 and target_length > 0:
        for path in lattice_paths(pred_length - 1, target_length - 1):
            yield path + [("align", target_length, pred_length)]
    if pred_length > 0:
        for path in lattice_paths(pred_length - 1, target_length):
            yield path + [("skip_prediction", target_length, pred_length)]
    if target_length > 0:
        for path in lattice_paths(pred_length, target_length - 1):
            yield path + [("skip_target", target_length, pred_length)]


def brute_force_axe(lp: torch.Tensor, target: list[int], blank: int, delta: float) -> tuple[float, list[int]]:
    """(min cost, T*) over every lattice path of DESIGN.md §3 for one sequence (lp: (Lp, V)).

    A skipped target in column 0 is charged to the first prediction, as the recurrence says."""
    pred_length = lp.shape[0]
    best, best_proxy = math.inf, [blank] * pred_length
    for path in lattice_paths(pred_length, len(target)):
        cost, proxy, feasible = 0.0, [blank] * pred_length, True
        for move, i, j in path:
            if move == "align":
                cost -= float(lp[j - 1, target[i - 1]])
                proxy[j - 1] = target[i - 1]
            elif move == "skip_prediction":
                cost -= float(lp[j - 1, blank])
            else:
                if pred_length == 0:
                    feasible = False
                    break
                cost -= delta * float(lp[max(j, 1) - 1, target[i - 1]])
        if feasible and cost < best:
            best, best_proxy = cost, proxy
    return best, best_proxy


def original_axe(lp: torch.Tensor, target: list[int], blank: int) -> float:
    """Ghazvininejad et al.'s objective as the paper writes it (Appendix E.3): min over monotonic
    alignments 1 <= alpha_1 <= ... <= alpha_L <= Lp of -sum_i log P_alpha_i(r_i) minus the blank
    log-probs of the predictions no target is aligned to.  Equals the DP with skip penalty 1."""
    pred_length = lp.shape[0]
    if not target:
        return -float(lp[:, blank].sum())
    best = math.inf
    for alpha in itertools.combinations_with_replacement(range(pred_length), len(target)):
        cost = -sum(float(lp[a, y]) for a, y in zip(alpha, target))
        cost -= sum(float(lp[k, blank]) for k in range(pred_length) if k not in alpha)
        best = min(best, cost)
    return best


def min_nll_over_subsequences(lp: torch.Tensor, target: list[int], blank: int) -> float:
    """Eq. 20 with delta = 0: min over T in S(R) (a subsequence of R with blanks inserted up to
    length Lp) of -sum_j log P_j(T_j)."""
    pred_length = lp.shape[0]
    best = math.inf
    for k in range(min(len(target), pred_length) + 1):
        for slots in itertools.combinations(range(pred_length), k):
            for chosen in itertools.combinations(range(len(target)), k):
                proxy = [blank] * pred_length
                for slot, c in zip(slots, chosen):
                    proxy[slot] = target[c]
                best = min(best, -sum(float(lp[j, t]) for j, t in enumerate(proxy)))
    return best


@pytest.mark.parametrize("sizes", [(0, 0), (2, 0), (0, 2), (1, 1), (3, 2), (2, 3), (4, 4), (5, 3)])
def test_axe_loss_is_the_cheapest_lattice_path(sizes):
    pred_length, target_length = sizes
    seed = fresh_seed()
    for trial in range(3):
        log_probs, targets, _, _ = axe_batch(1, pred_length, target_length, 6, seed + trial)
        delta = (0.0, 0.6, 2.5)[trial]
        criterion = AXELoss(blank=0, skip_penalty=delta, reduction="none")
        loss = criterion(log_probs, targets)
        best, proxy = brute_force_axe(log_probs[0], targets[0].tolist(), 0, delta)
        assert loss.item() == pytest.approx(best, rel=1e-12, abs=1e-12), f"seed={seed + trial}"
        if math.isfinite(best):  # continuous random draws: the cheapest path is unique
            assert criterion.align(log_probs, targets)[0].tolist() == proxy, f"seed={seed + trial}"


@pytest.mark.parametrize("sizes", [(1, 0), (1, 1), (3, 2), (2, 3), (4, 3), (5, 2)])
def test_axe_with_skip_penalty_one_is_the_original_objective(sizes):
    pred_length, target_length = sizes
    seed = fresh_seed()
    log_probs, targets, _, _ = axe_batch(3, pred_length, target_length, 5, seed)
    loss = AXELoss(blank=0, skip_penalty=1.0, reduction="none")(log_probs, targets)
    expected = [original_axe(log_probs[b], targets[b].tolist(), 0) for b in range(3)]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12,
                               msg=lambda m: f"seed={seed}: {m}")


@pytest.mark.parametrize("sizes", [(1, 0), (2, 2), (4, 2), (3, 4), (5, 3)])
def test_axe_with_skip_penalty_zero_is_the_best_proxy_target(sizes):
    pred_length, target_length = sizes
    seed = fresh_seed()
    log_probs, targets, _, _ = axe_batch(2, pred_length, target_length, 5, seed)
    criterion = AXELoss(blank=0, skip_penalty=0.0, reduction="none")
    loss = criterion(log_probs, targets)
    proxy = criterion.align(log_probs, targets)
    for b in range(2):
        expected = min_nll_over_subsequences(log_probs[b], targets[b].tolist(), 0)
        assert loss[b].item() == pytest.approx(expected, rel=1e-12, abs=1e-12), f"seed={seed}"
        nll = -log_probs[b].gather(1, proxy[b][:, None]).sum().item()
        assert nll == pytest.approx(expected, rel=1e-12, abs=1e-12), f"seed={seed}"


# ----------------------------------------------------------------------------- AXE: op and reference


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_axe_module_equals_the_op_and_the_reference(device, reduction):
    seed = fresh_seed()
    for batch, pred_width, target_width, vocab in [(1, 1, 1, 7), (6, 9, 7, 11), (4, 16, 12, 40)]:
        lp, tg, pl, tl = axe_batch(batch, pred_width, target_width, vocab, seed)
        lp, tg, pl, tl = (t.to(device) for t in (lp, tg, pl, tl))
        criterion = AXELoss(skip_penalty=1.7, reduction=reduction)
        got = criterion(lp, tg, pl, tl)
        expected = axe_loss(lp, tg, pl, tl, blank=BLANK_ID, skip_penalty=1.7, reduction=reduction)
        assert torch.equal(got, expected)
        per_seq = axe_loss_reference(lp, tg, pl, tl, blank=BLANK_ID, skip_penalty=1.7)
        reference = {"none": per_seq, "sum": per_seq.sum(),
                     "mean": per_seq.sum() / max(int(tl.sum()), 1)}[reduction]
        torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-12, msg=lambda m: f"seed={seed}: {m}")
        proxy = criterion.align(lp, tg, pl, tl)
        assert torch.equal(proxy, axe_align(lp, tg, pl, tl, blank=BLANK_ID, skip_penalty=1.7))
        assert torch.equal(proxy.cpu(), axe_align_reference(lp, tg, pl, tl, blank=BLANK_ID,
                                                            skip_penalty=1.7).cpu())
        assert proxy.dtype == torch.int64 and tuple(proxy.shape) == (batch, pred_width)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_axe_gradient_equals_the_reference_dp(device, reduction):
    seed = fresh_seed()
    lp, tg, pl, tl = axe_batch(5, 8, 6, 9, seed, min_len=1)
    x = lp.to(device).requires_grad_()
    y = lp.to(device).requires_grad_()
    args = (tg.to(device), pl.to(device), tl.to(device))
    loss = AXELoss(blank=0, skip_penalty=0.5, reduction=reduction)(x, *args)
    per_seq = axe_loss_reference(y, *args, blank=0, skip_penalty=0.5)
    reference = {"none": per_seq, "sum": per_seq.sum(), "mean": per_seq.sum() / tl.sum()}[reduction]
    weights = torch.rand(loss.shape, dtype=torch.float64, device=device)  # a generic upstream gradient
    (loss * weights).sum().backward()
    (reference * weights).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-12, atol=1e-12, msg=lambda m: f"seed={seed}: {m}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_axe_gradcheck(device, reduction):
    gen = torch.Generator().manual_seed(fresh_seed())
    # Distinct costs spread widely: a perturbation of 1e-6 never changes the chosen path.
    x = (-torch.rand(3, 5, 7, generator=gen, dtype=torch.float64) * 5 - 0.1).to(device).requires_grad_()
    targets = torch.randint(1, 7, (3, 4), generator=gen).to(device)
    pred_lengths = torch.tensor([5, 3, 1], device=device)
    target_lengths = torch.tensor([4, 2, 0], device=device)
    criterion = AXELoss(blank=0, skip_penalty=0.8, reduction=reduction)
    assert torch.autograd.gradcheck(lambda lp: criterion(lp, targets, pred_lengths, target_lengths), (x,),
                                    eps=1e-6, atol=1e-7)


def test_axe_reductions_and_conventions():
    lp, tg, pl, _ = axe_batch(6, 8, 7, 13, fresh_seed(), min_len=1)
    tl = torch.arange(1, 7)
    per_seq = AXELoss(reduction="none")(lp, tg, pl, tl)
    assert per_seq.shape == (6,)
    total = AXELoss(reduction="sum")(lp, tg, pl, tl)
    mean = AXELoss()(lp, tg, pl, tl)  # the default: per target token
    assert total.shape == () and mean.shape == ()
    torch.testing.assert_close(total, per_seq.sum())
    torch.testing.assert_close(mean, per_seq.sum() / tl.sum())
    # Not the CTC convention (mean over sequences of per-sequence means) unless all lengths agree.
    assert not torch.isclose(mean, (per_seq / tl).mean())
    # Omitted lengths mean the full padded width.
    full = torch.full((6,), 8), torch.full((6,), 7)
    assert torch.equal(AXELoss(reduction="none")(lp, tg), AXELoss(reduction="none")(lp, tg, *full))
    # No target tokens at all: the sum of blank costs, divided by 1.
    empty = torch.zeros(6, dtype=torch.int64)
    torch.testing.assert_close(AXELoss()(lp, tg, pl, empty), AXELoss(reduction="sum")(lp, tg, pl, empty))
    # float32 in, float32 out; float64 in, float64 out.
    assert AXELoss()(lp.float(), tg, pl, tl).dtype == torch.float32
    assert mean.dtype == torch.float64


# ----------------------------------------------------------------------------- OaXE


@pytest.mark.parametrize("device", DEVICES)
def test_oaxe_brute_force_over_permutations(device):
    seed = fresh_seed()
    for width in range(0, 7):
        lp, tg, lengths = oaxe_batch(3, width, 5, seed + width, min_len=width)
        for truncate in (None, 0.05):
            criterion = OaXELoss(truncate=truncate, reduction="none")
            loss = criterion(lp.to(device), tg.to(device), lengths.to(device)).cpu()
            proxy = criterion.align(lp.to(device), tg.to(device), lengths.to(device)).cpu()
            for b in range(3):
                target = tg[b, :width].tolist()
                costs = {}
                for perm in itertools.permutations(range(width)):
                    terms = [float(lp[b, j, target[perm[j]]]) for j in range(width)]
                    costs[perm] = (-sum(terms), -sum(t for t in terms if truncate is None
                                                     or t >= math.log(truncate)))
                best = min(costs, key=lambda p: costs[p][0])
                assert loss[b].item() == pytest.approx(costs[best][1], rel=1e-12, abs=1e-12), f"seed={seed}"
                assert proxy[b].tolist() == [target[best[j]] for j in range(width)], f"seed={seed}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_oaxe_module_equals_the_op_and_scipy(device, reduction):
    seed = fresh_seed()
    for width, vocab in [(1, 3), (9, 6), (30, 50)]:
        lp, tg, lengths = oaxe_batch(8, width, vocab, seed)
        for truncate in (None, 0.2):
            criterion = OaXELoss(truncate=truncate, reduction=reduction)
            args = (lp.to(device), tg.to(device), lengths.to(device))
            got = criterion(*args)
            assert torch.equal(got, oaxe_loss(*args, truncate=truncate, reduction=reduction))
            expected = oaxe_loss_reference(lp, tg, lengths, truncate=truncate, reduction=reduction)
            torch.testing.assert_close(got.cpu(), expected, rtol=1e-10, atol=1e-10,
                                       msg=lambda m: f"seed={seed}: {m}")
        proxy = OaXELoss().align(*args)
        assert torch.equal(proxy, oaxe_align(*args))
        # Equally good to scipy's permutation (they may differ only on exact ties).
        mine = -lp.gather(2, proxy.cpu().clamp(min=0)[..., None]).squeeze(2)
        theirs = -lp.gather(2, oaxe_align_reference(lp, tg, lengths).clamp(min=0)[..., None]).squeeze(2)
        valid = torch.arange(width) < lengths[:, None]
        torch.testing.assert_close(mine.where(valid, 0.0).sum(1), theirs.where(valid, 0.0).sum(1),
                                   rtol=1e-12, atol=1e-12)
        assert torch.equal(proxy.cpu()[~valid], tg[~valid]), "padding is copied from targets"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_oaxe_gradient_is_minus_one_on_the_chosen_entries(device, reduction):
    seed = fresh_seed()
    lp, tg, lengths = oaxe_batch(5, 7, 9, seed, min_len=1)
    x = lp.to(device).requires_grad_()
    OaXELoss(reduction=reduction)(x, tg.to(device), lengths.to(device)).sum().backward()
    proxy = oaxe_align_reference(lp, tg, lengths)
    valid = torch.arange(7) < lengths[:, None]
    scale = {"none": 1.0, "sum": 1.0, "mean": 1.0 / int(lengths.sum())}[reduction]
    expected = torch.zeros_like(lp)
    expected.scatter_(2, proxy.clamp(min=0)[..., None], (-scale * valid.double())[..., None])
    torch.testing.assert_close(x.grad.cpu(), expected, rtol=0, atol=1e-15, msg=lambda m: f"seed={seed}: {m}")


@pytest.mark.parametrize("device", DEVICES)
def test_oaxe_gradcheck(device):
    lp, tg, lengths = oaxe_batch(3, 5, 6, fresh_seed(), min_len=1)
    x = lp.to(device).requires_grad_()
    for reduction in REDUCTIONS:
        criterion = OaXELoss(reduction=reduction)
        assert torch.autograd.gradcheck(lambda p: criterion(p, tg.to(device), lengths.to(device)), (x,),
                                        eps=1e-6, atol=1e-7)


def test_oaxe_reductions_and_conventions():
    lp, tg, lengths = oaxe_batch(6, 8, 10, fresh_seed(), min_len=1)
    per_seq = OaXELoss(reduction="none")(lp, tg, lengths)
    assert per_seq.shape == (6,)
    torch.testing.assert_close(OaXELoss(reduction="sum")(lp, tg, lengths), per_seq.sum())
    torch.testing.assert_close(OaXELoss()(lp, tg, lengths), per_seq.sum() / lengths.sum())
    # Truncation drops terms but "mean" still divides by every token.
    truncated = OaXELoss(truncate=0.5, reduction="none")(lp, tg, lengths)
    assert bool((truncated <= per_seq + 1e-12).all())
    torch.testing.assert_close(OaXELoss(truncate=0.5)(lp, tg, lengths), truncated.sum() / lengths.sum())
    # truncate=1 keeps only the terms of probability 1: nothing here.
    assert OaXELoss(truncate=1.0, reduction="sum")(lp, tg, lengths).item() == 0.0
    # A batch without tokens: mean 0.
    assert OaXELoss()(lp, tg, torch.zeros(6, dtype=torch.int64)).item() == 0.0
    assert OaXELoss()(lp.float(), tg, lengths).dtype == torch.float32


# ----------------------------------------------------------------------------- the modules


@pytest.mark.parametrize("make, message", [
    (lambda: AXELoss(blank=-1), r"^blank must be a non-negative int token id, got -1$"),
    (lambda: AXELoss(blank=1.0), r"^blank .* got 1\.0$"),
    (lambda: AXELoss(blank=True), r"^blank .* got True$"),
    (lambda: AXELoss(blank="5"), r"^blank .* got '5'$"),
    (lambda: AXELoss(skip_penalty=-0.5), r"^skip_penalty must be a finite number >= 0, got -0\.5$"),
    (lambda: AXELoss(skip_penalty=math.nan), r"^skip_penalty .* got nan$"),
    (lambda: AXELoss(skip_penalty=math.inf), r"^skip_penalty .* got inf$"),
    (lambda: AXELoss(skip_penalty=False), r"^skip_penalty .* got False$"),
    (lambda: AXELoss(skip_penalty="1"), r"^skip_penalty .* got '1'$"),
    (lambda: AXELoss(reduction="avg"), r"^reduction must be one of 'none', 'sum', 'mean', got 'avg'$"),
    (lambda: AXELoss(reduction=None), r"^reduction .* got None$"),
    (lambda: OaXELoss(truncate=0.0), r"^truncate must be None or a probability in \(0, 1\], got 0\.0$"),
    (lambda: OaXELoss(truncate=1.5), r"^truncate .* got 1\.5$"),
    (lambda: OaXELoss(truncate=-0.1), r"^truncate .* got -0\.1$"),
    (lambda: OaXELoss(truncate=math.nan), r"^truncate .* got nan$"),
    (lambda: OaXELoss(truncate=True), r"^truncate .* got True$"),
    (lambda: OaXELoss(truncate="0.5"), r"^truncate .* got '0\.5'$"),
    (lambda: OaXELoss(reduction="batchmean"), r"^reduction .* got 'batchmean'$"),
])
def test_bad_constructor_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_batches_are_named_at_the_call():
    lp, tg, pl, tl = axe_batch(2, 4, 3, 6, 0)
    with pytest.raises(ValueError, match=r"blank must be a token id in \[0, V = 6\)"):
        AXELoss(blank=6)(lp, tg, pl, tl)
    with pytest.raises(ValueError, match="pred_lengths"):
        AXELoss(blank=0)(lp, tg, torch.tensor([5, 1]), tl)
    with pytest.raises(ValueError, match="targets"):
        OaXELoss()(lp, tg, torch.tensor([1, 1]))  # (B, Ly) = (2, 3) does not match (B, L) = (2, 4)
    with pytest.raises(ValueError, match="lengths"):
        OaXELoss()(lp, torch.zeros(2, 4, dtype=torch.int64), torch.tensor([5, 1]))


def test_hyper_parameters_repr_and_no_state():
    axe = AXELoss(blank=3, skip_penalty=5)
    assert (axe.blank, axe.skip_penalty, axe.reduction) == (3, 5.0, "mean")
    assert isinstance(axe.skip_penalty, float)
    assert repr(axe) == "AXELoss(blank=3, skip_penalty=5.0, reduction='mean')"
    assert repr(AXELoss()) == f"AXELoss(blank={BLANK_ID}, skip_penalty=1.0, reduction='mean')"
    oaxe = OaXELoss(truncate=0.25, reduction="sum")
    assert repr(oaxe) == "OaXELoss(truncate=0.25, reduction='sum')"
    assert repr(OaXELoss()) == "OaXELoss(truncate=None, reduction='mean')"
    for module in (axe, oaxe):
        assert isinstance(module, torch.nn.Module)
        assert not list(module.parameters()) and not module.state_dict()
        assert repr(copy.deepcopy(module)) == repr(module) == repr(pickle.loads(pickle.dumps(module)))
    assert losses.__all__ == ["AXELoss", "OaXELoss"]
    assert losses.AXELoss is AXELoss and losses.OaXELoss is OaXELoss


def _examples(text: str) -> list[str]:
    """The ``>>>`` lines of a docstring, or the lines of the python blocks of a markdown page."""
    if ">>> " in text:
        return ["\n".join(line.strip()[4:] for line in text.splitlines() if line.strip().startswith(">>> "))]
    return [block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)]


@pytest.mark.parametrize("cls", [AXELoss, OaXELoss])
def test_docstring_example_runs(cls):
    (code,) = _examples(cls.__doc__)
    assert len(code.splitlines()) == 5
    namespace = {"torch": torch, cls.__name__: cls}
    exec(code, namespace)  # noqa: S102 -- our own documentation
    assert namespace["log_probs"].grad is not None
    assert namespace["proxy"].shape == namespace["log_probs"].shape[:2]


def test_docs_page_examples_run_and_are_linked():
    page = (DOCS / "losses.md").read_text(encoding="utf-8")
    blocks = _examples(page)
    assert len(blocks) >= 2
    for code in blocks:
        exec(code, {})  # noqa: S102 -- our own documentation
    assert "(losses.md)" in (DOCS / "index.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- log-probabilities only


@pytest.mark.parametrize("cls", [AXELoss, OaXELoss])
def test_scores_above_zero_are_refused_naming_log_probs(cls):
    """Logits instead of log-probs give negative "losses" (the ops score any numbers): refused."""
    lp, tg, lengths = oaxe_batch(3, 5, 8, fresh_seed(), min_len=1)
    tg = tg.clamp(min=0)
    args = (tg, lengths) if cls is OaXELoss else (lengths, lengths)
    logits = lp + 4.0  # log_softmax undone by a shift: every value above 0
    criterion = cls() if cls is OaXELoss else cls(blank=0)
    with pytest.raises(ValueError, match=r"^log_probs must be log-probabilities \(<= 0\): log_probs\[0, 0, \d+\]"):
        criterion(logits, *args)
    with pytest.raises(ValueError, match=r"log_probs must be log-probabilities"):
        criterion.align(logits, *args)
    # Rounding just above 0 passes, and positions past the lengths are never read, whatever they hold.
    nudged = lp.clone()
    nudged[:, :, 0] = nudged[:, :, 0].clamp(max=1e-7)
    padded = lp.clone()
    short = lengths.clamp(max=3)
    padded[:, 3:] = 5.0
    if cls is OaXELoss:
        criterion(nudged, tg, lengths)
        torch.testing.assert_close(criterion(padded, tg, short), oaxe_loss(padded, tg, short))
    else:
        criterion(nudged, tg, lengths, lengths)
        torch.testing.assert_close(criterion(padded, tg, short, short), axe_loss(padded, tg, short, short, blank=0))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_a_sentence_no_ordering_can_score_costs_inf_in_both_losses(reduction):
    """A target token of probability 0 at every prediction: +inf without gradient in AXE and OaXE
    alike; the other sentences score as they do alone (the ops on the feasible sentences)."""
    lp, tg, lengths = oaxe_batch(4, 5, 8, fresh_seed(), min_len=2)
    tg = tg.clamp(min=0)
    tg[1, 0] = 3
    lp[1, :, 3] = -math.inf  # sentence 1's first target token is impossible everywhere
    feasible = torch.tensor([0, 2, 3])
    lp.requires_grad_()
    for name, criterion, args, op in (
            ("oaxe", OaXELoss(reduction=reduction), (tg, lengths),
             lambda x, idx: oaxe_loss(x, tg[idx], lengths[idx], reduction="none")),
            ("axe", AXELoss(blank=0, reduction=reduction), (tg, lengths, lengths),
             lambda x, idx: axe_loss(x, tg[idx], lengths[idx], lengths[idx], blank=0, reduction="none"))):
        loss = criterion(lp, *args)
        expected_rest = op(lp[feasible], feasible)
        if reduction == "none":
            assert math.isinf(loss[1].item()) and loss[1].item() > 0, name
            torch.testing.assert_close(loss[feasible], expected_rest)
            (grad,) = torch.autograd.grad(loss[feasible].sum() + loss[1], lp)
        else:
            assert math.isinf(loss.item()) and loss.item() > 0, name
            (grad,) = torch.autograd.grad(loss, lp)
        assert bool((grad[1] == 0).all()), name  # no gradient from the sentence no ordering scores
        (expected_grad,) = torch.autograd.grad(expected_rest.sum(), lp)
        scale = 1.0 if reduction != "mean" else 1.0 / float(lengths.sum())
        torch.testing.assert_close(grad[feasible], scale * expected_grad[feasible], msg=name)
    # OaXE's align keeps that sentence's targets in order, the others as the op aligns them alone.
    proxy = OaXELoss().align(lp, tg, lengths)
    assert proxy[1].tolist() == tg[1].tolist()
    assert proxy[feasible].tolist() == oaxe_align(lp[feasible], tg[feasible], lengths[feasible]).tolist()
    with pytest.raises(ValueError, match="every ordering"):  # the op itself still refuses it
        oaxe_loss(lp, tg, lengths)


def test_readme_kernel_example_runs_and_its_bleu_numbers_are_sacrebleus():
    """The README's kernels snippet runs; the BLEU it quotes (with and without the lengths) is
    sacrebleu's on the unpadded and on the padded ids."""
    import sacrebleu

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL) if "sentence_bleu(" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    quoted = re.search(r"0-100: ([\d.]+), ([\d.]+) \(without the lengths: ([\d.]+), ([\d.]+)\)", block)
    hyps, refs = namespace["hyp_ids"], namespace["ref_ids"]
    hyp_lengths, ref_lengths = [5, 7], [6, 7]

    def text(ids) -> str:
        return " ".join(str(int(i)) for i in ids)

    with_lengths = [sacrebleu.sentence_bleu(text(hyps[b, :hyp_lengths[b]]), [text(refs[b, 0, :ref_lengths[b]])]).score
                    for b in range(2)]
    padded = [sacrebleu.sentence_bleu(text(hyps[b]), [text(refs[b, 0])]).score for b in range(2)]
    torch.testing.assert_close(namespace["scores"], torch.tensor(with_lengths, dtype=torch.float64), rtol=0, atol=1e-9)
    assert [float(x) for x in quoted.groups()] == [round(v, 2) for v in with_lengths + padded]
    assert with_lengths[0] != padded[0]  # the padding changes the score: the lengths matter
