// AXE loss (aligned cross entropy), CUDA backend.
//
// Forward: one launch for the batch, one block per sequence.  Cells on an anti-diagonal
// (i + j = d) depend only on the two previous anti-diagonals, so the block sweeps d = 0 .. Ly + Lp
// with its threads spread over the cells of one diagonal and a __syncthreads() between diagonals.
// Three rotating diagonal buffers of Ly + 1 values per sequence hold the DP state (global scratch,
// served from L1/L2; no shared-memory size limit on Ly).  Every cell's move goes to the choice
// table, laid out as on the CPU (mple/axe.h), so the two backends are interchangeable.
//
// Backward and proxy target: one thread per sequence walks its stored moves back from
// (Ly_b, Lp_b).  Each sequence owns its slice of the output and is written by that single thread,
// so entries hit twice (a repeated token, or the blank among the targets) are accumulated by plain
// read-modify-write without atomics, and the result is deterministic.
//
// No host synchronisation: value checks (lengths, token ids) are done once by the Python wrapper;
// a sequence whose lengths or ids cannot be read safely gets a NaN loss and no gradient here.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "mple/axe.h"
#include "mple/axe_checks.h"
#include "mple/memory.h"

namespace mple {
namespace {

// ---- begin device code ----
// Everything up to "end device code" is also compiled for the host, with one thread per block, by
// tests/test_axe_cuda_emulation.py, so that the kernels' indexing is tested without a GPU.

// The backward and proxy-target kernels walk one sequence's path per thread (a serial chain of
// dependent reads).  One warp per block spreads the chains over the SMs: at B = 512, 16 blocks
// rather than the 4 that blocks of 128 threads would occupy, so more SMs' load units and L1 serve
// the walks.
constexpr int kBacktraceThreads = 32;

__device__ inline bool lengths_valid(int64_t pred_length, int64_t target_length, int64_t pred_width,
                                     int64_t target_width) {
  return pred_length >= 0 && pred_length <= pred_width && target_length >= 0 &&
         target_length <= target_width;
}

template <typename scalar_t, typename acc_t>
__global__ void axe_forward_kernel(const scalar_t* __restrict__ log_probs, int64_t stride_batch,
                                   int64_t stride_position, int64_t stride_vocab,
                                   const int64_t* __restrict__ targets,
                                   const int64_t* __restrict__ pred_lengths,
                                   const int64_t* __restrict__ target_lengths, int64_t pred_width,
                                   int64_t target_width, int64_t vocab, int64_t blank, acc_t delta,
                                   acc_t* __restrict__ diagonals, uint8_t* __restrict__ choices,
                                   acc_t* __restrict__ loss) {
  const int64_t b = blockIdx.x;
  const int64_t pred_length = pred_lengths[b];
  const int64_t target_length = target_lengths[b];
  // The same for every thread of the block, so the early return keeps the barriers below uniform.
  if (!lengths_valid(pred_length, target_length, pred_width, target_width)) {
    if (threadIdx.x == 0) loss[b] = NAN;
    return;
  }
  const int64_t column_stride = target_width + 1;
  const scalar_t* lp = log_probs + b * stride_batch;
  const int64_t* y = targets + b * target_width;
  acc_t* diagonal = diagonals + b * 3 * column_stride;
  uint8_t* table = choices + b * (pred_width + 1) * column_stride;
  const acc_t inf = static_cast<acc_t>(INFINITY);
  int invalid = 0;

  // -log P_position(token), flagging NaN / +inf log-probs and out-of-range ids (read as 0).
  auto cost = [&](int64_t position, int64_t token) -> acc_t {
    if (token < 0 || token >= vocab) {
      invalid = 1;
      return acc_t(0);
    }
    const acc_t log_prob =
        static_cast<acc_t>(lp[position * stride_position + token * stride_vocab]);
    invalid |= axe_invalid_log_prob(log_prob) ? 1 : 0;
    return -log_prob;
  };

  const int64_t last = target_length + pred_length;
  for (int64_t d = 0; d <= last; ++d) {
    acc_t* current = diagonal + (d % 3) * column_stride;
    const acc_t* previous = diagonal + ((d + 2) % 3) * column_stride;  // diagonal d - 1
    const acc_t* before = diagonal + ((d + 1) % 3) * column_stride;    // diagonal d - 2
    const int64_t first = d > pred_length ? d - pred_length : 0;
    const int64_t end = d < target_length ? d : target_length;
    for (int64_t i = first + threadIdx.x; i <= end; i += blockDim.x) {
      const int64_t j = d - i;
      acc_t value;
      uint8_t move;
      if (i == 0 && j == 0) {
        value = acc_t(0);
        move = kAxeAlign;
      } else if (i == 0) {  // A[0, j] = A[0, j-1] + E[j]
        value = previous[0] + cost(j - 1, blank);
        move = kAxeSkipPrediction;
      } else if (j == 0) {  // A[i, 0] = A[i-1, 0] + delta * G[i, 1]; +inf without a prediction
        const acc_t step =
            pred_length > 0 ? axe_skip_target_cost(delta, cost(0, y[i - 1])) : inf;
        value = previous[i - 1] + step;
        move = kAxeSkipTarget;
      } else {
        const acc_t g = cost(j - 1, y[i - 1]);
        const acc_t e = cost(j - 1, blank);
        move = axe_choose(before[i - 1] + g, previous[i] + e,
                          previous[i - 1] + axe_skip_target_cost(delta, g), &value);
      }
      current[i] = value;
      table[j * column_stride + i] = move;
    }
    __syncthreads();
  }
  invalid = __syncthreads_or(invalid);
  if (threadIdx.x == 0) {
    loss[b] = invalid ? static_cast<acc_t>(NAN) : diagonal[(last % 3) * column_stride + target_length];
  }
}

template <typename scalar_t, typename acc_t>
__global__ void axe_backward_kernel(const acc_t* __restrict__ grad_loss,
                                    const int64_t* __restrict__ targets,
                                    const int64_t* __restrict__ pred_lengths,
                                    const int64_t* __restrict__ target_lengths,
                                    const uint8_t* __restrict__ choices, int64_t batch,
                                    int64_t pred_width, int64_t target_width, int64_t vocab,
                                    int64_t blank, acc_t delta, scalar_t* __restrict__ grad) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  const int64_t pred_length = pred_lengths[b], target_length = target_lengths[b];
  if (!lengths_valid(pred_length, target_length, pred_width, target_width)) return;
  if (pred_length == 0 && target_length > 0) return;  // no alignment: +inf loss, zero gradient
  const int64_t column_stride = target_width + 1;
  AxeGradientWriter<scalar_t, acc_t> writer{grad + b * pred_width * vocab, vocab,
                                            targets + b * target_width, blank, grad_loss[b], delta};
  axe_backtrace(choices + b * (pred_width + 1) * column_stride, column_stride, target_length,
                pred_length, writer);
}

__global__ void axe_proxy_targets_kernel(const uint8_t* __restrict__ choices,
                                         const int64_t* __restrict__ targets,
                                         const int64_t* __restrict__ pred_lengths,
                                         const int64_t* __restrict__ target_lengths, int64_t batch,
                                         int64_t pred_width, int64_t target_width,
                                         int64_t* __restrict__ out) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  const int64_t pred_length = pred_lengths[b], target_length = target_lengths[b];
  if (!lengths_valid(pred_length, target_length, pred_width, target_width)) return;
  if (pred_length == 0) return;
  const int64_t column_stride = target_width + 1;
  AxeProxyTargetWriter writer{out + b * pred_width, targets + b * target_width};
  axe_backtrace(choices + b * (pred_width + 1) * column_stride, column_stride, target_length,
                pred_length, writer);
}

