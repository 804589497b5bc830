"""BLEU kernels against sacrebleu on the same ids written as space-separated words."""

from __future__ import annotations

import math

import pytest
import sacrebleu
import torch

from mple_metrics.ops import (
    bleu_from_stats,
    bleu_stats,
    corpus_bleu,
    pairwise_bleu,
    pairwise_bleu_stats,
    sentence_bleu,
)
from mple_metrics.metrics import BLEU
from mple_metrics.ops.bleu import prepare_bleu_batch
from mple_metrics.ops.reference.bleu import (
    ids_to_text,
    sacrebleu_corpus,
    sacrebleu_sentence,
    sacrebleu_stats,
)
from mple_metrics.testing import devices

TOL = 1e-9


def random_sentence(rng, vocab: int, max_len: int, base: list[int] | None = None,
                    min_len: int = 0) -> list[int]:
    """A random id sequence; with `base`, a noisy copy of it, so that higher-order n-grams match."""
    length = int(rng.integers(min_len, max_len + 1))
    if base is None or rng.random() < 0.3:
        return [int(t) for t in rng.integers(0, vocab, size=length)]
    out = []
    for k in range(length):
        keep = k < len(base) and rng.random() >= 0.25
        out.append(base[k] if keep else int(rng.integers(0, vocab)))
    return out


def random_batch(rng, size: int, vocab: int, max_len: int, max_refs: int):
    hyps, refs = [], []
    for _ in range(size):
        hyp = random_sentence(rng, vocab, max_len)
        hyps.append(hyp)
        # References are non-empty: in tensor form a length of 0 means "absent" (see EDGE_CASES).
        refs.append([random_sentence(rng, vocab, max_len, base=hyp, min_len=1)
                     for _ in range(int(rng.integers(1, max_refs + 1)))])
    return hyps, refs


def as_tensors(hyps, refs, device, pad=-7):
    """Tensor form with padding `pad` beyond each length and absent references as length 0."""
    width = max([len(h) for h in hyps] + [1])
    ref_width = max([len(r) for row in refs for r in row] + [1])
    num_refs = max(len(row) for row in refs)
    h = torch.full((len(hyps), width), pad, dtype=torch.int64)
    r = torch.full((len(hyps), num_refs, ref_width), pad, dtype=torch.int64)
    hl = torch.zeros(len(hyps), dtype=torch.int64)
    rl = torch.zeros(len(hyps), num_refs, dtype=torch.int64)
    for b, (hyp, row) in enumerate(zip(hyps, refs)):
        h[b, :len(hyp)] = torch.tensor(hyp, dtype=torch.int64)
        hl[b] = len(hyp)
        for k, ref in enumerate(row):
            r[b, k, :len(ref)] = torch.tensor(ref, dtype=torch.int64)
            rl[b, k] = len(ref)
    return h.to(device), r.to(device), hl.to(device), rl.to(device)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("vocab,max_len,max_refs", [(6, 20, 1), (30, 120, 4), (50_000, 60, 2), (4, 8, 4)])
def test_sentence_bleu_equals_sacrebleu(rng, device, vocab, max_len, max_refs):
    hyps, refs = random_batch(rng, 600, vocab, max_len, max_refs)
    expected = [sacrebleu_sentence(h, r) for h, r in zip(hyps, refs)]
    stats = bleu_stats(hyps, refs) if device.type == "cpu" else None
    if stats is not None:
        assert stats.tolist() == [sacrebleu_stats(e) for e in expected]
    got = sentence_bleu(*as_tensors(hyps, refs, device)[:2], *as_tensors(hyps, refs, device)[2:])
    got_lists = sentence_bleu(hyps, refs)
    want = torch.tensor([e.score for e in expected], dtype=torch.float64)
    assert got.dtype == torch.float64 and got.device.type == device.type
    assert torch.allclose(got.cpu(), want, rtol=0, atol=TOL)
    assert torch.allclose(got_lists, want, rtol=0, atol=TOL)


