// The AXE dynamic programme (DESIGN.md §3; paper Appendix E.3), the parts both backends share: the
// move codes stored per cell, the tie-breaking rule, and the backtrace of the chosen path.
//
// With G[i,j] = -log P_j(Y_i) and E[j] = -log P_j(blank), i in 1..Ly (targets), j in 1..Lp
// (predictions):
//   A[0,0] = 0
//   A[0,j] = A[0,j-1] + E[j]                                        (skip prediction)
//   A[i,0] = A[i-1,0] + delta * G[i,1]                              (skip target, charged to P_1)
//   A[i,j] = min(A[i-1,j-1] + G[i,j],  A[i,j-1] + E[j],  A[i-1,j] + delta * G[i,j])
//                align                 skip prediction   skip target
// Ties go to the earlier move in that order.  The loss is A[Ly, Lp].  With Lp = 0 < Ly there is no
// prediction to charge skipped targets to: A[i,0] = +inf for i > 0 (no alignment exists).
//
// Choice table layout (both backends): uint8 (B, Lp + 1, Ly + 1), entry [b, j, i] is the move into
// cell (i, j).  Column-major in the DP's sense, so the CPU kernel, which sweeps one prediction j at
// a time, writes it contiguously.
#pragma once

#include <math.h>
#include <stdint.h>

#include "mple/host_device.h"

namespace mple {

constexpr uint8_t kAxeAlign = 0;
constexpr uint8_t kAxeSkipPrediction = 1;
constexpr uint8_t kAxeSkipTarget = 2;

// delta * g rounded on its own.  nvcc would otherwise fuse the product with the addition that
// follows into an FMA, rounding differently from the host; kept separate, CPU and CUDA run the same
// IEEE operations in the same order and choose the same path.
MPLE_HOST_DEVICE inline float axe_product(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

MPLE_HOST_DEVICE inline double axe_product(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// Cost of a skip-target move.  delta = 0 makes the move free even where G = +inf (a -inf log-prob),
// as Eq. 20 with delta = 0 drops the term; delta * inf would otherwise give 0 * inf = NaN.
template <typename acc_t>
MPLE_HOST_DEVICE inline acc_t axe_skip_target_cost(acc_t delta, acc_t g) {
  return delta == acc_t(0) ? acc_t(0) : axe_product(delta, g);
}

// The minimum of the three candidates, ties to the earlier move (align, skip prediction, skip
// target).  Strict comparisons keep the earlier move on ties, also between infinities.  Written as
// selects, not branches: on random data the winner is unpredictable, and a mispredicted branch per
// cell would cost more than the cell's arithmetic.
template <typename acc_t>
MPLE_HOST_DEVICE inline uint8_t axe_choose(acc_t align, acc_t skip_prediction, acc_t skip_target,
                                           acc_t* best) {
  const bool prediction_wins = skip_prediction < align;
  const acc_t value = prediction_wins ? skip_prediction : align;
  const uint8_t move = prediction_wins ? kAxeSkipPrediction : kAxeAlign;
  const bool target_wins = skip_target < value;
  *best = target_wins ? skip_target : value;
  return target_wins ? kAxeSkipTarget : move;
}

// True for a log-probability the DP must refuse: NaN, or +inf (which would make G = -inf and
// sums of the form inf - inf).  -inf is legal and gives +inf costs.
template <typename acc_t>
MPLE_HOST_DEVICE inline bool axe_invalid_log_prob(acc_t log_prob) {
  return !(log_prob < acc_t(INFINITY));
}

// Walks the chosen path of one sequence from (target_length, pred_length) back to (0, 0) and calls
// visit(move, i, j) for the move into every cell (i, j) on it.  `choices` points at the sequence's
// (Lp + 1, Ly + 1) block; `column_stride` = Ly + 1.  Border cells have one legal move and the stored
// code is not consulted there, so the walk stays inside the table and ends after at most
// target_length + pred_length steps whatever the table holds.
template <typename Visitor>
MPLE_HOST_DEVICE inline void axe_backtrace(const uint8_t* choices, int64_t column_stride,
                                           int64_t target_length, int64_t pred_length,
                                           Visitor& visit) {
  int64_t i = target_length, j = pred_length;
  while (i > 0 || j > 0) {
    uint8_t move;
    if (i == 0) {
      move = kAxeSkipPrediction;
    } else if (j == 0) {
      move = kAxeSkipTarget;
    } else {
      move = choices[j * column_stride + i];
    }
    visit(move, i, j);
    if (move == kAxeAlign) {
      --i;
      --j;
    } else if (move == kAxeSkipPrediction) {
      --j;
    } else {
      --i;
    }
  }
}

// The prediction (0-based position in log_probs) whose distribution pays for a move into (i, j):
// j - 1, except skip-target moves in the border column j = 0, which are charged to P_1.
MPLE_HOST_DEVICE inline int64_t axe_charged_position(uint8_t move, int64_t j) {
  return (move == kAxeSkipTarget && j == 0) ? 0 : j - 1;
}

// Backtrace visitor of the backward pass: adds grad_loss * d(loss)/d(log_probs) along the path into
// one sequence's contiguous (Lp, V) gradient block: -grad_loss on aligned and blank log-probs,
// -grad_loss * delta on skipped targets' log-probs, accumulated where an entry is used twice.  Token
// ids outside [0, vocab) are skipped (the callers validate them; this only keeps writes in bounds).
template <typename scalar_t, typename acc_t>
struct AxeGradientWriter {
  scalar_t* grad;
  int64_t vocab;
  const int64_t* targets;
  int64_t blank;
  acc_t grad_loss;
  acc_t delta;

  MPLE_HOST_DEVICE void add(int64_t position, int64_t token, acc_t value) {
    if (token < 0 || token >= vocab) return;
    scalar_t& cell = grad[position * vocab + token];
    cell = static_cast<scalar_t>(static_cast<acc_t>(cell) + value);
  }

  MPLE_HOST_DEVICE void operator()(uint8_t move, int64_t i, int64_t j) {
    const int64_t position = axe_charged_position(move, j);
    if (move == kAxeAlign) {
      add(position, targets[i - 1], -grad_loss);
    } else if (move == kAxeSkipPrediction) {
      add(position, blank, -grad_loss);
    } else if (delta != acc_t(0)) {
      add(position, targets[i - 1], -axe_product(grad_loss, delta));
    }
  }
};

// Backtrace visitor of the proxy target (Eq. 20): T*_j = Y_i for the align move into (i, j), the
// first target token aligned to prediction j; positions without one keep the blank written before.
struct AxeProxyTargetWriter {
  int64_t* out;
  const int64_t* targets;

  MPLE_HOST_DEVICE void operator()(uint8_t move, int64_t i, int64_t j) {
    if (move == kAxeAlign) out[j - 1] = targets[i - 1];
  }
};

}  // namespace mple
