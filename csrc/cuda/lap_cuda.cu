// Batched linear assignment, CUDA backend: one warp per problem, all problems in one launch.
//
// The same algorithm as csrc/cpu/lap_cpu.cpp, step for step, with the 32 lanes of a warp splitting
// every scan over columns: see the warp solver in mple/lap_warp.h.  Arithmetic is float64 with the
// same expressions as the CPU code, so both backends return the same assignment.
//
// Per-problem state (duals, distances, path, matching) lives in shared memory when it fits in 48 KiB
// per block (up to 4 warps, i.e. 4 problems, per block), otherwise in a global workspace.
// Data-dependent failures are reported in the status tensor (mple/lap.h); nothing synchronises.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <string>

#include "mple/lap.h"
#include "mple/lap_checks.h"
#include "mple/lap_warp.h"
#include "mple/memory.h"

namespace mple {
namespace {

constexpr int kMaxWarpsPerBlock = 4;
constexpr int64_t kSharedBytesPerBlock = 48 * 1024;

template <typename scalar_t>
__global__ void linear_sum_assignment_kernel(const scalar_t* __restrict__ cost,
                                             const int64_t* __restrict__ row_lengths,
                                             const int64_t* __restrict__ col_lengths,
                                             int64_t batch, int64_t padded_rows,
                                             int64_t padded_cols, int warps_per_block,
                                             unsigned char* global_state, int64_t bytes_per_problem,
                                             int64_t* __restrict__ assignment,
                                             int32_t* __restrict__ status) {
  extern __shared__ __align__(8) unsigned char shared_state[];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * warps_per_block + warp;
  if (b >= batch) return;  // uniform across the warp
  unsigned char* base = lap_problem_state(shared_state, global_state, b, warp, bytes_per_problem);
  warp_solve_problem(cost, row_lengths, col_lengths, b, padded_rows, padded_cols, base, assignment,
                     status, lane);
}

std::tuple<at::Tensor, at::Tensor> linear_sum_assignment_cuda(const at::Tensor& cost_in,
                                                              const at::Tensor& row_lengths_in,
                                                              const at::Tensor& col_lengths_in) {
  check_lap_args(cost_in, row_lengths_in, col_lengths_in);
  const c10::cuda::CUDAGuard guard(cost_in.device());
  const int64_t device_memory =
      static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->totalGlobalMem);
  const std::string problems = "a batch of " + std::to_string(cost_in.size(0)) + " problems of " +
                               std::to_string(cost_in.size(1)) + " x " + std::to_string(cost_in.size(2));
  check_fits_in_memory(cost_in.is_contiguous() ? 0 : buffer_bytes(
                           {cost_in.size(0), cost_in.size(1), cost_in.size(2)}, cost_in.element_size()),
                       device_memory, "linear_sum_assignment", "a contiguous copy of " + problems, "GPU");
  const at::Tensor cost = cost_in.contiguous();
  const at::Tensor row_lengths = row_lengths_in.contiguous();
  const at::Tensor col_lengths = col_lengths_in.contiguous();
  const int64_t batch = cost.size(0), padded_rows = cost.size(1), padded_cols = cost.size(2);
  TORCH_CHECK(padded_rows < std::numeric_limits<int>::max() &&
                  padded_cols < std::numeric_limits<int>::max(),
              "cost: N and M must be below 2^31 on CUDA, got shape ", cost.sizes());
  at::Tensor assignment = at::empty({batch, padded_rows}, cost.options().dtype(at::kLong));
  at::Tensor status = at::empty({batch}, cost.options().dtype(at::kInt));
  if (batch == 0) return {assignment, status};

  const int64_t bytes = std::max<int64_t>(8, state_bytes(padded_rows, padded_cols));
  const LapLaunchShape shape = lap_launch_shape(bytes, kSharedBytesPerBlock, kMaxWarpsPerBlock);
  const bool in_shared = shape.in_shared;
  const int warps_per_block = shape.warps_per_block;
  check_fits_in_memory(in_shared ? 0 : buffer_bytes({batch, bytes}, 1), device_memory,
                       "linear_sum_assignment", "the solver state of " + problems, "GPU");
  at::Tensor workspace;
  if (!in_shared) workspace = at::empty({batch * bytes}, cost.options().dtype(at::kByte));
  const size_t shared_bytes = in_shared ? static_cast<size_t>(warps_per_block * bytes) : 0;
  const int64_t blocks = (batch + warps_per_block - 1) / warps_per_block;
  TORCH_CHECK(blocks <= std::numeric_limits<int>::max(), "cost: batch too large, got ", batch);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(cost.scalar_type(), "linear_sum_assignment_cuda", [&] {
    linear_sum_assignment_kernel<scalar_t>
        <<<static_cast<unsigned>(blocks), warps_per_block * kWarpSize, shared_bytes, stream>>>(
            cost.data_ptr<scalar_t>(), row_lengths.data_ptr<int64_t>(),
            col_lengths.data_ptr<int64_t>(), batch, padded_rows, padded_cols, warps_per_block,
            in_shared ? nullptr : workspace.data_ptr<unsigned char>(), bytes,
            assignment.data_ptr<int64_t>(), status.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {assignment, status};
}

}  // namespace

TORCH_LIBRARY_IMPL(mple, CUDA, m) {
  m.impl("linear_sum_assignment", &linear_sum_assignment_cuda);
}

}  // namespace mple
