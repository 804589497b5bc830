// AXE loss (aligned cross entropy), CPU backend: exact DP per sequence, parallel over the batch.
//
// The forward pass sweeps the table one prediction j at a time (a column of Ly + 1 cells), so each
// column reads the costs G[., j] from one row of log_probs and writes its moves contiguously into
// the choice table.  Only G and E are read, straight from log_probs through its strides: nothing of
// size B * Lp * V is materialised.  The backward pass and the proxy target walk the stored moves back
// from (Ly_b, Lp_b); each sequence owns its slice of the outputs, so the walk needs no locking.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>
#include <limits>
#include <vector>

#include "mple/axe.h"
#include "mple/axe_checks.h"
#include "mple/memory.h"

namespace mple {
namespace {

// Strided view of one sequence's log-probabilities.
template <typename scalar_t>
struct LogProbRows {
  const scalar_t* data;
  int64_t position_stride;
  int64_t vocab_stride;

  template <typename acc_t>
  acc_t at(int64_t position, int64_t token) const {
    return static_cast<acc_t>(data[position * position_stride + token * vocab_stride]);
  }
};

// Runs the DP of one sequence; returns A[target_length, pred_length], or NaN if a log-prob it reads
// is NaN or +inf.  `column` and `next` are scratch of at least target_length + 1 entries.
template <typename scalar_t, typename acc_t>
acc_t forward_sequence(const LogProbRows<scalar_t>& log_probs, const int64_t* targets,
                       int64_t target_length, int64_t pred_length, int64_t blank, acc_t delta,
                       uint8_t* choices, int64_t column_stride, std::vector<acc_t>& column,
                       std::vector<acc_t>& next) {
  constexpr acc_t kInf = std::numeric_limits<acc_t>::infinity();
  bool invalid = false;

  // Column j = 0: targets skipped before any prediction, charged delta * G[i, 1].  Without a
  // prediction there is nothing to charge them to and no alignment exists.
  column[0] = acc_t(0);
  choices[0] = kAxeAlign;  // (0, 0) is the start; its code is never read
  for (int64_t i = 1; i <= target_length; ++i) {
    acc_t cost = kInf;
    if (pred_length > 0) {
      const acc_t log_prob = log_probs.template at<acc_t>(0, targets[i - 1]);
      invalid |= axe_invalid_log_prob(log_prob);
      cost = axe_skip_target_cost(delta, -log_prob);
    }
    column[i] = column[i - 1] + cost;
    choices[i] = kAxeSkipTarget;
  }

  for (int64_t j = 1; j <= pred_length; ++j) {
    // Restrict-qualified locals: the uint8_t stores could otherwise alias everything and force
    // reloads of the DP state after every cell.
    uint8_t* __restrict__ moves = choices + j * column_stride;
    const acc_t* __restrict__ previous = column.data();
    acc_t* __restrict__ current = next.data();
    const scalar_t* __restrict__ row = log_probs.data + (j - 1) * log_probs.position_stride;
    const int64_t vocab_stride = log_probs.vocab_stride;
    const acc_t blank_log_prob = static_cast<acc_t>(row[blank * vocab_stride]);
    invalid |= axe_invalid_log_prob(blank_log_prob);
    const acc_t skip_prediction_cost = -blank_log_prob;
    acc_t above = previous[0] + skip_prediction_cost;  // A[i-1, j], carried down the column
    current[0] = above;
    moves[0] = kAxeSkipPrediction;
    // The next column reads the same tokens one prediction further: fetch them while this one runs
    // (the reads are scattered over the vocabulary, so the hardware prefetcher cannot guess them).
    const scalar_t* next_row = j < pred_length ? row + log_probs.position_stride : row;
    for (int64_t i = 1; i <= target_length; ++i) {
      __builtin_prefetch(next_row + targets[i - 1] * vocab_stride);
      const acc_t log_prob = static_cast<acc_t>(row[targets[i - 1] * vocab_stride]);
      invalid |= axe_invalid_log_prob(log_prob);
      const acc_t g = -log_prob;
      acc_t best;
      moves[i] = axe_choose(previous[i - 1] + g, previous[i] + skip_prediction_cost,
                            above + axe_skip_target_cost(delta, g), &best);
      current[i] = best;
      above = best;
    }
    column.swap(next);
  }
  return invalid ? std::numeric_limits<acc_t>::quiet_NaN() : column[target_length];
}

void check_lengths_cpu(const at::Tensor& targets, const at::Tensor& pred_lengths,
                       const at::Tensor& target_lengths, int64_t pred_width) {
  const int64_t batch = targets.size(0), target_width = targets.size(1);
  const int64_t* pred_len = pred_lengths.data_ptr<int64_t>();
  const int64_t* target_len = target_lengths.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    TORCH_CHECK(pred_len[b] >= 0 && pred_len[b] <= pred_width,
                "pred_lengths must lie in [0, log_probs.size(1) = ", pred_width, "], got ",
                pred_len[b], " at index ", b);
    TORCH_CHECK(target_len[b] >= 0 && target_len[b] <= target_width,
                "target_lengths must lie in [0, targets.size(1) = ", target_width, "], got ",
                target_len[b], " at index ", b);
  }
}

// Token ids within each target's length must index log_probs; padding is never read.
void check_target_ids_cpu(const at::Tensor& targets, const at::Tensor& target_lengths,
                          int64_t vocab) {
  const int64_t batch = targets.size(0), target_width = targets.size(1);
  const int64_t* target_len = target_lengths.data_ptr<int64_t>();
  const int64_t* ids = targets.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < target_len[b]; ++i) {
      const int64_t id = ids[b * target_width + i];
      TORCH_CHECK(id >= 0 && id < vocab, "targets must hold token ids in [0, V = ", vocab,
                  ") within target_lengths, got ", id, " at index (", b, ", ", i, ")");
    }
  }
}

