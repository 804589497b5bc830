// Argument checks shared by the CPU and CUDA registrations of each op: ranks, dtypes, shapes and
// devices.  Value checks (lengths within the padded width) need the data, so the CPU kernels do them
// in place and the Python wrappers do them once before calling a CUDA kernel.
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>

namespace mple {

inline void check_rank(const at::Tensor& t, int64_t rank, const char* name, const char* shape) {
  TORCH_CHECK(t.dim() == rank, name, " must have shape ", shape, " (rank ", rank, "), got rank ",
              t.dim(), " with shape ", t.sizes());
}

inline void check_dtype(const at::Tensor& t, at::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ",
              t.scalar_type());
}

inline void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* name,
                              const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), name, " is on ", t.device(), " but ", ref_name,
              " is on ", ref.device(), "; all arguments must be on one device");
}

inline void check_size(const at::Tensor& t, int64_t dim, int64_t expected, const char* name,
                       const char* what) {
  TORCH_CHECK(t.size(dim) == expected, name, ".size(", dim, ") must equal ", what, " = ",
              expected, ", got ", t.size(dim), " (shape ", t.sizes(), ")");
}

// hyps (B, L) int64, hyp_lengths (B,) int64, refs (B, R, L') int64, ref_lengths (B, R) int64.
inline void check_bleu_stats_args(const at::Tensor& hyps, const at::Tensor& hyp_lengths,
                                  const at::Tensor& refs, const at::Tensor& ref_lengths) {
  check_rank(hyps, 2, "hyps", "(B, L)");
  check_rank(hyp_lengths, 1, "hyp_lengths", "(B,)");
  check_rank(refs, 3, "refs", "(B, R, L')");
  check_rank(ref_lengths, 2, "ref_lengths", "(B, R)");
  check_dtype(hyps, at::kLong, "hyps");
  check_dtype(hyp_lengths, at::kLong, "hyp_lengths");
  check_dtype(refs, at::kLong, "refs");
  check_dtype(ref_lengths, at::kLong, "ref_lengths");
  check_same_device(hyp_lengths, hyps, "hyp_lengths", "hyps");
  check_same_device(refs, hyps, "refs", "hyps");
  check_same_device(ref_lengths, hyps, "ref_lengths", "hyps");
  const int64_t batch = hyps.size(0);
  check_size(hyp_lengths, 0, batch, "hyp_lengths", "hyps.size(0)");
  check_size(refs, 0, batch, "refs", "hyps.size(0)");
  check_size(ref_lengths, 0, batch, "ref_lengths", "hyps.size(0)");
  check_size(ref_lengths, 1, refs.size(1), "ref_lengths", "refs.size(1)");
  TORCH_CHECK(refs.size(1) >= 1, "refs must hold at least one reference per hypothesis, got shape ",
              refs.sizes());
}

// cands (B, K, L) int64, lengths (B, K) int64.
inline void check_pairwise_bleu_args(const at::Tensor& cands, const at::Tensor& lengths) {
  check_rank(cands, 3, "cands", "(B, K, L)");
  check_rank(lengths, 2, "lengths", "(B, K)");
  check_dtype(cands, at::kLong, "cands");
  check_dtype(lengths, at::kLong, "lengths");
  check_same_device(lengths, cands, "lengths", "cands");
  check_size(lengths, 0, cands.size(0), "lengths", "cands.size(0)");
  check_size(lengths, 1, cands.size(1), "lengths", "cands.size(1)");
}

inline void check_bleu_stats_tensor(const at::Tensor& stats) {
  TORCH_CHECK(stats.dim() >= 1 && stats.size(-1) == 10,
              "stats must have shape (..., 10) [hyp_len, ref_len, correct_1..4, total_1..4], got ",
              stats.sizes());
  check_dtype(stats, at::kLong, "stats");
}

}  // namespace mple
