// Batched linear assignment, CPU backend: an exact shortest-augmenting-path solver (Jonker-Volgenant
// dual updates, Crouse's rectangular variant, as in scipy.optimize.linear_sum_assignment), one
// problem at a time per thread, parallel over the batch with at::parallel_for.
//
// Square problems without +inf first get the Jonker-Volgenant initialisation (column reduction,
// reduction transfer, augmenting row reduction), which usually assigns most rows.  Every row still
// free is then assigned by one Dijkstra search from that row over the reduced costs
// c[i][j] - u[i] - v[j] >= 0, stopped at the first free column; the dual variables u, v are then
// updated so the reduced costs stay non-negative, and the path is flipped.  O(N^2 M) worst case.
// The CUDA backend (mple/lap_warp.h) takes the same steps with the same tie rule (mple/lap.h).
// All arithmetic is float64 whatever the input dtype: float32 costs are widened on load, as scipy
// does, so the optimum is the float64 optimum of the given float32 values.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "mple/checks.h"
#include "mple/lap.h"
#include "mple/lap_checks.h"
#include "mple/memory.h"

namespace mple {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Scratch arrays of one solver, sized for the padded problem and reused across the problems a
// thread solves.
struct LapWorkspace {
  std::vector<double> u, v, dist;
  std::vector<double> widened;  // float64 copy of a float32 problem
  std::vector<int64_t> path, row4col, col4row, remaining, free_rows;
  std::vector<char> row_visited, col_done;

  LapWorkspace(int64_t rows, int64_t cols)
      : u(rows), v(cols), dist(cols), path(cols), row4col(cols), col4row(rows), remaining(cols),
        free_rows(rows), row_visited(rows), col_done(cols) {}
};

// Scans the unpadded block: kLapInvalidEntry on NaN or -inf, kLapCostOutOfRange on a finite entry
// whose magnitude could overflow the float64 duals (mple/lap.h); sets has_inf on +inf.
template <typename scalar_t>
int32_t scan_entries(const scalar_t* cost, int64_t row_stride, int64_t rows, int64_t cols,
                     bool& has_inf) {
  has_inf = false;
  const double limit = lap_cost_magnitude_limit(rows, cols);
  bool out_of_range = false;
  for (int64_t i = 0; i < rows; ++i) {
    const scalar_t* row = cost + i * row_stride;
    for (int64_t j = 0; j < cols; ++j) {
      const double c = static_cast<double>(row[j]);
      if (std::isnan(c) || c == -kInf) return kLapInvalidEntry;
      has_inf = has_inf || c == kInf;
      out_of_range = out_of_range || (c != kInf && std::fabs(c) > limit);
    }
  }
  return out_of_range ? kLapCostOutOfRange : kLapOk;
}

// Jonker-Volgenant initialisation of a square, all-finite problem: column reduction with reduction
// transfer, then two rounds of augmenting row reduction.  Leaves a partial assignment in which every
// assigned row's column minimises c[i][j] - v[j] over j, sets u[i] to that minimum (so all reduced
// costs of assigned rows are >= 0 and 0 on their column), and returns the rows left free, in the
// order the augmentation phase must take them.  Ties go to the smallest index (lap_lowest_two).
// Returns -1 if a reduced cost was not finite (cannot happen after scan_entries' range check).
template <typename scalar_t>
int64_t jv_initialize(const scalar_t* cost, int64_t row_stride, int64_t n, LapWorkspace& ws) {
  double* u = ws.u.data();
  double* v = ws.v.data();
  int64_t* row4col = ws.row4col.data();
  int64_t* col4row = ws.col4row.data();
  int64_t* free_rows = ws.free_rows.data();
  char* unique = ws.row_visited.data();  // reused as "row is the minimum of exactly one column"

  // Column reduction: v[j] = min_i c[i][j], the first minimising row takes the column if still free.
  for (int64_t j = 0; j < n; ++j) {
    v[j] = static_cast<double>(cost[j]);
    row4col[j] = 0;
  }
  for (int64_t i = 1; i < n; ++i) {
    const scalar_t* row = cost + i * row_stride;
    for (int64_t j = 0; j < n; ++j) {  // selects, so the compiler can vectorise
      const double c = static_cast<double>(row[j]);
      const bool lower = c < v[j];
      v[j] = lower ? c : v[j];
      row4col[j] = lower ? i : row4col[j];
    }
  }
  std::fill(unique, unique + n, 1);
  for (int64_t j = n - 1; j >= 0; --j) {
    const int64_t i = row4col[j];
    if (col4row[i] < 0) {
      col4row[i] = j;
    } else {
      unique[i] = 0;
      row4col[j] = -1;
    }
  }
  // Reduction transfer: a row that is the minimum of one column only lowers that column's v so that
  // the row's second-best reduced cost becomes its best.
  int64_t num_free = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (col4row[i] < 0) {
      free_rows[num_free++] = i;
    } else if (unique[i]) {
      const int64_t j = col4row[i];
      const scalar_t* row = cost + i * row_stride;
      double second = kInf;
      for (int64_t k = 0; k < n; ++k) {
        if (k != j) second = std::min(second, static_cast<double>(row[k]) - v[k]);
      }
      v[j] -= second;
    }
  }

