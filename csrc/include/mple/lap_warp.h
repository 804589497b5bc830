// The warp-level linear assignment solver of the CUDA backend (csrc/cuda/lap_cuda.cu): one warp of
// 32 lanes solves one problem, with the same steps, arithmetic and tie rule as the CPU solver
// (csrc/cpu/lap_cpu.cpp), so both return the same assignment.
//
// Lane l owns the columns j with j % 32 == l.  Every scan over columns is split among the lanes, and
// the lanes agree on the next column with a butterfly reduction (warp_shfl_xor) under the total order
// lap_column_precedes, so every lane holds the same decision; lane 0 does the short sequential parts
// (path flips, the column-reduction bookkeeping) and warp_sync() publishes its writes.  All warp-wide
// calls are made in warp-uniform control flow.
//
// The warp primitives are functions so that the solver can also be compiled for the host against an
// emulated warp (tests/test_lap_warp_emulation.py): under nvcc they are the CUDA intrinsics; other
// compilers need MPLE_LAP_WARP_EMULATION defined and mple::warp_sync, warp_any, warp_shfl_xor and
// warp_broadcast_lane0 declared before including this header.
#pragma once

#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "mple/host_device.h"
#include "mple/lap.h"

#if defined(__CUDACC__)
#define MPLE_WARP_FN __device__ inline
namespace mple {
constexpr unsigned kFullWarpMask = 0xffffffffu;
__device__ inline void warp_sync() { __syncwarp(); }
__device__ inline bool warp_any(bool predicate) { return __any_sync(kFullWarpMask, predicate) != 0; }
template <typename T>
__device__ inline T warp_shfl_xor(T value, int lane_mask) {
  return __shfl_xor_sync(kFullWarpMask, value, lane_mask);
}
template <typename T>
__device__ inline T warp_broadcast_lane0(T value) {
  return __shfl_sync(kFullWarpMask, value, 0);
}
}  // namespace mple
#elif defined(MPLE_LAP_WARP_EMULATION)
#define MPLE_WARP_FN inline
#else
#error "mple/lap_warp.h needs nvcc, or MPLE_LAP_WARP_EMULATION with emulated warp primitives"
#endif

namespace mple {

constexpr int kWarpSize = 32;

MPLE_HOST_DEVICE inline int64_t round_up8(int64_t bytes) { return (bytes + 7) / 8 * 8; }

// Bytes of state for one padded rows x cols problem (see WarpState).
MPLE_HOST_DEVICE inline int64_t state_bytes(int64_t rows, int64_t cols) {
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

  MPLE_WARP_FN WarpState(unsigned char* base, int64_t rows, int64_t cols) {
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

MPLE_WARP_FN double warp_min(double x) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    x = fmin(x, warp_shfl_xor(x, offset));
  }
  return x;
}

// The column every lane agrees to settle next (see lap_column_precedes).
struct NextColumn {
  double dist = INFINITY;
  bool assigned = true;
  long long col = LLONG_MAX;

  MPLE_WARP_FN void offer(double d, bool a, long long j) {
    if (lap_column_precedes(d, a, j, dist, assigned, col)) {
      dist = d;
      assigned = a;
      col = j;
    }
  }
  MPLE_WARP_FN void reduce_over_warp() {
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
      const double d = warp_shfl_xor(dist, offset);
      const int a = warp_shfl_xor(static_cast<int>(assigned), offset);
      const long long j = warp_shfl_xor(col, offset);
      offer(d, a != 0, j);
    }
  }
};

MPLE_WARP_FN void reduce_lowest_two(LapLowestTwo& best) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    LapLowestTwo other;
    other.value1 = warp_shfl_xor(best.value1, offset);
    other.value2 = warp_shfl_xor(best.value2, offset);
    other.col1 = warp_shfl_xor(static_cast<long long>(best.col1), offset);
    other.col2 = warp_shfl_xor(static_cast<long long>(best.col2), offset);
    best.merge(other);
  }
}

// JV initialisation (see jv_initialize in csrc/cpu/lap_cpu.cpp, which this mirrors); returns the
// number of free rows, identical on all lanes, or -1 if a reduced cost was not finite.
template <typename scalar_t>
MPLE_WARP_FN int64_t warp_jv_initialize(const scalar_t* cost, int64_t stride, int64_t n,
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
  warp_sync();
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
  num_free = warp_broadcast_lane0(static_cast<long long>(num_free));
  warp_sync();
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
    warp_sync();
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
      // Finite reduced costs (guaranteed by warp_solve's range check) always give two columns;
      // the result is identical on all lanes, so the early return is uniform.
      if (best.col1 >= n || best.col2 >= n) return -1;
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
      warp_sync();  // every lane has read the state it needs before lane 0 changes it
      if (lane == 0) {
        if (write_v) s.v[j1] = lowered;
        if (push_front >= 0) s.free_rows[push_front] = static_cast<int>(evicted);
        if (push_back >= 0) s.free_rows[push_back] = static_cast<int>(evicted);
        if (evicted >= 0) s.col4row[evicted] = -1;
        s.col4row[i] = static_cast<int>(j1);
        s.row4col[j1] = static_cast<int>(i);
      }
      warp_sync();
    }
    num_free = new_free;
  }
  for (int64_t i = lane; i < n; i += kWarpSize) {
    const int j = s.col4row[i];
    s.u[i] = j >= 0 ? static_cast<double>(cost[i * stride + j]) - s.v[j] : 0.0;
  }
  warp_sync();
  return num_free;
}