// The forward pass's buffers: a contiguous copy of strided targets, the choice table (one byte per
// DP cell) and two DP columns per thread.
void check_forward_memory(const at::Tensor& log_probs, const at::Tensor& targets) {
  const int64_t batch = log_probs.size(0), pred_width = log_probs.size(1);
  const int64_t target_width = targets.size(1);
  int64_t bytes = buffer_bytes({batch, pred_width + 1, target_width + 1}, 1);
  bytes = add_bytes(bytes, targets.is_contiguous() ? 0 : buffer_bytes({batch, target_width}, 8));
  bytes = add_bytes(bytes, buffer_bytes({2 * at::get_num_threads(), target_width + 1}, 8));
  check_fits_in_memory(bytes, host_memory_bytes(), "axe_forward",
                       "the alignment table (B, Lp + 1, Ly + 1) = (" + std::to_string(batch) + ", " +
                           std::to_string(pred_width + 1) + ", " +
                           std::to_string(target_width + 1) + ")",
                       "host");
}

std::tuple<at::Tensor, at::Tensor> axe_forward_cpu(const at::Tensor& log_probs,
                                                   const at::Tensor& targets_in,
                                                   const at::Tensor& pred_lengths_in,
                                                   const at::Tensor& target_lengths_in,
                                                   int64_t blank, double skip_penalty) {
  check_axe_args(log_probs, targets_in, pred_lengths_in, target_lengths_in, blank, skip_penalty);
  check_forward_memory(log_probs, targets_in);
  const at::Tensor targets = targets_in.contiguous();
  const at::Tensor pred_lengths = pred_lengths_in.contiguous();
  const at::Tensor target_lengths = target_lengths_in.contiguous();
  const int64_t batch = log_probs.size(0), pred_width = log_probs.size(1);
  const int64_t vocab = log_probs.size(2), target_width = targets.size(1);
  check_lengths_cpu(targets, pred_lengths, target_lengths, pred_width);
  check_target_ids_cpu(targets, target_lengths, vocab);

  const at::ScalarType loss_dtype = axe_loss_dtype(log_probs.scalar_type());
  at::Tensor loss = at::empty({batch}, log_probs.options().dtype(loss_dtype));
  at::Tensor choices =
      at::empty({batch, pred_width + 1, target_width + 1}, log_probs.options().dtype(at::kByte));
  const int64_t table_size = (pred_width + 1) * (target_width + 1);
  const int64_t* target_ptr = targets.data_ptr<int64_t>();
  const int64_t* pred_len = pred_lengths.data_ptr<int64_t>();
  const int64_t* target_len = target_lengths.data_ptr<int64_t>();
  uint8_t* choice_ptr = choices.data_ptr<uint8_t>();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, log_probs.scalar_type(),
                                  "axe_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* lp = log_probs.const_data_ptr<scalar_t>();
    acc_t* loss_ptr = loss.data_ptr<acc_t>();
    const int64_t s0 = log_probs.stride(0), s1 = log_probs.stride(1), s2 = log_probs.stride(2);
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> column(target_width + 1), next(target_width + 1);
      for (int64_t b = begin; b < end; ++b) {
        uint8_t* table = choice_ptr + b * table_size;
        // Cells outside the sequence's block are never read; zero them so the output is
        // deterministic.
        std::memset(table, 0, static_cast<size_t>(table_size));
        const LogProbRows<scalar_t> rows{lp + b * s0, s1, s2};
        loss_ptr[b] = forward_sequence<scalar_t, acc_t>(
            rows, target_ptr + b * target_width, target_len[b], pred_len[b], blank,
            static_cast<acc_t>(skip_penalty), table, target_width + 1, column, next);
      }
    });
  });
  return {loss, choices};
}