  // Augmenting row reduction (twice, as JV do): a free row takes its best column, lowering that
  // column's v to the row's second-best reduced cost, and evicts the column's previous row.
  for (int round = 0; round < 2 && num_free > 0; ++round) {
    int64_t current = 0, new_free = 0, steps = 0;
    while (current < num_free) {
      ++steps;
      const int64_t i = free_rows[current++];
      const scalar_t* row = cost + i * row_stride;
      LapLowestTwo best;
      for (int64_t j = 0; j < n; ++j) best.push_ascending(static_cast<double>(row[j]) - v[j], j);
      // Finite reduced costs (guaranteed by scan_entries' range check) always give two columns.
      if (best.col1 >= n || best.col2 >= n) return -1;
      int64_t j1 = best.col1;
      int64_t evicted = row4col[j1];
      const double lowered = v[j1] - (best.value2 - best.value1);
      const bool lowers = lowered < v[j1];
      if (steps < current * n) {  // JV's bound on the work of one round
        if (lowers) {
          v[j1] = lowered;
        } else if (evicted >= 0) {
          j1 = best.col2;
          evicted = row4col[j1];
        }
        if (evicted >= 0) {
          if (lowers) {
            free_rows[--current] = evicted;  // evicted row is taken next
          } else {
            free_rows[new_free++] = evicted;
          }
        }
      } else if (evicted >= 0) {
        free_rows[new_free++] = evicted;
      }
      if (evicted >= 0) col4row[evicted] = -1;
      col4row[i] = j1;
      row4col[j1] = i;
    }
    num_free = new_free;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = col4row[i];
    u[i] = j >= 0 ? static_cast<double>(cost[i * row_stride + j]) - v[j] : 0.0;
  }
  return num_free;
}

