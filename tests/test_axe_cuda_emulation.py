"""The AXE CUDA kernels' code, compiled for the host and run with one host thread per CUDA thread,
must agree bit for bit with the CPU kernel: the same loss, choice table, gradient and proxy target.

No GPU is needed.  The forward kernel runs as a real block: ``threads`` std::threads (32 and more)
execute it concurrently and meet at a reusable barrier wherever the kernel calls ``__syncthreads``
(``__syncthreads_or`` reduces a predicate over the block), so a missing or misplaced barrier shows
up as a wrong result (a mutation test checks that it does), and the block strides (``i +=
blockDim.x``) run with sequences longer than the block.  Both the double and the float
instantiations run; padding ids and NaN padding stay in the inputs, as the kernels must never read
them.  The backtrace kernels have one thread per sequence and no barriers; they run each emulated
thread in turn.  (``axe_product``'s ``__fmul_rn``/``__dmul_rn`` are device intrinsics: the host
build takes its plain IEEE product, which is what they compute.)"""

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
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>
#include "mple/axe.h"
// Just enough of CUDA for the device code to run as host code: thread indices per host thread, and
// a block barrier that all the block's threads must reach (threads that disagree would wait for
// ever: after a few seconds the barrier throws instead, so the test fails rather than hangs).
struct EmulatedDim3 { unsigned x = 0, y = 0, z = 0; };
static thread_local EmulatedDim3 threadIdx, blockIdx;
static EmulatedDim3 blockDim;
struct EmulatedBlockBarrier {
  std::mutex mutex;
  std::condition_variable all_arrived;
  int threads = 0, arrived = 0, pending_or = 0, result_or = 0;
  uint64_t generation = 0;
  int arrive(int predicate) {
    std::unique_lock<std::mutex> lock(mutex);
    const uint64_t my_generation = generation;
    pending_or |= predicate;
    if (++arrived == threads) {
      arrived = 0;
      result_or = pending_or;
      pending_or = 0;
      ++generation;
      all_arrived.notify_all();
      return result_or;
    }
    if (!all_arrived.wait_for(lock, std::chrono::seconds(5), [&] { return generation != my_generation; })) {
      throw std::runtime_error("threads diverged: not all reached the same __syncthreads");
    }
    return result_or;  // stable until every thread has reached the next barrier
  }
};
static EmulatedBlockBarrier* block_barrier = nullptr;
#define __global__
#define __device__
#define __restrict__
#define __syncthreads() (block_barrier->arrive(0))
static int __syncthreads_or(int predicate) { return block_barrier->arrive(predicate); }
"""

HARNESS = r"""
using namespace mple;
template <typename scalar_t>
std::vector<at::Tensor> emulate_as(at::Tensor log_probs, at::Tensor targets, at::Tensor pred_lengths,
                                   at::Tensor target_lengths, at::Tensor grad_loss, int64_t blank,
                                   double delta, int64_t threads) {
  const int64_t batch = log_probs.size(0), pred_width = log_probs.size(1);
  const int64_t vocab = log_probs.size(2), target_width = targets.size(1);
  at::Tensor loss = at::empty({batch}, log_probs.options());
  at::Tensor choices = at::zeros({batch, pred_width + 1, target_width + 1},
                                 log_probs.options().dtype(at::kByte));
  at::Tensor diagonals = at::empty({batch, 3, target_width + 1}, log_probs.options());
  blockDim.x = static_cast<unsigned>(threads);
  for (int64_t b = 0; b < batch; ++b) {  // one block at a time, its threads concurrently
    EmulatedBlockBarrier barrier;
    barrier.threads = static_cast<int>(threads);
    block_barrier = &barrier;
    std::atomic<bool> diverged{false};
    std::vector<std::thread> block;
    for (int64_t t = 0; t < threads; ++t) {
      block.emplace_back([&, t] {
        threadIdx.x = static_cast<unsigned>(t);
        blockIdx.x = static_cast<unsigned>(b);
        try {
          axe_forward_kernel<scalar_t, scalar_t>(
              log_probs.data_ptr<scalar_t>(), log_probs.stride(0), log_probs.stride(1), log_probs.stride(2),
              targets.data_ptr<int64_t>(), pred_lengths.data_ptr<int64_t>(),
              target_lengths.data_ptr<int64_t>(), pred_width, target_width, vocab, blank,
              static_cast<scalar_t>(delta), diagonals.data_ptr<scalar_t>(), choices.data_ptr<uint8_t>(),
              loss.data_ptr<scalar_t>());
        } catch (const std::runtime_error&) {
          diverged = true;
        }
      });
    }
    for (auto& thread : block) thread.join();
    TORCH_CHECK(!diverged, "emulated block ", b, ": threads diverged at a barrier");
  }
  block_barrier = nullptr;
  at::Tensor grad = at::zeros({batch, pred_width, vocab}, log_probs.options());
  at::Tensor proxy = at::full({batch, pred_width}, blank, targets.options());
  blockDim.x = kBacktraceThreads;
  for (int64_t block = 0; block * kBacktraceThreads < batch; ++block) {
    for (unsigned t = 0; t < static_cast<unsigned>(kBacktraceThreads); ++t) {
      blockIdx.x = static_cast<unsigned>(block);
      threadIdx.x = t;
      axe_backward_kernel<scalar_t, scalar_t>(
          grad_loss.data_ptr<scalar_t>(), targets.data_ptr<int64_t>(), pred_lengths.data_ptr<int64_t>(),
          target_lengths.data_ptr<int64_t>(), choices.data_ptr<uint8_t>(), batch, pred_width,
          target_width, vocab, blank, static_cast<scalar_t>(delta), grad.data_ptr<scalar_t>());
      axe_proxy_targets_kernel(choices.data_ptr<uint8_t>(), targets.data_ptr<int64_t>(),
                               pred_lengths.data_ptr<int64_t>(), target_lengths.data_ptr<int64_t>(),
                               batch, pred_width, target_width, proxy.data_ptr<int64_t>());
    }
  }
  return {loss, choices, grad, proxy};
}

