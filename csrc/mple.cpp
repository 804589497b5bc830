// The op schemas of the `mple` library, declared once.  Each backend registers its kernels in its own
// file (csrc/cpu/*.cpp with TORCH_LIBRARY_IMPL(mple, CPU, m), csrc/cuda/*.cu with
// TORCH_LIBRARY_IMPL(mple, CUDA, m)).  The Python module `_C` only reports how it was built.
#include <torch/library.h>
#include <pybind11/pybind11.h>

#ifdef _OPENMP
#include <omp.h>
#endif

TORCH_LIBRARY(mple, m) {
  // ---- BLEU on token ids (csrc/cpu/bleu_cpu.cpp, csrc/cuda/bleu_cuda.cu) ----
  // ref_lengths: -1 marks an absent reference; 0 is a present, empty one (sacrebleu semantics).
  // Returns (B, 10) int64 rows [hyp_len, ref_len, correct_1..4, total_1..4].
  m.def("bleu_stats(Tensor hyps, Tensor hyp_lengths, Tensor refs, Tensor ref_lengths) -> Tensor");
  // Returns (B, K, K, 10) int64: row [b, i, j] scores candidate i against candidate j.
  m.def("pairwise_bleu_stats(Tensor cands, Tensor lengths) -> Tensor");
  // (..., 10) int64 statistics -> (...) float64 scores on the 0-100 scale (smoothing 'exp').
  m.def("bleu_from_stats(Tensor stats, bool effective_order) -> Tensor");

  // ---- AXE: aligned cross-entropy dynamic programme ----
  // (csrc/cpu/axe_cpu.cpp, csrc/cuda/axe_cuda.cu; recurrences and move codes in mple/axe.h)
  // Returns (loss (B,) float64 for float64 log_probs else float32, choices (B, Lp+1, Ly+1) uint8).
  m.def("axe_forward(Tensor log_probs, Tensor targets, Tensor pred_lengths, Tensor target_lengths, "
        "int blank, float skip_penalty) -> (Tensor, Tensor)");
  // Gradient (B, Lp, V) of sum_b grad_loss[b] * loss[b] along the chosen paths.
  m.def("axe_backward(Tensor grad_loss, Tensor log_probs, Tensor targets, Tensor pred_lengths, "
        "Tensor target_lengths, Tensor choices, int blank, float skip_penalty) -> Tensor");
  // Proxy target T* (B, Lp) int64 (Eq. 20) read off the chosen paths; blank elsewhere.
  m.def("axe_proxy_targets(Tensor choices, Tensor targets, Tensor pred_lengths, "
        "Tensor target_lengths, int blank) -> Tensor");

  // ---- OaXE: batched linear assignment ----
  // (csrc/cpu/lap_cpu.cpp, csrc/cuda/lap_cuda.cu)  cost (B, N, M) float32/float64, +inf = forbidden;
  // row_lengths, col_lengths (B,) int64.  Returns (assignment (B, N) int64: column of each row, -1 for
  // padded rows and failed problems; status (B,) int32: a mple::LapStatus code per problem).
  m.def("linear_sum_assignment(Tensor cost, Tensor row_lengths, Tensor col_lengths) -> (Tensor, Tensor)");
}

namespace {
bool cuda_compiled() {
#ifdef MPLE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool openmp_compiled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "mple_metrics compiled kernels; ops are registered under torch.ops.mple";
  m.def("cuda_compiled", &cuda_compiled, "True if the CUDA kernels were compiled in");
  m.def("openmp_compiled", &openmp_compiled, "True if the CPU kernels were compiled with OpenMP");
}