# Tensor-form reference lengths of 0 mean "absent", so empty references are covered in list form.
EDGE_CASES = {
    "empty hypothesis": ([], [[1, 2, 3]]),
    "empty reference": ([1, 2, 3], [[]]),
    "both empty": ([], [[]]),
    "empty among references": ([5], [[5, 1, 2, 3], []]),
    "one token match": ([7], [[7]]),
    "one token miss": ([7], [[8]]),
    "repeated tokens": ([1, 1, 1, 1, 1, 1], [[1, 1], [1, 1, 1]]),
    "no bigram matches": ([1, 2, 3, 4], [[4, 3, 2, 1]]),
    "no trigram matches": ([1, 2, 3, 4, 5], [[1, 2, 9, 3, 4, 9, 5]]),
    "hypothesis longer than all references": ([1, 2, 3, 4, 5, 6, 7, 8], [[1, 2, 3], [4, 5]]),
    "tie in closest reference length": ([1, 2, 3, 4], [[1, 2, 3, 4, 5, 6], [1, 2]]),
    "tie, shorter first": ([1, 2, 3, 4], [[1, 2], [1, 2, 3, 4, 5, 6]]),
    "identical": ([3, 1, 4, 1, 5, 9, 2, 6], [[3, 1, 4, 1, 5, 9, 2, 6]]),
    "largest int32 ids": ([2**31 - 1, 2**31 - 2, 2**31 - 1], [[2**31 - 1, 2**31 - 1, 2**31 - 2]]),
    "ids beyond 32 bits": ([2**33, 2**34, 2**33 * 3, 0], [[0, 2**33, 2**34, 5]]),
    "negative ids": ([-1, -2, -3], [[-1, -2, -3, -4]]),
}


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("case", list(EDGE_CASES), ids=list(EDGE_CASES))
def test_edge_cases_equal_sacrebleu(device, case):
    hyp, refs = EDGE_CASES[case]
    want = sacrebleu_sentence(hyp, refs)
    batch = [t.to(device) for t in prepare_bleu_batch([hyp], [refs])]
    stats = torch.ops.mple.bleu_stats(*batch)
    assert stats.cpu().tolist() == [sacrebleu_stats(want)]
    got = float(bleu_from_stats(stats, True))
    assert math.isclose(got, want.score, rel_tol=0, abs_tol=TOL), (got, want.score)


def test_absent_and_empty_references_differ_as_documented():
    # List form: an empty reference is a reference of length 0 (sacrebleu), which wins the closest
    # length here and removes the brevity penalty.  Tensor form: length 0 means absent.
    hyp, refs = [5], [[5, 1, 2, 3], []]
    with_empty = float(sentence_bleu([hyp], [refs]))
    assert math.isclose(with_empty, sacrebleu_sentence(hyp, refs).score, abs_tol=TOL)
    h, r, hl, rl = as_tensors([hyp], [refs], "cpu")
    absent = float(sentence_bleu(h, r, hl, rl))
    assert math.isclose(absent, sacrebleu_sentence(hyp, refs[:1]).score, abs_tol=TOL)
    assert absent < with_empty


@pytest.mark.parametrize("device", devices())
def test_corpus_bleu_equals_sacrebleu(rng, device):
    for vocab, max_len, max_refs in [(10, 30, 1), (40, 80, 4), (1000, 40, 3)]:
        hyps, refs = random_batch(rng, 300, vocab, max_len, max_refs)
        want = sacrebleu_corpus(hyps, refs).score
        got = float(corpus_bleu(*as_tensors(hyps, refs, device)[:2], *as_tensors(hyps, refs, device)[2:]))
        assert math.isclose(got, want, rel_tol=0, abs_tol=TOL), (got, want)
        assert math.isclose(float(corpus_bleu(hyps, refs)), want, rel_tol=0, abs_tol=TOL)
        # The effective order is off by default at corpus level, as in sacrebleu; on request it
        # matches sacrebleu's BLEU(effective_order=True).
        streams = [[ids_to_text(row[k]) if k < len(row) else None for row in refs] for k in range(max_refs)]
        eff = sacrebleu.BLEU(tokenize="none", effective_order=True).corpus_score(
            [ids_to_text(h) for h in hyps], streams).score
        assert math.isclose(float(corpus_bleu(hyps, refs, effective_order=True)), eff, abs_tol=TOL)