// Adds free row cur_row (see augment_row in csrc/cpu/lap_cpu.cpp); returns a LapStatus on all lanes.
template <typename scalar_t>
MPLE_WARP_FN int32_t warp_augment_row(const scalar_t* cost, int64_t stride, int64_t rows,
                                    int64_t cols, int64_t cur_row, WarpState& s, int lane) {
  for (int64_t j = lane; j < cols; j += kWarpSize) {
    s.dist[j] = INFINITY;
    s.col_done[j] = 0;
  }
  for (int64_t r = lane; r < rows; r += kWarpSize) s.row_visited[r] = 0;
  warp_sync();

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
  warp_sync();

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
  warp_sync();
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
  warp_sync();
  return kLapOk;
}

template <typename scalar_t>
MPLE_WARP_FN int32_t warp_solve(const scalar_t* cost, int64_t stride, int64_t rows, int64_t cols,
                              WarpState& s, int lane) {
  bool invalid = false, has_inf = false, out_of_range = false;
  const double limit = lap_cost_magnitude_limit(rows, cols);
  // Row by row, lanes across the columns: no 64-bit division per entry, coalesced reads.
  for (int64_t i = 0; i < rows; ++i) {
    const scalar_t* row = cost + i * stride;
    for (int64_t j = lane; j < cols; j += kWarpSize) {
      const double c = static_cast<double>(row[j]);
      invalid = invalid || c != c || c == -INFINITY;  // c != c: NaN
      has_inf = has_inf || c == INFINITY;
      out_of_range = out_of_range || (c != INFINITY && fabs(c) > limit);
    }
  }
  if (warp_any(invalid)) return kLapInvalidEntry;
  if (warp_any(out_of_range)) return kLapCostOutOfRange;
  has_inf = warp_any(has_inf);

  for (int64_t r = lane; r < rows; r += kWarpSize) {
    s.u[r] = 0.0;
    s.col4row[r] = -1;
  }
  for (int64_t c = lane; c < cols; c += kWarpSize) {
    s.v[c] = 0.0;
    s.row4col[c] = -1;
  }
  warp_sync();
  int64_t num_free = rows;
  if (lap_use_jv_initialization(rows, cols, has_inf)) {
    num_free = warp_jv_initialize(cost, stride, rows, s, lane);
    if (num_free < 0) return kLapCostOutOfRange;
  } else {
    for (int64_t r = lane; r < rows; r += kWarpSize) s.free_rows[r] = static_cast<int>(r);
    warp_sync();
  }
  for (int64_t k = 0; k < num_free; ++k) {
    const int32_t code = warp_augment_row(cost, stride, rows, cols, s.free_rows[k], s, lane);
    if (code != kLapOk) return code;
  }
  return kLapOk;
}

// One warp's whole problem b: checks the lengths, solves, and writes row b of the assignment (the
// column of each row, -1 for padded rows and failed problems) and status[b].  `state` holds
// state_bytes(padded_rows, padded_cols) bytes, 8-byte aligned.
template <typename scalar_t>
MPLE_WARP_FN void warp_solve_problem(const scalar_t* cost, const int64_t* row_lengths,
                                     const int64_t* col_lengths, int64_t b, int64_t padded_rows,
                                     int64_t padded_cols, unsigned char* state, int64_t* assignment,
                                     int32_t* status, int lane) {
  WarpState s(state, padded_rows, padded_cols);
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

// How the CUDA kernel lays out the problems: one warp per problem, each problem's state in the
// block's shared memory when it fits (as many warps per block as fit in `shared_budget` bytes, at
// most `max_warps`), else in a global workspace (then `max_warps` warps per block).  A host function
// shared by the launcher and the warp emulation, so both lay problems out the same way.
struct LapLaunchShape {
  bool in_shared;
  int warps_per_block;
};
inline LapLaunchShape lap_launch_shape(int64_t bytes_per_problem, int64_t shared_budget, int max_warps) {
  if (bytes_per_problem > shared_budget) return {false, max_warps};
  const int64_t fit = shared_budget / bytes_per_problem;
  return {true, static_cast<int>(fit < max_warps ? fit : max_warps)};
}

// The state of the problem that warp `warp` of a block solves: its slice of the block's shared
// memory, or problem b's slice of the global workspace.
MPLE_WARP_FN unsigned char* lap_problem_state(unsigned char* shared_state, unsigned char* global_state,
                                              int64_t b, int warp, int64_t bytes_per_problem) {
  return global_state != nullptr ? global_state + b * bytes_per_problem
                                 : shared_state + warp * bytes_per_problem;
}

}  // namespace mple
