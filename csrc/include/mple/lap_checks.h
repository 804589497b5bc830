// Argument checks of mple::linear_sum_assignment shared by its CPU and CUDA registrations: ranks,
// dtypes, shapes and devices.  Value checks (lengths, NaN, feasibility) are reported per problem in
// the status tensor the op returns (see mple/lap.h), never raised from inside the op.
#pragma once

#include <ATen/ATen.h>

#include "mple/checks.h"

namespace mple {

// cost (B, N, M) float32/float64, row_lengths (B,) int64, col_lengths (B,) int64.
inline void check_lap_args(const at::Tensor& cost, const at::Tensor& row_lengths,
                           const at::Tensor& col_lengths) {
  check_rank(cost, 3, "cost", "(B, N, M)");
  check_rank(row_lengths, 1, "row_lengths", "(B,)");
  check_rank(col_lengths, 1, "col_lengths", "(B,)");
  TORCH_CHECK(cost.scalar_type() == at::kFloat || cost.scalar_type() == at::kDouble,
              "cost must have dtype float32 or float64, got ", cost.scalar_type());
  check_dtype(row_lengths, at::kLong, "row_lengths");
  check_dtype(col_lengths, at::kLong, "col_lengths");
  check_same_device(row_lengths, cost, "row_lengths", "cost");
  check_same_device(col_lengths, cost, "col_lengths", "cost");
  check_size(row_lengths, 0, cost.size(0), "row_lengths", "cost.size(0)");
  check_size(col_lengths, 0, cost.size(0), "col_lengths", "cost.size(0)");
}

}  // namespace mple
