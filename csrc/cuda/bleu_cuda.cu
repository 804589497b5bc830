// Sentence BLEU statistics on token ids, CUDA backend.
//
// One warp per (hypothesis, references) pair.  Lanes stride over the hypothesis' n-gram positions; a
// position counts only if it is the first occurrence of its n-gram in the hypothesis, and then
// contributes min(count in hypothesis, max count in any one reference).  n-grams are compared token
// by token, so identity is exact for any int64 id.  The work is O(H * (H + sum of reference lengths))
// per order, which for sentence lengths beats building hash tables in shared memory.
//
// Rows with invalid lengths cannot raise without a device->host sync; they get statistics of -1,
// which bleu_from_stats turns into NaN.  The Python wrappers validate lengths before launching.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "mple/bleu_score.h"
#include "mple/checks.h"
#include "mple/memory.h"

namespace mple {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;

__device__ inline bool ngram_equal(const int64_t* a, const int64_t* b, int order) {
  for (int k = 0; k < order; ++k) {
    if (a[k] != b[k]) return false;
  }
  return true;
}

// Occurrences of the n-gram `gram` in `seq` (length `len`), starting the scan at position `from`.
__device__ inline int64_t count_ngram(const int64_t* gram, const int64_t* seq, int64_t len,
                                      int order, int64_t from) {
  int64_t count = 0;
  for (int64_t q = from; q + order <= len; ++q) count += ngram_equal(gram, seq + q, order);
  return count;
}

// True if the n-gram at position p of `seq` occurs at an earlier position.
__device__ inline bool seen_before(const int64_t* seq, int64_t p, int order) {
  for (int64_t q = 0; q < p; ++q) {
    if (ngram_equal(seq + q, seq + p, order)) return true;
  }
  return false;
}

__device__ inline int64_t warp_sum(int64_t value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

__device__ inline void write_invalid(int64_t* out) {
  for (int k = 0; k < kBleuStatsWidth; ++k) out[k] = -1;
}

__global__ void bleu_stats_kernel(const int64_t* __restrict__ hyps,
                                  const int64_t* __restrict__ hyp_lengths,
                                  const int64_t* __restrict__ refs,
                                  const int64_t* __restrict__ ref_lengths, int64_t batch,
                                  int64_t hyp_width, int64_t num_refs, int64_t ref_width,
                                  int64_t* __restrict__ out) {
  const int64_t pair = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (pair >= batch) return;  // whole warps exit together
  const int64_t* hyp = hyps + pair * hyp_width;
  const int64_t* ref_base = refs + pair * num_refs * ref_width;
  const int64_t* ref_lens = ref_lengths + pair * num_refs;
  int64_t* row = out + pair * kBleuStatsWidth;

  const int64_t hyp_len = hyp_lengths[pair];
  bool valid = hyp_len >= 0 && hyp_len <= hyp_width;
  for (int64_t r = 0; r < num_refs; ++r) valid = valid && ref_lens[r] >= -1 && ref_lens[r] <= ref_width;
  const int64_t closest = bleu_closest_ref_len(hyp_len, ref_lens, num_refs);
  if (!valid || closest < 0) {
    if (lane == 0) write_invalid(row);
    return;
  }

  for (int order = 1; order <= kBleuMaxOrder; ++order) {
    int64_t correct = 0;
    for (int64_t p = lane; p + order <= hyp_len; p += kWarp) {
      if (seen_before(hyp, p, order)) continue;
      const int64_t hyp_count = 1 + count_ngram(hyp + p, hyp, hyp_len, order, p + 1);
      int64_t ref_max = 0;
      for (int64_t r = 0; r < num_refs && ref_max < hyp_count; ++r) {
        if (ref_lens[r] <= 0) continue;
        const int64_t c = count_ngram(hyp + p, ref_base + r * ref_width, ref_lens[r], order, 0);
        ref_max = c > ref_max ? c : ref_max;
      }
      correct += hyp_count < ref_max ? hyp_count : ref_max;
    }
    correct = warp_sum(correct);
    if (lane == 0) {
      row[kBleuCorrect + order - 1] = correct;
      row[kBleuTotal + order - 1] = bleu_total_ngrams(hyp_len, order);
    }
  }
  if (lane == 0) {
    row[kBleuHypLen] = hyp_len;
    row[kBleuRefLen] = closest;
  }
}

// One warp per (source b, hypothesis candidate i).  For each order the warp first records the count
// of every distinct n-gram of candidate i (0 for repeated positions), once; then scores i against
// every candidate j from that record.  The record lives in shared memory, or, for candidates too
// long for it, in the global `scratch` (one row of `width` counts per task).
__global__ void pairwise_bleu_stats_kernel(const int64_t* __restrict__ cands,
                                           const int64_t* __restrict__ lengths, int64_t batch,
                                           int64_t num_cands, int64_t width, int warps_per_block,
                                           int32_t* __restrict__ scratch, int64_t* __restrict__ out) {
  extern __shared__ int32_t shared_counts[];
  const int warp = threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  const int64_t task = static_cast<int64_t>(blockIdx.x) * warps_per_block + warp;
  if (task >= batch * num_cands) return;
  const int64_t b = task / num_cands, i = task % num_cands;
  int32_t* hyp_counts = scratch != nullptr ? scratch + task * width
                                           : shared_counts + static_cast<int64_t>(warp) * width;
  const int64_t* source = cands + b * num_cands * width;
  const int64_t* lens = lengths + b * num_cands;
  const int64_t* hyp = source + i * width;
  const int64_t hyp_len = lens[i];
  int64_t* rows = out + (b * num_cands + i) * num_cands * kBleuStatsWidth;

  bool valid = true;
  for (int64_t j = 0; j < num_cands; ++j) valid = valid && lens[j] >= 0 && lens[j] <= width;
  if (!valid) {
    for (int64_t j = lane; j < num_cands; j += kWarp) write_invalid(rows + j * kBleuStatsWidth);
    return;
  }
  for (int64_t j = lane; j < num_cands; j += kWarp) {
    rows[j * kBleuStatsWidth + kBleuHypLen] = hyp_len;
    rows[j * kBleuStatsWidth + kBleuRefLen] = lens[j];
  }
  for (int order = 1; order <= kBleuMaxOrder; ++order) {
    for (int64_t p = lane; p + order <= hyp_len; p += kWarp) {
      hyp_counts[p] = seen_before(hyp, p, order)
                          ? 0
                          : static_cast<int32_t>(1 + count_ngram(hyp + p, hyp, hyp_len, order, p + 1));
    }
    __syncwarp();
    for (int64_t j = 0; j < num_cands; ++j) {
      const int64_t* ref = source + j * width;
      int64_t correct = 0;
      for (int64_t p = lane; p + order <= hyp_len; p += kWarp) {
        const int64_t hyp_count = hyp_counts[p];
        if (hyp_count == 0) continue;
        const int64_t c = count_ngram(hyp + p, ref, lens[j], order, 0);
        correct += hyp_count < c ? hyp_count : c;
      }
      correct = warp_sum(correct);
      if (lane == 0) {
        rows[j * kBleuStatsWidth + kBleuCorrect + order - 1] = correct;
        rows[j * kBleuStatsWidth + kBleuTotal + order - 1] = bleu_total_ngrams(hyp_len, order);
      }
    }
    __syncwarp();  // the next order overwrites hyp_counts
  }
}

__global__ void bleu_from_stats_kernel(const int64_t* __restrict__ stats, int64_t rows,
                                       bool effective_order, double* __restrict__ out) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < rows) out[k] = bleu_score_from_stats(stats + k * kBleuStatsWidth, effective_order);
}

