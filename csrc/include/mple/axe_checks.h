// Argument checks of the AXE ops shared by the CPU and CUDA registrations: ranks, dtypes, shapes,
// devices and the scalar arguments.  Value checks on lengths and target ids need the data: the CPU
// kernels do them in place, the Python wrappers once before calling a CUDA kernel (and the CUDA
// kernels return NaN for a sequence they cannot read safely instead of reading out of bounds).
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "mple/checks.h"

namespace mple {

inline bool axe_is_log_prob_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// targets (B, Ly) int64, pred_lengths and target_lengths (B,) int64, on the device of `anchor`
// (whose size(0) is B), as both AXE entry points take them.
inline void check_axe_targets_and_lengths(const at::Tensor& targets, const at::Tensor& pred_lengths,
                                          const at::Tensor& target_lengths, const at::Tensor& anchor,
                                          const char* anchor_name, const char* batch_name) {
  check_rank(targets, 2, "targets", "(B, Ly)");
  check_rank(pred_lengths, 1, "pred_lengths", "(B,)");
  check_rank(target_lengths, 1, "target_lengths", "(B,)");
  check_dtype(targets, at::kLong, "targets");
  check_dtype(pred_lengths, at::kLong, "pred_lengths");
  check_dtype(target_lengths, at::kLong, "target_lengths");
  check_same_device(targets, anchor, "targets", anchor_name);
  check_same_device(pred_lengths, anchor, "pred_lengths", anchor_name);
  check_same_device(target_lengths, anchor, "target_lengths", anchor_name);
  const int64_t batch = anchor.size(0);
  check_size(targets, 0, batch, "targets", batch_name);
  check_size(pred_lengths, 0, batch, "pred_lengths", batch_name);
  check_size(target_lengths, 0, batch, "target_lengths", batch_name);
}

// log_probs (B, Lp, V) floating, targets (B, Ly) int64, pred_lengths (B,) int64,
// target_lengths (B,) int64, 0 <= blank < V, skip_penalty finite and >= 0.
inline void check_axe_args(const at::Tensor& log_probs, const at::Tensor& targets,
                           const at::Tensor& pred_lengths, const at::Tensor& target_lengths,
                           int64_t blank, double skip_penalty) {
  check_rank(log_probs, 3, "log_probs", "(B, Lp, V)");
  TORCH_CHECK(axe_is_log_prob_dtype(log_probs.scalar_type()),
              "log_probs must be float32, float64, float16 or bfloat16, got ",
              log_probs.scalar_type());
  check_axe_targets_and_lengths(targets, pred_lengths, target_lengths, log_probs, "log_probs",
                                "log_probs.size(0)");
  const int64_t vocab = log_probs.size(2);
  TORCH_CHECK(blank >= 0 && blank < vocab, "blank must be a token id in [0, V = ", vocab,
              "), got ", blank);
  TORCH_CHECK(std::isfinite(skip_penalty) && skip_penalty >= 0.0,
              "skip_penalty must be finite and >= 0, got ", skip_penalty);
}

// The choice table of axe_forward: uint8 (B, Lp + 1, Ly + 1) on the device of log_probs.
inline void check_axe_choices(const at::Tensor& choices, const at::Tensor& log_probs,
                              const at::Tensor& targets) {
  check_rank(choices, 3, "choices", "(B, Lp + 1, Ly + 1)");
  check_dtype(choices, at::kByte, "choices");
  check_same_device(choices, log_probs, "choices", "log_probs");
  check_size(choices, 0, log_probs.size(0), "choices", "log_probs.size(0)");
  check_size(choices, 1, log_probs.size(1) + 1, "choices", "log_probs.size(1) + 1");
  check_size(choices, 2, targets.size(1) + 1, "choices", "targets.size(1) + 1");
}

// Arguments of axe_proxy_targets: choices uint8 (B, Lp + 1, Ly + 1), targets (B, Ly) int64,
// pred_lengths and target_lengths (B,) int64, all on one device.
inline void check_axe_proxy_targets_args(const at::Tensor& choices, const at::Tensor& targets,
                                         const at::Tensor& pred_lengths,
                                         const at::Tensor& target_lengths) {
  check_rank(choices, 3, "choices", "(B, Lp + 1, Ly + 1)");
  check_dtype(choices, at::kByte, "choices");
  check_axe_targets_and_lengths(targets, pred_lengths, target_lengths, choices, "choices",
                                "choices.size(0)");
  TORCH_CHECK(choices.size(1) >= 1, "choices must have shape (B, Lp + 1, Ly + 1), got ",
              choices.sizes());
  check_size(choices, 2, targets.size(1) + 1, "choices", "targets.size(1) + 1");
}

// Loss dtype for a log_probs dtype: the DP runs in float32 for float16/bfloat16 inputs.
inline at::ScalarType axe_loss_dtype(at::ScalarType log_probs_dtype) {
  return log_probs_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

// grad_loss (B,) in the loss dtype: float64 for float64 log_probs, float32 otherwise.
inline void check_axe_grad_loss(const at::Tensor& grad_loss, const at::Tensor& log_probs) {
  check_rank(grad_loss, 1, "grad_loss", "(B,)");
  check_same_device(grad_loss, log_probs, "grad_loss", "log_probs");
  check_size(grad_loss, 0, log_probs.size(0), "grad_loss", "log_probs.size(0)");
  check_dtype(grad_loss, axe_loss_dtype(log_probs.scalar_type()), "grad_loss");
}

}  // namespace mple