// ---- end device code ----

int forward_threads(int64_t target_width, int64_t pred_width) {
  // Enough warps to cover the longest anti-diagonal, at most 256.  A diagonal of the
  // (Ly + 1) x (Lp + 1) table holds at most min(Ly, Lp) + 1 cells: sizing by Ly alone would launch
  // 256 threads for Lp = 40, Ly = 1100, with at most 41 busy across every barrier.
  const int64_t cells = std::min(target_width, pred_width) + 1;
  const int64_t warps = (cells + 31) / 32;
  return static_cast<int>(warps >= 8 ? 256 : warps * 32);
}

unsigned backtrace_blocks(int64_t batch) {
  return static_cast<unsigned>((batch + kBacktraceThreads - 1) / kBacktraceThreads);
}

// The forward kernel runs one block per sequence; the grid holds at most 2^31 - 1 blocks.
void check_batch_fits_grid(int64_t batch) {
  TORCH_CHECK(batch <= std::numeric_limits<int>::max(), "log_probs: a batch of ", batch,
              " sequences is too large for one CUDA launch (at most 2^31 - 1)");
}

std::tuple<at::Tensor, at::Tensor> axe_forward_cuda(const at::Tensor& log_probs,
                                                    const at::Tensor& targets_in,
                                                    const at::Tensor& pred_lengths_in,
                                                    const at::Tensor& target_lengths_in,
                                                    int64_t blank, double skip_penalty) {
  check_axe_args(log_probs, targets_in, pred_lengths_in, target_lengths_in, blank, skip_penalty);
  const c10::cuda::CUDAGuard guard(log_probs.device());
  const at::Tensor targets = targets_in.contiguous();
  const at::Tensor pred_lengths = pred_lengths_in.contiguous();
  const at::Tensor target_lengths = target_lengths_in.contiguous();
  const int64_t batch = log_probs.size(0), pred_width = log_probs.size(1);
  const int64_t vocab = log_probs.size(2), target_width = targets.size(1);
  const at::ScalarType loss_dtype = axe_loss_dtype(log_probs.scalar_type());
  at::Tensor loss = at::empty({batch}, log_probs.options().dtype(loss_dtype));
  check_fits_in_memory(
      add_bytes(buffer_bytes({batch, pred_width + 1, target_width + 1}, 1),
                buffer_bytes({batch, 3, target_width + 1}, at::elementSize(loss_dtype))),
      static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->totalGlobalMem), "axe_forward",
      "the alignment table (B, Lp + 1, Ly + 1) = (" + std::to_string(batch) + ", " +
          std::to_string(pred_width + 1) + ", " + std::to_string(target_width + 1) + ")",
      "GPU");
  // Zeroed so that cells outside each sequence's block are deterministic.
  at::Tensor choices =
      at::zeros({batch, pred_width + 1, target_width + 1}, log_probs.options().dtype(at::kByte));
  if (batch == 0) return {loss, choices};
  at::Tensor diagonals = at::empty({batch, 3, target_width + 1}, loss.options());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, log_probs.scalar_type(),
                                  "axe_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    check_batch_fits_grid(batch);
    axe_forward_kernel<scalar_t, acc_t><<<static_cast<unsigned>(batch),
                                          forward_threads(target_width, pred_width), 0, stream>>>(
        log_probs.const_data_ptr<scalar_t>(), log_probs.stride(0), log_probs.stride(1),
        log_probs.stride(2), targets.const_data_ptr<int64_t>(),
        pred_lengths.const_data_ptr<int64_t>(), target_lengths.const_data_ptr<int64_t>(),
        pred_width, target_width, vocab, blank, static_cast<acc_t>(skip_penalty),
        diagonals.data_ptr<acc_t>(), choices.data_ptr<uint8_t>(), loss.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {loss, choices};
}