// Adds free row cur_row to the partial assignment: Dijkstra over reduced costs to the nearest free
// column, dual update, path flip.  Returns kLapInfeasible if every reachable column is forbidden.
template <typename scalar_t>
int32_t augment_row(const scalar_t* cost, int64_t row_stride, int64_t rows, int64_t cols,
                    int64_t cur_row, LapWorkspace& ws) {
  double* u = ws.u.data();
  double* v = ws.v.data();
  double* dist = ws.dist.data();
  int64_t* path = ws.path.data();
  int64_t* row4col = ws.row4col.data();
  int64_t* col4row = ws.col4row.data();
  int64_t* remaining = ws.remaining.data();
  char* row_visited = ws.row_visited.data();
  char* col_done = ws.col_done.data();
  std::fill(dist, dist + cols, kInf);
  std::fill(row_visited, row_visited + rows, 0);
  std::fill(col_done, col_done + cols, 0);
  for (int64_t k = 0; k < cols; ++k) remaining[k] = k;
  int64_t num_remaining = cols;

  // Settle one column per step until a free column is reached.
  double min_val = 0.0;
  int64_t i = cur_row;
  int64_t sink = -1;
  while (sink < 0) {
    row_visited[i] = 1;
    const scalar_t* cost_row = cost + i * row_stride;
    const double offset = min_val - u[i];  // the same expression as the CUDA kernel
    double lowest = kInf;
    bool lowest_assigned = true;
    int64_t lowest_col = std::numeric_limits<int64_t>::max();
    int64_t lowest_pos = -1;
    for (int64_t k = 0; k < num_remaining; ++k) {
      const int64_t j = remaining[k];
      const double reduced = offset + static_cast<double>(cost_row[j]) - v[j];
      // Written as selects rather than a branch: the comparison is unpredictable.
      const double old = dist[j];
      const bool shorter = reduced < old;
      const double d = shorter ? reduced : old;
      dist[j] = d;
      path[j] = shorter ? i : path[j];
      if (d <= lowest) {
        if (d < lowest || lap_column_precedes(d, row4col[j] >= 0, j, lowest, lowest_assigned,
                                              lowest_col)) {
          lowest = d;
          lowest_assigned = row4col[j] >= 0;
          lowest_col = j;
          lowest_pos = k;
        }
      }
    }
    if (lowest == kInf) return kLapInfeasible;
    min_val = lowest;
    const int64_t j = lowest_col;
    if (row4col[j] < 0) {
      sink = j;
    } else {
      i = row4col[j];
    }
    col_done[j] = 1;
    remaining[lowest_pos] = remaining[--num_remaining];
  }

  // Dual update: keeps reduced costs non-negative and makes the new path tight.
  for (int64_t r = 0; r < rows; ++r) {
    if (r == cur_row) {
      u[r] += min_val;
    } else if (row_visited[r]) {
      u[r] += min_val - dist[col4row[r]];
    }
  }
  for (int64_t c = 0; c < cols; ++c) {
    if (col_done[c]) v[c] -= min_val - dist[c];
  }
  // Flip the alternating path ending at the sink.
  for (int64_t j = sink;;) {
    const int64_t r = path[j];
    row4col[j] = r;
    std::swap(col4row[r], j);
    if (r == cur_row) break;
  }
  return kLapOk;
}

// Solves one checked rows x cols problem (rows <= cols, no NaN or -inf) in float64.
int32_t solve_checked(const double* cost, int64_t row_stride, int64_t rows, int64_t cols,
                      bool has_inf, LapWorkspace& ws, int64_t* col_of_row) {
  std::fill(ws.u.begin(), ws.u.begin() + rows, 0.0);
  std::fill(ws.v.begin(), ws.v.begin() + cols, 0.0);
  std::fill(ws.row4col.begin(), ws.row4col.begin() + cols, int64_t{-1});
  std::fill(ws.col4row.begin(), ws.col4row.begin() + rows, int64_t{-1});
  int64_t num_free = rows;
  if (lap_use_jv_initialization(rows, cols, has_inf)) {
    num_free = jv_initialize(cost, row_stride, rows, ws);
    if (num_free < 0) return kLapCostOutOfRange;
  } else {
    for (int64_t i = 0; i < rows; ++i) ws.free_rows[i] = i;
  }
  for (int64_t k = 0; k < num_free; ++k) {
    const int32_t code = augment_row(cost, row_stride, rows, cols, ws.free_rows[k], ws);
    if (code != kLapOk) return code;
  }
  std::copy(ws.col4row.begin(), ws.col4row.begin() + rows, col_of_row);
  return kLapOk;
}