std::vector<at::Tensor> emulate(at::Tensor log_probs, at::Tensor targets, at::Tensor pred_lengths,
                                at::Tensor target_lengths, at::Tensor grad_loss, int64_t blank,
                                double delta, int64_t threads) {
  TORCH_CHECK(grad_loss.scalar_type() == log_probs.scalar_type(), "grad_loss dtype");
  if (log_probs.scalar_type() == at::kFloat) {
    return emulate_as<float>(log_probs, targets, pred_lengths, target_lengths, grad_loss, blank, delta, threads);
  }
  return emulate_as<double>(log_probs, targets, pred_lengths, target_lengths, grad_loss, blank, delta, threads);
}
"""


def _build(source_text: str, tag: str):
    from torch.utils.cpp_extension import load_inline

    assert source_text.count(BEGIN) == 1 and source_text.count(END) == 1, "device-code markers missing"
    device_code = source_text[source_text.index(BEGIN):source_text.index(END)]
    source = HOST_STUBS + "namespace mple {\n" + device_code + "\n}  // namespace mple\n" + HARNESS
    name = f"axe_cuda_emulation_{tag}_" + hashlib.sha1(source.encode()).hexdigest()[:12]
    return load_inline(name, cpp_sources=[source], functions=["emulate"],
                       extra_include_paths=[str(ROOT / "csrc" / "include")], extra_cflags=["-O1", "-pthread"],
                       extra_ldflags=["-pthread"])


@pytest.fixture(scope="module")
def emulated():
    if not CUDA_SOURCE.exists():
        pytest.skip("csrc/cuda/axe_cuda.cu not present (installed without sources)")
    return _build(CUDA_SOURCE.read_text(), "real")


CASES = [(1, 1, 1, 3), (5, 7, 4, 11), (6, 4, 9, 11), (8, 33, 20, 101), (3, 64, 80, 300),
         (2, 100, 120, 40), (4, 0, 3, 5), (4, 3, 0, 5), (130, 5, 6, 9)]


def _check_against_cpu(emulated, case, dtype, threads, deltas=(0.0, 1.0, 2.5)):
    for delta in deltas:
        log_probs, targets, pred_lengths, target_lengths, blank = random_batch(*case, seed=sum(case), dtype=dtype)
        grad_loss = (torch.rand(case[0], dtype=torch.float64) + 0.5).to(dtype)
        loss, choices, grad, proxy = emulated.emulate(log_probs, targets, pred_lengths, target_lengths,
                                                      grad_loss, blank, delta, threads)
        cpu_loss, cpu_choices = torch.ops.mple.axe_forward(log_probs, targets, pred_lengths,
                                                           target_lengths, blank, delta)
        assert torch.equal(loss, cpu_loss), (delta, threads)
        assert torch.equal(choices, cpu_choices), (delta, threads)
        x = log_probs.clone().requires_grad_()
        axe_loss(x, targets, pred_lengths, target_lengths, blank=blank, skip_penalty=delta,
                 reduction="none").backward(grad_loss)
        assert torch.equal(grad, x.grad)
        assert torch.equal(proxy, axe_align(log_probs, targets, pred_lengths, target_lengths,
                                            blank=blank, skip_penalty=delta))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("threads", [32, 64])
def test_emulated_cuda_kernels_match_cpu(emulated, case, threads):
    """Padding keeps its garbage (ids -7, NaN log-probs): a kernel that read it would flag NaN."""
    _check_against_cpu(emulated, case, torch.float64, threads)


@pytest.mark.parametrize("case", [(5, 7, 4, 11), (3, 64, 80, 300), (2, 100, 120, 40)])
def test_emulated_float_kernels_match_cpu(emulated, case):
    _check_against_cpu(emulated, case, torch.float32, 32, deltas=(1.0, 2.5))


def test_the_emulation_catches_a_missing_barrier(emulated):
    """The same kernels with the wavefront's barrier deleted must disagree with the CPU: the
    emulated threads really run concurrently between barriers."""
    text = CUDA_SOURCE.read_text()
    barrier = "      table[j * column_stride + i] = move;\n    }\n    __syncthreads();\n"
    assert barrier in text, "the forward kernel's per-diagonal barrier moved; update this test"
    broken = _build(text.replace(barrier, barrier.replace("    __syncthreads();\n", "")), "nobarrier")
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(6, 120, 120, 40, seed=5, min_len=100)
    ones = torch.ones(6, dtype=torch.float64)
    expected, _ = torch.ops.mple.axe_forward(log_probs, targets, pred_lengths, target_lengths, blank, 1.0)
    loss = broken.emulate(log_probs, targets, pred_lengths, target_lengths, ones, blank, 1.0, 64)[0]
    assert not torch.equal(loss, expected)
    good = emulated.emulate(log_probs, targets, pred_lengths, target_lengths, ones, blank, 1.0, 64)[0]
    assert torch.equal(good, expected)


def test_emulated_cuda_kernels_flag_unreadable_sequences(emulated):
    log_probs, targets, pred_lengths, target_lengths, blank = random_batch(5, 6, 5, 7, seed=3, min_len=3)
    log_probs, targets = log_probs.nan_to_num(0.0), targets.clamp_min(0)
    ones = torch.ones(5, dtype=torch.float64)
    expected, _ = torch.ops.mple.axe_forward(log_probs, targets, pred_lengths, target_lengths, blank, 1.0)

    def run(lp=log_probs, tg=targets, pl=pred_lengths, tl=target_lengths):
        return emulated.emulate(lp, tg, pl, tl, ones, blank, 1.0, 32)[0]

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
    loss, _, grad, _ = emulated.emulate(log_probs, targets, bad_lengths, target_lengths, ones, blank, 1.0, 32)
    assert torch.isnan(loss[0]) and grad[0].abs().sum() == 0
    # -inf log-probs: +inf costs, the same loss as the CPU kernel, never NaN.
    minus_inf = log_probs.clone()
    minus_inf[4, :, targets[4, 0]] = -float("inf")
    cpu, _ = torch.ops.mple.axe_forward(minus_inf, targets, pred_lengths, target_lengths, blank, 1.0)
    assert torch.equal(run(lp=minus_inf), cpu) and not torch.isnan(cpu).any()