at::Tensor axe_backward_cuda(const at::Tensor& grad_loss_in, const at::Tensor& log_probs,
                             const at::Tensor& targets_in, const at::Tensor& pred_lengths_in,
                             const at::Tensor& target_lengths_in, const at::Tensor& choices_in,
                             int64_t blank, double skip_penalty) {
  check_axe_args(log_probs, targets_in, pred_lengths_in, target_lengths_in, blank, skip_penalty);
  check_axe_choices(choices_in, log_probs, targets_in);
  check_axe_grad_loss(grad_loss_in, log_probs);
  const c10::cuda::CUDAGuard guard(log_probs.device());
  const at::Tensor grad_loss = grad_loss_in.contiguous();
  const at::Tensor targets = targets_in.contiguous();
  const at::Tensor pred_lengths = pred_lengths_in.contiguous();
  const at::Tensor target_lengths = target_lengths_in.contiguous();
  const at::Tensor choices = choices_in.contiguous();
  const int64_t batch = log_probs.size(0), pred_width = log_probs.size(1);
  const int64_t vocab = log_probs.size(2), target_width = targets.size(1);
  check_fits_in_memory(buffer_bytes({batch, pred_width, vocab}, log_probs.element_size()),
                       static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->totalGlobalMem),
                       "axe_backward",
                       "the gradient (B, Lp, V) = (" + std::to_string(batch) + ", " +
                           std::to_string(pred_width) + ", " + std::to_string(vocab) + ")",
                       "GPU");
  at::Tensor grad = at::zeros({batch, pred_width, vocab}, log_probs.options());
  if (batch == 0) return grad;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, log_probs.scalar_type(),
                                  "axe_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    check_batch_fits_grid(batch);
    axe_backward_kernel<scalar_t, acc_t><<<backtrace_blocks(batch), kBacktraceThreads, 0,
                                           stream>>>(
        grad_loss.const_data_ptr<acc_t>(), targets.const_data_ptr<int64_t>(),
        pred_lengths.const_data_ptr<int64_t>(), target_lengths.const_data_ptr<int64_t>(),
        choices.const_data_ptr<uint8_t>(), batch, pred_width, target_width, vocab, blank,
        static_cast<acc_t>(skip_penalty), grad.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

at::Tensor axe_proxy_targets_cuda(const at::Tensor& choices_in, const at::Tensor& targets_in,
                                  const at::Tensor& pred_lengths_in,
                                  const at::Tensor& target_lengths_in, int64_t blank) {
  check_axe_proxy_targets_args(choices_in, targets_in, pred_lengths_in, target_lengths_in);
  const c10::cuda::CUDAGuard guard(choices_in.device());
  const at::Tensor choices = choices_in.contiguous();
  const at::Tensor targets = targets_in.contiguous();
  const at::Tensor pred_lengths = pred_lengths_in.contiguous();
  const at::Tensor target_lengths = target_lengths_in.contiguous();
  const int64_t batch = choices.size(0), pred_width = choices.size(1) - 1;
  const int64_t target_width = targets.size(1);
  at::Tensor out = at::full({batch, pred_width}, blank, targets.options());
  if (batch == 0) return out;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  check_batch_fits_grid(batch);
  axe_proxy_targets_kernel<<<backtrace_blocks(batch), kBacktraceThreads, 0, stream>>>(
      choices.const_data_ptr<uint8_t>(), targets.const_data_ptr<int64_t>(),
      pred_lengths.const_data_ptr<int64_t>(), target_lengths.const_data_ptr<int64_t>(), batch,
      pred_width, target_width, out.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mple, CUDA, m) {
  m.impl("axe_forward", &axe_forward_cuda);
  m.impl("axe_backward", &axe_backward_cuda);
  m.impl("axe_proxy_targets", &axe_proxy_targets_cuda);
}

}  // namespace mple
