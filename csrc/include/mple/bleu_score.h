// BLEU statistics layout and their combination into a score, shared by the CPU and CUDA backends.
//
// The combination follows sacrebleu's BLEU.compute_bleu (smooth_method='exp') operation by operation,
// in float64, so scores agree with sacrebleu to rounding (tests check 1e-9).
#pragma once

#include <math.h>
#include <stdint.h>

#include "mple/host_device.h"

namespace mple {

constexpr int kBleuMaxOrder = 4;
// One row of statistics: [hyp_len, ref_len, correct_1..correct_4, total_1..total_4].
constexpr int kBleuStatsWidth = 2 + 2 * kBleuMaxOrder;
constexpr int kBleuHypLen = 0;
constexpr int kBleuRefLen = 1;
constexpr int kBleuCorrect = 2;
constexpr int kBleuTotal = 2 + kBleuMaxOrder;

// sacrebleu.utils.my_log: log floored at a large negative number so that a zero precision gives 0.
MPLE_HOST_DEVICE inline double bleu_floored_log(double x) {
  return x == 0.0 ? -9999999999.0 : ::log(x);
}

// Score on the 0-100 scale from one row of statistics.  Statistics with a negative entry (an invalid
// row, see the CUDA kernels) give NaN.
MPLE_HOST_DEVICE inline double bleu_score_from_stats(const int64_t* stats, bool effective_order) {
  for (int k = 0; k < kBleuStatsWidth; ++k) {
    if (stats[k] < 0) return NAN;
  }
  const int64_t hyp_len = stats[kBleuHypLen];
  const int64_t ref_len = stats[kBleuRefLen];
  const int64_t* correct = stats + kBleuCorrect;
  const int64_t* total = stats + kBleuTotal;

  double brevity_penalty = 1.0;
  if (hyp_len < ref_len) {
    brevity_penalty = hyp_len > 0 ? ::exp(1.0 - (double)ref_len / (double)hyp_len) : 0.0;
  }
  bool any_correct = false;
  for (int n = 0; n < kBleuMaxOrder; ++n) any_correct = any_correct || correct[n] != 0;
  if (!any_correct) return 0.0;

  double precisions[kBleuMaxOrder] = {0.0, 0.0, 0.0, 0.0};
  double smooth = 1.0;
  int eff_order = kBleuMaxOrder;
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    if (total[n] == 0) break;
    if (effective_order) eff_order = n + 1;
    if (correct[n] == 0) {
      smooth *= 2.0;
      precisions[n] = 100.0 / (smooth * (double)total[n]);
    } else {
      precisions[n] = 100.0 * (double)correct[n] / (double)total[n];
    }
  }
  double log_sum = 0.0;
  for (int n = 0; n < eff_order; ++n) log_sum += bleu_floored_log(precisions[n]);
  return brevity_penalty * ::exp(log_sum / eff_order);
}

// sacrebleu's closest reference length: smallest |hyp_len - ref_len|, ties to the shorter reference.
// Absent references have a negative length and are skipped.  Returns -1 if none is present.
MPLE_HOST_DEVICE inline int64_t bleu_closest_ref_len(int64_t hyp_len, const int64_t* ref_lens,
                                                     int64_t num_refs) {
  int64_t best_diff = -1, best_len = -1;
  for (int64_t r = 0; r < num_refs; ++r) {
    const int64_t len = ref_lens[r];
    if (len < 0) continue;
    const int64_t diff = hyp_len > len ? hyp_len - len : len - hyp_len;
    if (best_diff < 0 || diff < best_diff || (diff == best_diff && len < best_len)) {
      best_diff = diff;
      best_len = len;
    }
  }
  return best_len;
}

MPLE_HOST_DEVICE inline int64_t bleu_total_ngrams(int64_t length, int order) {
  return length >= order ? length - order + 1 : 0;
}

}  // namespace mple