// Blocks of a 1-D grid, checked against the grid's limit (2^31 - 1) instead of narrowed silently.
unsigned blocks_for(int64_t items, int64_t per_block, const char* what) {
  const int64_t blocks = (items + per_block - 1) / per_block;
  TORCH_CHECK(blocks <= std::numeric_limits<int>::max(), what, " is too large for one CUDA launch: ",
              items, " items need ", blocks, " blocks (at most 2^31 - 1)");
  return static_cast<unsigned>(blocks);
}

at::Tensor bleu_stats_cuda(const at::Tensor& hyps_in, const at::Tensor& hyp_lengths_in,
                           const at::Tensor& refs_in, const at::Tensor& ref_lengths_in) {
  check_bleu_stats_args(hyps_in, hyp_lengths_in, refs_in, ref_lengths_in);
  const c10::cuda::CUDAGuard guard(hyps_in.device());
  const at::Tensor hyps = hyps_in.contiguous(), hyp_lengths = hyp_lengths_in.contiguous();
  const at::Tensor refs = refs_in.contiguous(), ref_lengths = ref_lengths_in.contiguous();
  const int64_t batch = hyps.size(0);
  at::Tensor out = at::empty({batch, kBleuStatsWidth}, hyps.options());
  if (batch == 0) return out;
  const auto stream = at::cuda::getCurrentCUDAStream();
  bleu_stats_kernel<<<blocks_for(batch, kWarpsPerBlock, "hyps"), kWarpsPerBlock * kWarp, 0, stream>>>(
      hyps.data_ptr<int64_t>(), hyp_lengths.data_ptr<int64_t>(), refs.data_ptr<int64_t>(),
      ref_lengths.data_ptr<int64_t>(), batch, hyps.size(1), refs.size(1), refs.size(2),
      out.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor pairwise_bleu_stats_cuda(const at::Tensor& cands_in, const at::Tensor& lengths_in) {
  check_pairwise_bleu_args(cands_in, lengths_in);
  const c10::cuda::CUDAGuard guard(cands_in.device());
  const at::Tensor cands = cands_in.contiguous(), lengths = lengths_in.contiguous();
  const int64_t batch = cands.size(0), num_cands = cands.size(1), width = cands.size(2);
  at::Tensor out = at::empty({batch, num_cands, num_cands, kBleuStatsWidth}, cands.options());
  if (batch == 0 || num_cands == 0) return out;
  // One int32 count per hypothesis position and warp.  Up to the default 48 KB of shared memory per
  // block as many warps as fit; longer candidates raise the block's limit to the device's opt-in
  // maximum (227 KB on sm_90) with fewer warps per block; beyond that, global scratch.
  constexpr int64_t kDefaultSharedBytes = 48 * 1024;
  const int64_t per_warp = std::max<int64_t>(width, 1) * static_cast<int64_t>(sizeof(int32_t));
  int optin = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                        cands.device().index()));
  const int64_t shared_limit = std::max<int64_t>(kDefaultSharedBytes, optin);
  const bool in_shared = per_warp <= shared_limit;
  const int64_t budget = per_warp <= kDefaultSharedBytes ? kDefaultSharedBytes : shared_limit;
  const int warps_per_block =
      in_shared ? static_cast<int>(std::min<int64_t>(kWarpsPerBlock, budget / per_warp)) : kWarpsPerBlock;
  const int64_t tasks = batch * num_cands;
  at::Tensor scratch;
  size_t shared_bytes = 0;
  if (in_shared) {
    shared_bytes = static_cast<size_t>(warps_per_block * per_warp);
    if (shared_bytes > static_cast<size_t>(kDefaultSharedBytes)) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(pairwise_bleu_stats_kernel,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(shared_bytes)));
    }
  } else {
    const int64_t device_memory =
        static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->totalGlobalMem);
    check_fits_in_memory(buffer_bytes({tasks, width}, sizeof(int32_t)), device_memory, "pairwise_bleu_stats",
                         "the n-gram counts of " + std::to_string(tasks) + " candidates of " +
                             std::to_string(width) + " tokens",
                         "GPU");
    scratch = at::empty({tasks, width}, cands.options().dtype(at::kInt));
  }
  const auto stream = at::cuda::getCurrentCUDAStream();
  pairwise_bleu_stats_kernel<<<blocks_for(tasks, warps_per_block, "cands"), warps_per_block * kWarp,
                               shared_bytes, stream>>>(
      cands.data_ptr<int64_t>(), lengths.data_ptr<int64_t>(), batch, num_cands, width,
      warps_per_block, in_shared ? nullptr : scratch.data_ptr<int32_t>(), out.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor bleu_from_stats_cuda(const at::Tensor& stats_in, bool effective_order) {
  check_bleu_stats_tensor(stats_in);
  const c10::cuda::CUDAGuard guard(stats_in.device());
  const at::Tensor stats = stats_in.contiguous();
  auto out_sizes = stats.sizes().vec();
  out_sizes.pop_back();
  at::Tensor out = at::empty(out_sizes, stats.options().dtype(at::kDouble));
  const int64_t rows = out.numel();
  if (rows == 0) return out;
  constexpr int kThreads = 256;
  bleu_from_stats_kernel<<<blocks_for(rows, kThreads, "stats"), kThreads, 0,
                           at::cuda::getCurrentCUDAStream()>>>(
      stats.data_ptr<int64_t>(), rows, effective_order, out.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mple, CUDA, m) {
  m.impl("bleu_stats", &bleu_stats_cuda);
  m.impl("pairwise_bleu_stats", &pairwise_bleu_stats_cuda);
  m.impl("bleu_from_stats", &bleu_from_stats_cuda);
}

}  // namespace mple
