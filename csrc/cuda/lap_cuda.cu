// Batched linear assignment, CUDA backend: one warp per problem, all problems in one launch.
//
// The same algorithm as csrc/cpu/lap_cpu.cpp, step for step: Jonker-Volgenant initialisation on
// square all-finite problems, then one shortest-augmenting-path search per free row (Crouse).  The
// 32 lanes of a warp split every scan over columns (lane l owns the columns j with j % 32 == l) and
// agree on the next column with a butterfly reduction under the total order lap_column_precedes, so
// every lane holds the same decision without shared-memory traffic; lane 0 does the short sequential
// parts (path flips, the column-reduction bookkeeping).  Arithmetic is float64 with the same
// expressions as the CPU code, so both backends return the same assignment.
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
#include <climits>
#include <limits>

#include "mple/lap.h"
#include "mple/lap_checks.h"

namespace mple {
namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxWarpsPerBlock = 4;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int64_t kSharedBytesPerBlock = 48 * 1024;

__host__ __device__ inline int64_t round_up8(int64_t bytes) { return (bytes + 7) / 8 * 8; }

// Bytes of state for one padded rows x cols problem (see WarpState).
__host__ __device__ inline int64_t state_bytes(int64_t rows, int64_t cols) {
  return round_up8(8 * (rows + 2 * cols) + 4 * (2 * rows + 2 * cols) + (rows + cols));
}

// One problem's scratch arrays, carved out of an 8-byte aligned block of state_bytes().
struct WarpState {
  double* u;          // rows: row duals
  double* v;          // cols: column duals
  double* dist;       // cols: shortest-path distances of the current search
  int* path;          // cols: predecessor row of each column on the shortest-path tree
  int* row4col;       // cols: row assigned to each column, -1 if free
  int* col4row;       // rows: column assigned to each row, -1 if free
  int* free_rows;     // rows: rows left for the augmentation phase
  char* row_visited;  // rows: row reached by the current search (also "unique" in the JV init)
  char* col_done;     // cols: column settled by the current search

  __device__ WarpState(unsigned char* base, int64_t rows, int64_t cols) {
    u = reinterpret_cast<double*>(base);
    v = u + rows;
    dist = v + cols;
    path = reinterpret_cast<int*>(dist + cols);
    row4col = path + cols;
    col4row = row4col + cols;
    free_rows = col4row + rows;
    row_visited = reinterpret_cast<char*>(free_rows + rows);
    col_done = row_visited + rows;
  }
};

__device__ inline double warp_min(double x) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    x = fmin(x, __shfl_xor_sync(kFullMask, x, offset));
  }
  return x;
}

// The column every lane agrees to settle next (see lap_column_precedes).
struct NextColumn {
  double dist = INFINITY;
  bool assigned = true;
  long long col = LLONG_MAX;

  __device__ void offer(double d, bool a, long long j) {
    if (lap_column_precedes(d, a, j, dist, assigned, col)) {
      dist = d;
      assigned = a;
      col = j;
    }
  }
  __device__ void reduce_over_warp() {
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
      const double d = __shfl_xor_sync(kFullMask, dist, offset);
      const int a = __shfl_xor_sync(kFullMask, static_cast<int>(assigned), offset);
      const long long j = __shfl_xor_sync(kFullMask, col, offset);
      offer(d, a != 0, j);
    }
  }
};

__device__ inline void reduce_lowest_two(LapLowestTwo& best) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    LapLowestTwo other;
    other.value1 = __shfl_xor_sync(kFullMask, best.value1, offset);
    other.value2 = __shfl_xor_sync(kFullMask, best.value2, offset);
    other.col1 = __shfl_xor_sync(kFullMask, static_cast<long long>(best.col1), offset);
    other.col2 = __shfl_xor_sync(kFullMask, static_cast<long long>(best.col2), offset);
    best.merge(other);
  }
}