@pytest.mark.parametrize("device", devices())
def test_pairwise_bleu_equals_loop_of_sentence_bleu(rng, device):
    batch, k, width = 40, 5, 50
    cands = torch.from_numpy(rng.integers(0, 12, size=(batch, k, width)))
    # Near-copies of candidate 0 so that long n-grams match, plus some empty candidates.
    noise = torch.from_numpy(rng.random((batch, k, width)) < 0.3)
    cands = torch.where(noise, cands, cands[:, :1].expand_as(cands))
    lengths = torch.from_numpy(rng.integers(0, width + 1, size=(batch, k)))
    lengths[0, 1] = 0
    got = pairwise_bleu(cands.to(device), lengths.to(device)).cpu()
    assert got.shape == (batch, k, k) and got.dtype == torch.float64
    for b in range(batch):
        seqs = [cands[b, i, : lengths[b, i]].tolist() for i in range(k)]
        for i in range(k):
            for j in range(k):
                want = sacrebleu_sentence(seqs[i], [seqs[j]]).score
                assert math.isclose(float(got[b, i, j]), want, abs_tol=TOL), (b, i, j)
            assert math.isclose(float(got[b, i, i]), 100.0 if seqs[i] else 0.0, abs_tol=TOL)
    as_lists = [[cands[b, i, : lengths[b, i]].tolist() for i in range(k)] for b in range(batch)]
    # Statistics are integers: equal exactly on every device.  Scores combine them with log/exp,
    # which CUDA's libdevice and glibc may round 1 ulp apart: equal to 1e-12 relative.
    on_device = pairwise_bleu_stats(cands.to(device), lengths.to(device)).cpu()
    assert torch.equal(pairwise_bleu_stats(as_lists), on_device)
    assert torch.allclose(pairwise_bleu(as_lists), got, rtol=1e-12, atol=0)


@pytest.mark.parametrize("device", devices())
def test_non_contiguous_and_int32_inputs(rng, device):
    hyps, refs = random_batch(rng, 64, 20, 40, 3)
    h, r, hl, rl = as_tensors(hyps, refs, device)
    expected = sentence_bleu(h, r, hl, rl)
    # Transposed storage: same values, non-contiguous views.
    h_nc = h.t().contiguous().t()
    r_nc = r.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    assert not h_nc.is_contiguous() and not r_nc.is_contiguous()
    assert torch.equal(sentence_bleu(h_nc, r_nc, hl, rl), expected)
    assert torch.equal(sentence_bleu(h.int(), r.int(), hl.int(), rl.int()), expected)
    # Every second row of a larger batch.
    wide = torch.cat([h, h]).view(2, *h.shape).transpose(0, 1).reshape(-1, h.shape[1])[::2]
    assert torch.equal(sentence_bleu(wide, r, hl, rl), expected)


def test_single_reference_2d_form_and_default_lengths():
    hyps = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    refs = torch.tensor([[1, 2, 3, 5], [5, 6, 7, 8]])
    want = [sacrebleu_sentence(h, [r]).score for h, r in zip(hyps.tolist(), refs.tolist())]
    assert torch.allclose(sentence_bleu(hyps, refs), torch.tensor(want, dtype=torch.float64), atol=TOL)


def test_empty_batch():
    out = sentence_bleu(torch.zeros(0, 5, dtype=torch.int64), torch.zeros(0, 1, 5, dtype=torch.int64))
    assert out.shape == (0,)
    assert pairwise_bleu(torch.zeros(0, 3, 4, dtype=torch.int64)).shape == (0, 3, 3)


