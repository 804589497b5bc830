"""The AXE CUDA kernels' code, compiled for the host and run with one thread per block, must agree
bit for bit with the CPU kernel: the same loss, choice table, gradient and proxy target.

No GPU is needed.  This checks the wavefront's indexing (rotating diagonal buffers, borders, move
codes, NaN flagging, the per-sequence backtrace threads) on every machine; the real multi-threaded
kernels are compared with the CPU kernel by the CUDA tests in test_axe.py on a GPU."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from mple_metrics.ops import axe_align, axe_loss

from test_axe import random_batch

ROOT = Path(__file__).resolve().parents[1]
CUDA_SOURCE = ROOT / "csrc" / "cuda" / "axe_cuda.cu"
BEGIN, END = "// ---- begin device code ----", "// ---- end device code ----"

HOST_STUBS = r"""
#include <torch/extension.h>
#include <cmath>
#include "mple/axe.h"
// Just enough of CUDA for the device code to compile as host code with blockDim.x = 1, where the
// barriers are no-ops and one "thread" computes every cell of a diagonal in turn.
struct EmulatedDim3 { unsigned x = 0, y = 0, z = 0; };
static EmulatedDim3 threadIdx, blockIdx, blockDim;
#define __global__
#define __device__
#define __restrict__
#define __syncthreads()
static int __syncthreads_or(int predicate) { return predicate; }
"""

HARNESS = r"""
using namespace mple;
std::vector<at::Tensor> emulate(at::Tensor log_probs, at::Tensor targets, at::Tensor pred_lengths,
                                at::Tensor target_lengths, at::Tensor grad_loss, int64_t blank,
                                double delta) {
  const int64_t batch = log_probs.size(0), pred_width = log_probs.size(1);
  const int64_t vocab = log_probs.size(2), target_width = targets.size(1);
  at::Tensor loss = at::empty({batch}, log_probs.options());
  at::Tensor choices = at::zeros({batch, pred_width + 1, target_width + 1},
                                 log_probs.options().dtype(at::kByte));
  at::Tensor diagonals = at::empty({batch, 3, target_width + 1}, log_probs.options());
  blockDim.x = 1;
  threadIdx.x = 0;
  for (int64_t b = 0; b < batch; ++b) {
    blockIdx.x = static_cast<unsigned>(b);
    axe_forward_kernel<double, double>(
        log_probs.data_ptr<double>(), log_probs.stride(0), log_probs.stride(1), log_probs.stride(2),
        targets.data_ptr<int64_t>(), pred_lengths.data_ptr<int64_t>(),
        target_lengths.data_ptr<int64_t>(), pred_width, target_width, vocab, blank, delta,
        diagonals.data_ptr<double>(), choices.data_ptr<uint8_t>(), loss.data_ptr<double>());
  }
  at::Tensor grad = at::zeros({batch, pred_width, vocab}, log_probs.options());
  at::Tensor proxy = at::full({batch, pred_width}, blank, targets.options());
  blockDim.x = kBacktraceThreads;
  for (int64_t block = 0; block * kBacktraceThreads < batch; ++block) {
    for (unsigned t = 0; t < static_cast<unsigned>(kBacktraceThreads); ++t) {
      blockIdx.x = static_cast<unsigned>(block);
      threadIdx.x = t;
      axe_backward_kernel<double, double>(
          grad_loss.data_ptr<double>(), targets.data_ptr<int64_t>(), pred_lengths.data_ptr<int64_t>(),
          target_lengths.data_ptr<int64_t>(), choices.data_ptr<uint8_t>(), batch, pred_width,
          target_width, vocab, blank, delta, grad.data_ptr<double>());
      axe_proxy_targets_kernel(choices.data_ptr<uint8_t>(), targets.data_ptr<int64_t>(),
                               pred_lengths.data_ptr<int64_t>(), target_lengths.data_ptr<int64_t>(),
                               batch, pred_width, target_width, proxy.data_ptr<int64_t>());
    }
  }
  return {loss, choices, grad, proxy};
}
"""


@pytest.fixture(scope="module")
def emulated():
    if not CUDA_SOURCE.exists():
        pytest.skip("csrc/cuda/axe_cuda.cu not present (installed without sources)")
    from torch.utils.cpp_extension import load_inline

    text = CUDA_SOURCE.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "device-code markers missing in axe_cuda.cu"
    device_code = text[text.index(BEGIN):text.index(END)]
    source = HOST_STUBS + "namespace mple {\n" + device_code + "\n}  // namespace mple\n" + HARNESS
    name = "axe_cuda_emulation_" + hashlib.sha1(source.encode()).hexdigest()[:12]
    return load_inline(name, cpp_sources=[source], functions=["emulate"],
                       extra_include_paths=[str(ROOT / "csrc" / "include")], extra_cflags=["-O1"])


CASES = [(1, 1, 1, 3), (5, 7, 4, 11), (6, 4, 9, 11), (8, 33, 20, 101), (3, 64, 80, 300),
         (2, 100, 120, 40), (4, 0, 3, 5), (4, 3, 0, 5), (130, 5, 6, 9)]


@pytest.mark.parametrize("case", CASES)
def test_emulated_cuda_kernels_match_cpu(emulated, case):
    for delta in (0.0, 1.0, 2.5):
        log_probs, targets, pred_lengths, target_lengths, blank = random_batch(*case, seed=sum(case))
        targets = targets.clamp_min(0)  # padding ids are not read, but keep them indexable
        grad_loss = torch.rand(case[0], dtype=torch.float64) + 0.5
        loss, choices, grad, proxy = emulated.emulate(log_probs, targets, pred_lengths, target_lengths,
                                                      grad_loss, blank, delta)
        cpu_loss, cpu_choices = torch.ops.mple.axe_forward(log_probs, targets, pred_lengths,
                                                           target_lengths, blank, delta)
        assert torch.equal(loss, cpu_loss)
        assert torch.equal(choices, cpu_choices)
        x = log_probs.clone().requires_grad_()
        axe_loss(x, targets, pred_lengths, target_lengths, blank=blank, skip_penalty=delta,
                 reduction="none").backward(grad_loss)
        assert torch.equal(grad, x.grad)
        assert torch.equal(proxy, axe_align(log_probs, targets, pred_lengths, target_lengths,
                                            blank=blank, skip_penalty=delta))


def test_emulated_cuda_kernels_flag_unreadable_sequences(emulated):
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(5, 6, 5, 7, seed=3, min_len=3)
    log_probs, targets = log_probs.nan_to_num(0.0), targets.clamp_min(0)
    ones = torch.ones(5, dtype=torch.float64)
    expected, _ = torch.ops.mple.axe_forward(log_probs, targets, pred_lengths, target_lengths, blank, 1.0)

    def run(lp=log_probs, tg=targets, pl=pred_lengths, tl=target_lengths):
        return emulated.emulate(lp, tg, pl, tl, ones, blank, 1.0)[0]

    bad = log_probs.clone()
    bad[2, 0, blank] = float("nan")
    bad[3, 1, targets[3, 0]] = float("inf")
    loss = run(lp=bad)
    assert torch.isnan(loss[2]) and torch.isnan(loss[3])
    assert torch.equal(loss[[0, 1, 4]], expected[[0, 1, 4]])
    bad_ids = targets.clone()
    bad_ids[1, 0] = 99
    assert torch.isnan(run(tg=bad_ids)[1])
    bad_lengths = pred_lengths.clone()
    bad_lengths[0] = 50
    loss, _, grad, _ = emulated.emulate(log_probs, targets, bad_lengths, target_lengths, ones, blank, 1.0)
    assert torch.isnan(loss[0]) and grad[0].abs().sum() == 0
    # -inf log-probs: +inf costs, the same loss as the CPU kernel, never NaN.
    minus_inf = log_probs.clone()
    minus_inf[4, :, targets[4, 0]] = -float("inf")
    cpu, _ = torch.ops.mple.axe_forward(minus_inf, targets, pred_lengths, target_lengths, blank, 1.0)
    assert torch.equal(run(lp=minus_inf), cpu) and not torch.isnan(cpu).any()