at::Tensor axe_backward_cpu(const at::Tensor& grad_loss_in, const at::Tensor& log_probs,
                            const at::Tensor& targets_in, const at::Tensor& pred_lengths_in,
                            const at::Tensor& target_lengths_in, const at::Tensor& choices_in,
                            int64_t blank, double skip_penalty) {
  check_axe_args(log_probs, targets_in, pred_lengths_in, target_lengths_in, blank, skip_penalty);
  check_axe_choices(choices_in, log_probs, targets_in);
  check_axe_grad_loss(grad_loss_in, log_probs);
  const at::Tensor grad_loss = grad_loss_in.contiguous();
  const at::Tensor targets = targets_in.contiguous();
  const at::Tensor pred_lengths = pred_lengths_in.contiguous();
  const at::Tensor target_lengths = target_lengths_in.contiguous();
  const at::Tensor choices = choices_in.contiguous();
  const int64_t batch = log_probs.size(0), pred_width = log_probs.size(1);
  const int64_t vocab = log_probs.size(2), target_width = targets.size(1);
  check_lengths_cpu(targets, pred_lengths, target_lengths, pred_width);
  check_target_ids_cpu(targets, target_lengths, vocab);

  check_fits_in_memory(buffer_bytes({batch, pred_width, vocab}, log_probs.element_size()),
                       host_memory_bytes(), "axe_backward",
                       "the gradient (B, Lp, V) = (" + std::to_string(batch) + ", " +
                           std::to_string(pred_width) + ", " + std::to_string(vocab) + ")",
                       "host");
  at::Tensor grad = at::empty({batch, pred_width, vocab}, log_probs.options());
  const int64_t table_size = (pred_width + 1) * (target_width + 1);
  const int64_t* target_ptr = targets.data_ptr<int64_t>();
  const int64_t* pred_len = pred_lengths.data_ptr<int64_t>();
  const int64_t* target_len = target_lengths.data_ptr<int64_t>();
  const uint8_t* choice_ptr = choices.data_ptr<uint8_t>();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, log_probs.scalar_type(),
                                  "axe_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t* grad_ptr = grad.data_ptr<scalar_t>();
    const acc_t* grad_loss_ptr = grad_loss.data_ptr<acc_t>();
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        scalar_t* block = grad_ptr + b * pred_width * vocab;
        // Zeroing here, per sequence, keeps the block in cache for the writes that follow.
        std::memset(static_cast<void*>(block), 0,
                    static_cast<size_t>(pred_width * vocab) * sizeof(scalar_t));
        // No prediction but some target: no alignment, the loss is +inf and has no path.
        if (pred_len[b] == 0 && target_len[b] > 0) continue;
        AxeGradientWriter<scalar_t, acc_t> writer{block, vocab, target_ptr + b * target_width, blank,
                                               grad_loss_ptr[b], static_cast<acc_t>(skip_penalty)};
        axe_backtrace(choice_ptr + b * table_size, target_width + 1, target_len[b], pred_len[b],
                      writer);
      }
    });
  });
  return grad;
}

at::Tensor axe_proxy_targets_cpu(const at::Tensor& choices_in, const at::Tensor& targets_in,
                                 const at::Tensor& pred_lengths_in,
                                 const at::Tensor& target_lengths_in, int64_t blank) {
  check_axe_proxy_targets_args(choices_in, targets_in, pred_lengths_in, target_lengths_in);
  const int64_t batch = choices_in.size(0), pred_width = choices_in.size(1) - 1;
  const int64_t target_width = targets_in.size(1);
  const at::Tensor choices = choices_in.contiguous();
  const at::Tensor targets = targets_in.contiguous();
  const at::Tensor pred_lengths = pred_lengths_in.contiguous();
  const at::Tensor target_lengths = target_lengths_in.contiguous();
  // Token ids are only copied here, never used as indices.
  check_lengths_cpu(targets, pred_lengths, target_lengths, pred_width);

  at::Tensor out = at::full({batch, pred_width}, blank, targets.options());
  const int64_t table_size = (pred_width + 1) * (target_width + 1);
  const int64_t* target_ptr = targets.data_ptr<int64_t>();
  const int64_t* pred_len = pred_lengths.data_ptr<int64_t>();
  const int64_t* target_len = target_lengths.data_ptr<int64_t>();
  const uint8_t* choice_ptr = choices.data_ptr<uint8_t>();
  int64_t* out_ptr = out.data_ptr<int64_t>();
  at::parallel_for(0, batch, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      if (pred_len[b] == 0) continue;
      AxeProxyTargetWriter writer{out_ptr + b * pred_width, target_ptr + b * target_width};
      axe_backtrace(choice_ptr + b * table_size, target_width + 1, target_len[b], pred_len[b],
                    writer);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mple, CPU, m) {
  m.impl("axe_forward", &axe_forward_cpu);
  m.impl("axe_backward", &axe_backward_cpu);
  m.impl("axe_proxy_targets", &axe_proxy_targets_cpu);
}

}  // namespace mple