BAD_INPUTS = {
    "float hyps": (lambda: sentence_bleu(torch.zeros(2, 3), torch.zeros(2, 1, 3, dtype=torch.long)),
                   TypeError, "hyps"),
    "float refs": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 1, 3)),
                   TypeError, "refs"),
    "hyps rank 3": (lambda: sentence_bleu(torch.zeros(2, 3, 1, dtype=torch.long),
                                          torch.zeros(2, 1, 3, dtype=torch.long)), ValueError, "hyps"),
    "refs rank 4": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                          torch.zeros(2, 1, 3, 1, dtype=torch.long)), ValueError, "refs"),
    "hyp length > width": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                                 torch.ones(2, 1, 3, dtype=torch.long),
                                                 hyp_lengths=torch.tensor([3, 4])), ValueError, "hyp_lengths"),
    "negative hyp length": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                                  torch.ones(2, 1, 3, dtype=torch.long),
                                                  hyp_lengths=torch.tensor([-1, 2])), ValueError, "hyp_lengths"),
    "ref length > width": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                                 torch.ones(2, 2, 3, dtype=torch.long),
                                                 ref_lengths=torch.tensor([[1, 5], [1, 1]])), ValueError, "ref_lengths"),
    "negative ref length": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                                  torch.ones(2, 2, 3, dtype=torch.long),
                                                  ref_lengths=torch.tensor([[1, -1], [1, 1]])), ValueError, "ref_lengths"),
    "row without reference": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                                    torch.ones(2, 2, 3, dtype=torch.long),
                                                    ref_lengths=torch.tensor([[1, 2], [0, 0]])), ValueError, "no reference"),
    "list row without reference": (lambda: sentence_bleu([[1, 2]], [[]]), ValueError, "no reference"),
    "mismatched batch": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                               torch.ones(3, 1, 3, dtype=torch.long)), ValueError, "refs"),
    "mismatched list batch": (lambda: sentence_bleu([[1], [2]], [[[1]]]), ValueError, "refs"),
    "hyp_lengths wrong shape": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long),
                                                      torch.ones(2, 1, 3, dtype=torch.long),
                                                      hyp_lengths=torch.tensor([3, 3, 3])), ValueError, "hyp_lengths"),
    "tensor and list mixed": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long), [[[1]], [[2]]]),
                              TypeError, "refs"),
    "strings instead of ids": (lambda: sentence_bleu([[1]], [["a b"]]), TypeError, "refs"),
    "non-integer ids": (lambda: sentence_bleu([[1.5]], [[[1]]]), TypeError, "hyps"),
    "pairwise lengths > width": (lambda: pairwise_bleu(torch.zeros(1, 2, 3, dtype=torch.long),
                                                       torch.tensor([[1, 4]])), ValueError, "lengths"),
    "pairwise ragged K": (lambda: pairwise_bleu([[[1], [2]], [[1]]]), ValueError, "cands"),
    "stats wrong width": (lambda: bleu_from_stats(torch.zeros(3, 9, dtype=torch.long)), ValueError, "stats"),
    # Ids in [2**63, 2**64) once wrapped to negative int64 and matched (100 where sacrebleu gives 0).
    "id 2**63": (lambda: sentence_bleu([[2**63]], [[[-2**63]]]), ValueError,
                 r"hyps\[0\]\[0\] = 9223372036854775808 is outside the int64 range"),
    "id 2**64 - 1 in refs": (lambda: sentence_bleu([[1]], [[[1, 2**64 - 1]]]), ValueError,
                             r"refs\[0\]\[0\]\[1\] = 18446744073709551615 is outside the int64 range"),
    "id below -2**63": (lambda: corpus_bleu([[1, -2**63 - 1]], [[[1]]]), ValueError,
                        r"hyps\[0\]\[1\] = -9223372036854775809 is outside"),
    "id 2**63 with negatives": (lambda: sentence_bleu([[-1, 2**63]], [[[1]]]), ValueError,
                                r"hyps\[0\]\[1\] = 9223372036854775808"),
    "pairwise id 2**63": (lambda: pairwise_bleu([[[1], [2**63]]]), ValueError, r"cands\[0\]\[1\]\[0\]"),
    "bool id": (lambda: sentence_bleu([[True]], [[[1]]]), TypeError, r"hyps\[0\]\[0\] = True"),
    "hyps None": (lambda: sentence_bleu(None, [[[1]]]), TypeError, "hyps must be a torch.Tensor or a list"),
    "hyps int": (lambda: sentence_bleu(3, [[[1]]]), TypeError, "hyps must be a torch.Tensor or a list"),
    "hyps generator": (lambda: sentence_bleu((h for h in [[1]]), [[[1]]]), TypeError,
                       "hyps must be a torch.Tensor or a list of token-id lists, got generator"),
    "hyp not a list": (lambda: sentence_bleu([3], [[[1]]]), TypeError, r"hyps\[0\] must be a list"),
    "refs row not a list": (lambda: sentence_bleu([[1]], [3]), TypeError, r"refs\[0\] must be a list"),
    "pairwise generator": (lambda: pairwise_bleu(c for c in []), TypeError, "cands must be a torch.Tensor"),
    "meta hyps": (lambda: sentence_bleu(torch.zeros(2, 3, dtype=torch.long, device="meta"),
                                        torch.zeros(2, 1, 3, dtype=torch.long, device="meta")),
                  ValueError, "hyps is on the meta device"),
    "meta stats": (lambda: bleu_from_stats(torch.zeros(2, 10, dtype=torch.long, device="meta")),
                   ValueError, "stats is on the meta device"),
    # Impossible statistics once gave NaN (negative counts) or 271.9 (correct > total).
    "negative count": (lambda: bleu_from_stats(torch.tensor([[-1, 1, 1, 0, 0, 0, 1, 0, 0, 0]])),
                       ValueError, r"stats\[0\] = .* holds a negative count"),
    "negative ref_len": (lambda: bleu_from_stats(torch.tensor([3, -2, 1, 0, 0, 0, 3, 2, 1, 0])),
                         ValueError, r"^stats = .* holds a negative count"),
    "correct > total": (lambda: bleu_from_stats(torch.tensor([[4, 4, 5, 3, 2, 1, 4, 3, 2, 1]])),
                        ValueError, "correct_n > total_n"),
    "total_1 != hyp_len": (lambda: bleu_from_stats(torch.tensor([[[5, 4, 1, 0, 0, 0, 4, 3, 2, 1]]])),
                           ValueError, r"stats\[0, 0\] = .* total_1 != hyp_len"),
    "total_2 > total_1": (lambda: bleu_from_stats(torch.tensor([[2, 4, 1, 0, 0, 0, 2, 3, 0, 0]])),
                          ValueError, r"total_n\+1 > total_n"),
    # Any non-bool effective_order was once read as True.
    "effective_order string": (lambda: sentence_bleu([[1]], [[[1]]], effective_order="no"), TypeError,
                               "effective_order must be True or False, got 'no'"),
    "effective_order int": (lambda: corpus_bleu([[1]], [[[1]]], effective_order=0), TypeError,
                            "effective_order must be True or False"),
    "metric effective_order": (lambda: BLEU(effective_order="yes"), TypeError,
                               "effective_order must be True, False or None"),
    "pairwise memory": (lambda: pairwise_bleu(torch.zeros(1, 1, 1, dtype=torch.long).expand(64, 30000, 1)),
                        ValueError, r"pairwise_bleu_stats: the statistics \(B, K, K, 10\) = "
                                    r"\(64, 30000, 30000, 10\) would need .* GiB, more than the"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_a_clear_error(case):
    call, error, fragment = BAD_INPUTS[case]
    with pytest.raises(error, match=fragment):
        call()


@pytest.mark.parametrize("device", devices())
def test_arguments_on_different_devices(device):
    if device.type == "cpu":
        meta = torch.zeros(2, 1, 3, dtype=torch.long, device="meta")
        with pytest.raises(ValueError, match="refs is on (the )?meta"):
            sentence_bleu(torch.zeros(2, 3, dtype=torch.long), meta)
    else:
        with pytest.raises(ValueError, match="hyp_lengths is on cpu"):
            sentence_bleu(torch.zeros(2, 3, dtype=torch.long, device=device),
                          torch.ones(2, 1, 3, dtype=torch.long, device=device),
                          hyp_lengths=torch.tensor([1, 2]))


def test_kernel_checks_its_own_arguments():
    # Direct calls to the registered op (no Python wrapper) still get named errors.
    with pytest.raises(RuntimeError, match="ref_lengths"):
        torch.ops.mple.bleu_stats(torch.zeros(2, 3, dtype=torch.long), torch.tensor([1, 1]),
                                  torch.zeros(2, 1, 3, dtype=torch.long), torch.tensor([[4], [1]]))
    with pytest.raises(RuntimeError, match="hyps must have dtype"):
        torch.ops.mple.bleu_stats(torch.zeros(2, 3, dtype=torch.int32), torch.tensor([1, 1]),
                                  torch.zeros(2, 1, 3, dtype=torch.long), torch.tensor([[1], [1]]))


@pytest.mark.parametrize("device", devices())
def test_opcheck(rng, device):
    hyps, refs = random_batch(rng, 8, 10, 12, 2)
    batch = [t.to(device) for t in prepare_bleu_batch(hyps, refs)]
    torch.library.opcheck(torch.ops.mple.bleu_stats.default, tuple(batch))
    stats = torch.ops.mple.bleu_stats(*batch)
    torch.library.opcheck(torch.ops.mple.bleu_from_stats.default, (stats, True))
    cands = torch.from_numpy(rng.integers(0, 5, size=(3, 4, 6))).to(device)
    lengths = torch.from_numpy(rng.integers(0, 7, size=(3, 4))).to(device)
    torch.library.opcheck(torch.ops.mple.pairwise_bleu_stats.default, (cands, lengths))
    assert pairwise_bleu_stats(cands, lengths).shape == (3, 4, 4, 10)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available() or not hasattr(torch.ops.mple.pairwise_bleu_stats, "default"),
                    reason="no GPU available")
@pytest.mark.parametrize("width", [64, 12_289, 60_000])
def test_pairwise_bleu_on_cuda_accepts_what_the_cpu_accepts(width):
    """Shared memory (48 KB), the raised opt-in limit (up to 227 KB on sm_90) and global scratch:
    the statistics equal the CPU's at every candidate width."""
    g = torch.Generator().manual_seed(width)
    cands = torch.randint(0, 6, (2, 3, width), generator=g)
    lengths = torch.tensor([[width, width - 5, 3], [0, width, width // 2]])
    cpu = pairwise_bleu_stats(cands, lengths)
    assert torch.equal(pairwise_bleu_stats(cands.cuda(), lengths.cuda()).cpu(), cpu)