// JV initialisation (see jv_initialize in csrc/cpu/lap_cpu.cpp, which this mirrors); returns the
// number of free rows, identical on all lanes.
template <typename scalar_t>
__device__ int64_t warp_jv_initialize(const scalar_t* cost, int64_t stride, int64_t n,
                                      WarpState& s, int lane) {
  // Column reduction: lane-parallel over columns, rows in order so ties go to the first row.
  for (int64_t j = lane; j < n; j += kWarpSize) {
    double best = static_cast<double>(cost[j]);
    int arg = 0;
    for (int64_t i = 1; i < n; ++i) {
      const double c = static_cast<double>(cost[i * stride + j]);
      if (c < best) {
        best = c;
        arg = static_cast<int>(i);
      }
    }
    s.v[j] = best;
    s.row4col[j] = arg;
  }
  __syncwarp();
  char* unique = s.row_visited;
  int64_t num_free = 0;
  if (lane == 0) {
    for (int64_t i = 0; i < n; ++i) unique[i] = 1;
    for (int64_t j = n - 1; j >= 0; --j) {
      const int i = s.row4col[j];
      if (s.col4row[i] < 0) {
        s.col4row[i] = static_cast<int>(j);
      } else {
        unique[i] = 0;
        s.row4col[j] = -1;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      if (s.col4row[i] < 0) s.free_rows[num_free++] = static_cast<int>(i);
    }
  }
  num_free = __shfl_sync(kFullMask, static_cast<long long>(num_free), 0);
  __syncwarp();
  // Reduction transfer, row by row (a row reads the v its predecessors changed).
  for (int64_t i = 0; i < n; ++i) {
    const int j = s.col4row[i];
    if (j < 0 || !unique[i]) continue;
    const scalar_t* row = cost + i * stride;
    double second = INFINITY;
    for (int64_t k = lane; k < n; k += kWarpSize) {
      if (k != j) second = fmin(second, static_cast<double>(row[k]) - s.v[k]);
    }
    second = warp_min(second);
    if (lane == 0) s.v[j] -= second;
    __syncwarp();
  }
  // Augmenting row reduction, two rounds; every lane keeps the same counters.
  for (int round = 0; round < 2 && num_free > 0; ++round) {
    int64_t current = 0, new_free = 0, steps = 0;
    while (current < num_free) {
      ++steps;
      const int64_t i = s.free_rows[current++];
      const scalar_t* row = cost + i * stride;
      LapLowestTwo best;
      for (int64_t j = lane; j < n; j += kWarpSize) best.push(static_cast<double>(row[j]) - s.v[j], j);
      reduce_lowest_two(best);
      int64_t j1 = best.col1;
      int64_t evicted = s.row4col[j1];
      const double v_j1 = s.v[j1];
      const double lowered = v_j1 - (best.value2 - best.value1);
      const bool lowers = lowered < v_j1;
      bool write_v = false;
      int64_t push_front = -1, push_back = -1;
      if (steps < current * n) {
        if (lowers) {
          write_v = true;
        } else if (evicted >= 0) {
          j1 = best.col2;
          evicted = s.row4col[j1];
        }
        if (evicted >= 0) {
          if (lowers) {
            push_front = --current;
          } else {
            push_back = new_free++;
          }
        }
      } else if (evicted >= 0) {
        push_back = new_free++;
      }
      __syncwarp();  // every lane has read the state it needs before lane 0 changes it
      if (lane == 0) {
        if (write_v) s.v[j1] = lowered;
        if (push_front >= 0) s.free_rows[push_front] = static_cast<int>(evicted);
        if (push_back >= 0) s.free_rows[push_back] = static_cast<int>(evicted);
        if (evicted >= 0) s.col4row[evicted] = -1;
        s.col4row[i] = static_cast<int>(j1);
        s.row4col[j1] = static_cast<int>(i);
      }
      __syncwarp();
    }
    num_free = new_free;
  }
  for (int64_t i = lane; i < n; i += kWarpSize) {
    const int j = s.col4row[i];
    s.u[i] = j >= 0 ? static_cast<double>(cost[i * stride + j]) - s.v[j] : 0.0;
  }
  __syncwarp();
  return num_free;
}

// Adds free row cur_row (see augment_row in csrc/cpu/lap_cpu.cpp); returns a LapStatus on all lanes.
template <typename scalar_t>
__device__ int32_t warp_augment_row(const scalar_t* cost, int64_t stride, int64_t rows,
                                    int64_t cols, int64_t cur_row, WarpState& s, int lane) {
  for (int64_t j = lane; j < cols; j += kWarpSize) {
    s.dist[j] = INFINITY;
    s.col_done[j] = 0;
  }
  for (int64_t r = lane; r < rows; r += kWarpSize) s.row_visited[r] = 0;
  __syncwarp();

  double min_val = 0.0;
  int64_t i = cur_row;
  int64_t sink = -1;
  while (sink < 0) {
    if (lane == 0) s.row_visited[i] = 1;
    const scalar_t* cost_row = cost + i * stride;
    const double offset = min_val - s.u[i];
    NextColumn next;
    for (int64_t j = lane; j < cols; j += kWarpSize) {  // lane-owned columns only
      if (s.col_done[j]) continue;
      const double reduced = offset + static_cast<double>(cost_row[j]) - s.v[j];
      if (reduced < s.dist[j]) {
        s.dist[j] = reduced;
        s.path[j] = static_cast<int>(i);
      }
      next.offer(s.dist[j], s.row4col[j] >= 0, j);
    }
    next.reduce_over_warp();
    if (next.dist == INFINITY) return kLapInfeasible;
    min_val = next.dist;
    const int64_t j = next.col;
    const int owner_row = s.row4col[j];
    if (owner_row < 0) {
      sink = j;
    } else {
      i = owner_row;
    }
    if ((j % kWarpSize) == lane) s.col_done[j] = 1;
  }
  __syncwarp();

  for (int64_t r = lane; r < rows; r += kWarpSize) {
    if (r == cur_row) {
      s.u[r] += min_val;
    } else if (s.row_visited[r]) {
      s.u[r] += min_val - s.dist[s.col4row[r]];
    }
  }
  for (int64_t c = lane; c < cols; c += kWarpSize) {
    if (s.col_done[c]) s.v[c] -= min_val - s.dist[c];
  }
  __syncwarp();
  if (lane == 0) {
    for (int64_t j = sink;;) {
      const int r = s.path[j];
      s.row4col[j] = r;
      const int previous = s.col4row[r];
      s.col4row[r] = static_cast<int>(j);
      j = previous;
      if (r == cur_row) break;
    }
  }
  __syncwarp();
  return kLapOk;
}

template <typename scalar_t>
__device__ int32_t warp_solve(const scalar_t* cost, int64_t stride, int64_t rows, int64_t cols,
                              WarpState& s, int lane) {
  bool invalid = false, has_inf = false;
  for (int64_t k = lane; k < rows * cols; k += kWarpSize) {
    const double c = static_cast<double>(cost[(k / cols) * stride + k % cols]);
    invalid = invalid || isnan(c) || c == -INFINITY;
    has_inf = has_inf || c == INFINITY;
  }
  if (__any_sync(kFullMask, invalid)) return kLapInvalidEntry;
  has_inf = __any_sync(kFullMask, has_inf);

  for (int64_t r = lane; r < rows; r += kWarpSize) {
    s.u[r] = 0.0;
    s.col4row[r] = -1;
  }
  for (int64_t c = lane; c < cols; c += kWarpSize) {
    s.v[c] = 0.0;
    s.row4col[c] = -1;
  }
  __syncwarp();
  int64_t num_free = rows;
  if (lap_use_jv_initialization(rows, cols, has_inf)) {
    num_free = warp_jv_initialize(cost, stride, rows, s, lane);
  } else {
    for (int64_t r = lane; r < rows; r += kWarpSize) s.free_rows[r] = static_cast<int>(r);
    __syncwarp();
  }
  for (int64_t k = 0; k < num_free; ++k) {
    const int32_t code = warp_augment_row(cost, stride, rows, cols, s.free_rows[k], s, lane);
    if (code != kLapOk) return code;
  }
  return kLapOk;
}

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
  unsigned char* base = global_state != nullptr ? global_state + b * bytes_per_problem
                                                : shared_state + warp * bytes_per_problem;
  WarpState s(base, padded_rows, padded_cols);
  const int64_t rows = row_lengths[b], cols = col_lengths[b];
  int32_t code = lap_check_lengths(rows, cols, padded_rows, padded_cols);
  if (code == kLapOk) {
    code = warp_solve(cost + b * padded_rows * padded_cols, padded_cols, rows, cols, s, lane);
  }
  int64_t* out = assignment + b * padded_rows;
  for (int64_t r = lane; r < padded_rows; r += kWarpSize) {
    out[r] = (code == kLapOk && r < rows) ? static_cast<int64_t>(s.col4row[r]) : int64_t{-1};
  }
  if (lane == 0) status[b] = code;
}

std::tuple<at::Tensor, at::Tensor> linear_sum_assignment_cuda(const at::Tensor& cost_in,
                                                              const at::Tensor& row_lengths_in,
                                                              const at::Tensor& col_lengths_in) {
  check_lap_args(cost_in, row_lengths_in, col_lengths_in);
  const c10::cuda::CUDAGuard guard(cost_in.device());
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
  const bool in_shared = bytes <= kSharedBytesPerBlock;
  const int warps_per_block =
      in_shared ? static_cast<int>(std::min<int64_t>(kMaxWarpsPerBlock, kSharedBytesPerBlock / bytes))
                : kMaxWarpsPerBlock;
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