// Solves one rows x cols problem (rows <= cols) whose row i starts at cost + i * row_stride.
// Writes the column of each row to col_of_row[0..rows) and returns a LapStatus.  float32 blocks are
// widened to float64 once up front (the solver reads every entry many times).
template <typename scalar_t>
int32_t solve_assignment(const scalar_t* cost, int64_t row_stride, int64_t rows, int64_t cols,
                         LapWorkspace& ws, int64_t* col_of_row) {
  bool has_inf = false;
  const int32_t scanned = scan_entries(cost, row_stride, rows, cols, has_inf);
  if (scanned != kLapOk) return scanned;
  if constexpr (std::is_same_v<scalar_t, double>) {
    return solve_checked(cost, row_stride, rows, cols, has_inf, ws, col_of_row);
  } else {
    ws.widened.resize(rows * cols);
    for (int64_t i = 0; i < rows; ++i) {
      std::copy(cost + i * row_stride, cost + i * row_stride + cols, ws.widened.data() + i * cols);
    }
    return solve_checked(ws.widened.data(), cols, rows, cols, has_inf, ws, col_of_row);
  }
}

std::tuple<at::Tensor, at::Tensor> linear_sum_assignment_cpu(const at::Tensor& cost_in,
                                                             const at::Tensor& row_lengths_in,
                                                             const at::Tensor& col_lengths_in) {
  check_lap_args(cost_in, row_lengths_in, col_lengths_in);
  {
    // A contiguous copy of a strided cost, and per thread the scratch of one problem: a float64 copy
    // of a float32 block, and the dual, distance and matching arrays.
    const int64_t n = cost_in.size(1), m = cost_in.size(2);
    const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), cost_in.size(0)));
    int64_t bytes = cost_in.is_contiguous() ? 0 : buffer_bytes({cost_in.size(0), n, m}, cost_in.element_size());
    if (cost_in.scalar_type() == at::kFloat) bytes = add_bytes(bytes, buffer_bytes({threads, n, m}, 8));
    bytes = add_bytes(bytes, buffer_bytes({threads, 4 * (n + m)}, 8));
    check_fits_in_memory(bytes, host_memory_bytes(), "linear_sum_assignment",
                         "a batch of " + std::to_string(cost_in.size(0)) + " problems of " + std::to_string(n) +
                             " x " + std::to_string(m),
                         "host");
  }
  const at::Tensor cost = cost_in.contiguous();
  const at::Tensor row_lengths = row_lengths_in.contiguous();
  const at::Tensor col_lengths = col_lengths_in.contiguous();
  const int64_t batch = cost.size(0), padded_rows = cost.size(1), padded_cols = cost.size(2);
  at::Tensor assignment = at::full({batch, padded_rows}, -1, cost.options().dtype(at::kLong));
  at::Tensor status = at::zeros({batch}, cost.options().dtype(at::kInt));
  if (batch == 0) return {assignment, status};
  const int64_t* row_len = row_lengths.data_ptr<int64_t>();
  const int64_t* col_len = col_lengths.data_ptr<int64_t>();
  int64_t* out = assignment.data_ptr<int64_t>();
  int32_t* status_out = status.data_ptr<int32_t>();

  AT_DISPATCH_FLOATING_TYPES(cost.scalar_type(), "linear_sum_assignment_cpu", [&] {
    const scalar_t* cost_ptr = cost.data_ptr<scalar_t>();
    // Problems differ in cost (lengths, structure), so threads take the next unsolved problem from
    // a shared counter instead of a fixed slice of the batch.  Each problem is solved independently,
    // so the result does not depend on which thread solves it.
    std::atomic<int64_t> next_problem{0};
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), batch));
    at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
      LapWorkspace ws(padded_rows, padded_cols);
      for (int64_t b = next_problem++; b < batch; b = next_problem++) {
        const int64_t rows = row_len[b], cols = col_len[b];
        int32_t code = lap_check_lengths(rows, cols, padded_rows, padded_cols);
        int64_t* out_b = out + b * padded_rows;
        if (code == kLapOk) {
          code = solve_assignment(cost_ptr + b * padded_rows * padded_cols, padded_cols, rows, cols,
                                  ws, out_b);
          if (code != kLapOk) std::fill(out_b, out_b + rows, int64_t{-1});
        }
        status_out[b] = code;
      }
    });
  });
  return {assignment, status};
}

}  // namespace

TORCH_LIBRARY_IMPL(mple, CPU, m) {
  m.impl("linear_sum_assignment", &linear_sum_assignment_cpu);
}

}  // namespace mple
