// Batched linear assignment: problem status codes and the tie-breaking rule, shared by the CPU and
// CUDA backends.
//
// Both backends run the same shortest-augmenting-path algorithm (Crouse 2016, the one scipy's
// linear_sum_assignment uses): rows are added one at a time, each by a Dijkstra search over reduced
// costs c[i][j] - u[i] - v[j] in float64, stopped at the first free column reached.  They choose the
// next column with the same total order (below) and do the same float64 additions in the same order,
// so for a given input they return the same assignment, bit for bit, and the same on every run.
#pragma once

#include <math.h>
#include <stdint.h>

#include "mple/host_device.h"

namespace mple {

// Per-problem status written by the op next to the assignment.  Data-dependent problems are never
// raised inside the op (a CUDA kernel could not raise without a host sync); the Python wrapper
// reads the status tensor once and raises an error naming the first failing batch index.
enum LapStatus : int32_t {
  kLapOk = 0,
  kLapInvalidEntry = 1,     // NaN or -inf in the unpadded block
  kLapInfeasible = 2,       // no assignment avoids every +inf entry
  kLapBadRowLength = 3,     // row_lengths[b] outside [0, N]
  kLapBadColLength = 4,     // col_lengths[b] outside [0, M]
  kLapMoreRowsThanCols = 5,  // row_lengths[b] > col_lengths[b]
  kLapCostOutOfRange = 6     // a finite entry above lap_cost_magnitude_limit(rows, cols)
};

// The largest finite |cost| a rows x cols problem may hold.  The solver's float64 dual variables and
// path lengths are sums and differences of O((rows + cols)^2) costs (the augmenting row reduction
// lowers a column dual at most ~2 rows^2 times, each time by at most the spread of the costs), so
// entries below DBL_MAX / (16 (rows + cols + 1)^2) can never overflow to inf and turn a comparison
// into NaN; larger ones are refused rather than solved wrongly (1e308 - (-1e308) is inf).  About
// 4.5e300 for a 1000 x 1000 problem, far beyond any log-probability cost.
MPLE_HOST_DEVICE inline double lap_cost_magnitude_limit(int64_t rows, int64_t cols) {
  const double span = static_cast<double>(rows + cols + 1);
  return 1.79769313486231570815e308 / (16.0 * span * span);
}

// Validates one problem's lengths against the padded sizes; kLapOk if usable.
MPLE_HOST_DEVICE inline int32_t lap_check_lengths(int64_t rows, int64_t cols, int64_t padded_rows,
                                                  int64_t padded_cols) {
  if (rows < 0 || rows > padded_rows) return kLapBadRowLength;
  if (cols < 0 || cols > padded_cols) return kLapBadColLength;
  if (rows > cols) return kLapMoreRowsThanCols;
  return kLapOk;
}

// The order in which the Dijkstra step picks its next column: smallest tentative distance, then a
// free column before an assigned one (it ends the search sooner), then the smallest column index.
// A total order, so the choice never depends on the scan order (or the number of CUDA lanes).
MPLE_HOST_DEVICE inline bool lap_column_precedes(double dist_a, bool assigned_a, int64_t col_a,
                                                 double dist_b, bool assigned_b, int64_t col_b) {
  if (dist_a != dist_b) return dist_a < dist_b;
  if (assigned_a != assigned_b) return !assigned_a;
  return col_a < col_b;
}

// The Jonker-Volgenant initialisation (column reduction, reduction transfer, augmenting row
// reduction) is used on square problems without +inf entries.  It needs square problems because it
// leaves non-zero duals on columns that may end unassigned, and finite costs because it subtracts
// column minima (inf - inf).  Other problems start from the empty assignment with zero duals.
MPLE_HOST_DEVICE inline bool lap_use_jv_initialization(int64_t rows, int64_t cols, bool has_inf) {
  return rows == cols && rows >= 2 && !has_inf;
}

// The lowest and second-lowest (value, column) pairs in lexicographic order, as the augmenting row
// reduction needs them.  push() in any order and merge() of partial results give the same answer.
struct LapLowestTwo {
  double value1 = INFINITY, value2 = INFINITY;
  int64_t col1 = INT64_MAX, col2 = INT64_MAX;

  MPLE_HOST_DEVICE static bool less(double a, int64_t ja, double b, int64_t jb) {
    return a < b || (a == b && ja < jb);
  }
  MPLE_HOST_DEVICE void push(double value, int64_t col) {
    if (less(value, col, value1, col1)) {
      value2 = value1;
      col2 = col1;
      value1 = value;
      col1 = col;
    } else if (less(value, col, value2, col2)) {
      value2 = value;
      col2 = col;
    }
  }
  // push() for columns offered in increasing order (the common case, and cheaper): with col greater
  // than every column seen, (value, col) precedes a pair exactly when value is smaller.  Needs finite
  // values once two columns have been seen, which the JV initialisation guarantees.
  MPLE_HOST_DEVICE void push_ascending(double value, int64_t col) {
    // Selects instead of branches: which case applies is unpredictable in the first columns.
    const bool below1 = value < value1;
    const bool below2 = value < value2;
    value2 = below1 ? value1 : (below2 ? value : value2);
    col2 = below1 ? col1 : (below2 ? col : col2);
    value1 = below1 ? value : value1;
    col1 = below1 ? col : col1;
  }
  MPLE_HOST_DEVICE void merge(const LapLowestTwo& other) {
    push(other.value1, other.col1);
    push(other.value2, other.col2);
  }
};

}  // namespace mple
