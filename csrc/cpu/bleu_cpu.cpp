// Sentence BLEU statistics on token ids, CPU backend.
//
// n-gram identity is exact.  Each distinct n-gram of the hypothesis gets a dense id, order by order:
// a unigram is keyed by its token, an n-gram by (dense id of its (n-1)-gram prefix, dense id of its
// last unigram), two numbers below 2^31 packed into one 64-bit key.  The hash table compares whole
// keys, so a hash collision can cost time but never change a count.  Reference n-grams are looked up
// (never inserted): one whose prefix is not a hypothesis n-gram cannot match and is dropped at once.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "mple/bleu_score.h"
#include "mple/checks.h"

namespace mple {
namespace {

// Open-addressing map from exact 64-bit keys to dense ids 0, 1, 2, ...
class DenseIdTable {
 public:
  void reset(int64_t max_items) {
    int64_t capacity = 16;
    while (capacity < 2 * max_items) capacity <<= 1;
    shift_ = 64;
    for (int64_t c = capacity; c > 1; c >>= 1) --shift_;
    mask_ = static_cast<uint64_t>(capacity - 1);
    keys_.resize(capacity);
    ids_.assign(capacity, -1);
    size_ = 0;
  }

  // Dense id of `key`, inserting it with the next free id if new.
  int32_t insert(uint64_t key) {
    for (uint64_t slot = home(key);; slot = (slot + 1) & mask_) {
      if (ids_[slot] < 0) {
        keys_[slot] = key;
        ids_[slot] = size_;
        return size_++;
      }
      if (keys_[slot] == key) return ids_[slot];
    }
  }

  // Dense id of `key`, or -1 if absent.
  int32_t find(uint64_t key) const {
    for (uint64_t slot = home(key);; slot = (slot + 1) & mask_) {
      if (ids_[slot] < 0) return -1;
      if (keys_[slot] == key) return ids_[slot];
    }
  }

  int32_t size() const { return size_; }

 private:
  uint64_t home(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }

  std::vector<uint64_t> keys_;
  std::vector<int32_t> ids_;
  uint64_t mask_ = 0;
  int shift_ = 60;
  int32_t size_ = 0;
};

inline uint64_t ngram_key(int32_t prefix_id, int32_t last_unigram_id) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(prefix_id)) << 32) |
         static_cast<uint32_t>(last_unigram_id);
}

// Per-thread scratch memory, reused across the pairs a thread handles.
struct Scratch {
  DenseIdTable tables[kBleuMaxOrder];
  std::vector<int32_t> ids[kBleuMaxOrder];  // dense id of each n-gram position (all orders)
  std::vector<int32_t> counts[kBleuMaxOrder];
  std::vector<int32_t> ref_max[kBleuMaxOrder];
  std::vector<int32_t> ref_unigram, ref_ids, ref_counts;
};

// Assigns dense ids to the n-grams of `tokens`, orders 1..4, inserting into the tables.
// ids[n][i] is the id of the (n+1)-gram starting at position i.
void insert_ngrams(const int64_t* tokens, int64_t len, Scratch& s, int64_t offset) {
  for (int64_t i = 0; i < len; ++i) {
    s.ids[0][offset + i] = s.tables[0].insert(static_cast<uint64_t>(tokens[i]));
  }
  for (int n = 1; n < kBleuMaxOrder; ++n) {
    for (int64_t i = 0; i + n < len; ++i) {
      s.ids[n][offset + i] =
          s.tables[n].insert(ngram_key(s.ids[n - 1][offset + i], s.ids[0][offset + i + n]));
    }
  }
}

void reset_tables(Scratch& s, int64_t max_items) {
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    s.tables[n].reset(max_items);
    if (static_cast<int64_t>(s.ids[n].size()) < max_items) s.ids[n].resize(max_items);
  }
}

// Statistics of one hypothesis against its present references.
void sentence_stats(const int64_t* hyp, int64_t hyp_len, const int64_t* refs, int64_t ref_stride,
                    const int64_t* ref_lens, int64_t num_refs, Scratch& s, int64_t* out) {
  out[kBleuHypLen] = hyp_len;
  out[kBleuRefLen] = bleu_closest_ref_len(hyp_len, ref_lens, num_refs);
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    out[kBleuCorrect + n] = 0;
    out[kBleuTotal + n] = bleu_total_ngrams(hyp_len, n + 1);
  }
  if (hyp_len == 0) return;

  reset_tables(s, hyp_len);
  insert_ngrams(hyp, hyp_len, s, 0);
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    const int32_t distinct = s.tables[n].size();
    s.counts[n].assign(distinct, 0);
    s.ref_max[n].assign(distinct, 0);
    for (int64_t i = 0; i + n < hyp_len; ++i) ++s.counts[n][s.ids[n][i]];
  }
  if (static_cast<int64_t>(s.ref_counts.size()) < hyp_len) s.ref_counts.assign(hyp_len, 0);

  for (int64_t r = 0; r < num_refs; ++r) {
    const int64_t len = ref_lens[r];
    if (len <= 0) continue;
    const int64_t* ref = refs + r * ref_stride;
    s.ref_unigram.resize(len);
    s.ref_ids.resize(len);
    for (int64_t i = 0; i < len; ++i) {
      s.ref_unigram[i] = s.tables[0].find(static_cast<uint64_t>(ref[i]));
      s.ref_ids[i] = s.ref_unigram[i];
    }
    for (int n = 0; n < kBleuMaxOrder && n < len; ++n) {
      const int64_t positions = len - n;
      bool any_match = false;
      for (int64_t i = 0; i < positions; ++i) {
        int32_t id = s.ref_ids[i];
        if (n > 0 && id >= 0) {
          const int32_t last = s.ref_unigram[i + n];
          id = last >= 0 ? s.tables[n].find(ngram_key(id, last)) : -1;
          s.ref_ids[i] = id;
        }
        if (id >= 0) {
          ++s.ref_counts[id];
          any_match = true;
        }
      }
      if (!any_match) break;  // no n-gram of this order matches, so no longer one can
      for (int64_t i = 0; i < positions; ++i) {
        const int32_t id = s.ref_ids[i];
        if (id < 0) continue;
        s.ref_max[n][id] = std::max(s.ref_max[n][id], s.ref_counts[id]);
      }
      for (int64_t i = 0; i < positions; ++i) {
        if (s.ref_ids[i] >= 0) s.ref_counts[s.ref_ids[i]] = 0;
      }
    }
  }
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    int64_t correct = 0;
    for (size_t id = 0; id < s.counts[n].size(); ++id) {
      correct += std::min(s.counts[n][id], s.ref_max[n][id]);
    }
    out[kBleuCorrect + n] = correct;
  }
}

void check_lengths_cpu(const at::Tensor& lengths, int64_t width, int64_t min_value,
                       const char* name, const char* width_name) {
  const int64_t* p = lengths.data_ptr<int64_t>();
  for (int64_t k = 0; k < lengths.numel(); ++k) {
    TORCH_CHECK(p[k] >= min_value && p[k] <= width, name, " must lie in [", min_value, ", ",
                width_name, " = ", width, "], got ", p[k], " at flat index ", k);
  }
}

at::Tensor bleu_stats_cpu(const at::Tensor& hyps_in, const at::Tensor& hyp_lengths_in,
                          const at::Tensor& refs_in, const at::Tensor& ref_lengths_in) {
  check_bleu_stats_args(hyps_in, hyp_lengths_in, refs_in, ref_lengths_in);
  const at::Tensor hyps = hyps_in.contiguous();
  const at::Tensor hyp_lengths = hyp_lengths_in.contiguous();
  const at::Tensor refs = refs_in.contiguous();
  const at::Tensor ref_lengths = ref_lengths_in.contiguous();
  const int64_t batch = hyps.size(0), hyp_width = hyps.size(1);
  const int64_t num_refs = refs.size(1), ref_width = refs.size(2);
  check_lengths_cpu(hyp_lengths, hyp_width, 0, "hyp_lengths", "hyps.size(1)");
  check_lengths_cpu(ref_lengths, ref_width, -1, "ref_lengths", "refs.size(2)");
  const int64_t* ref_lens = ref_lengths.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    bool present = false;
    for (int64_t r = 0; r < num_refs; ++r) present = present || ref_lens[b * num_refs + r] >= 0;
    TORCH_CHECK(present, "ref_lengths: hypothesis ", b, " has no reference (all marked absent)");
  }

  at::Tensor out = at::empty({batch, kBleuStatsWidth}, hyps.options());
  const int64_t* hyp_ptr = hyps.data_ptr<int64_t>();
  const int64_t* hyp_len_ptr = hyp_lengths.data_ptr<int64_t>();
  const int64_t* ref_ptr = refs.data_ptr<int64_t>();
  int64_t* out_ptr = out.data_ptr<int64_t>();
  at::parallel_for(0, batch, 64, [&](int64_t begin, int64_t end) {
    Scratch scratch;
    for (int64_t b = begin; b < end; ++b) {
      sentence_stats(hyp_ptr + b * hyp_width, hyp_len_ptr[b], ref_ptr + b * num_refs * ref_width,
                     ref_width, ref_lens + b * num_refs, num_refs, scratch,
                     out_ptr + b * kBleuStatsWidth);
    }
  });
  return out;
}

// All K x K statistics of one source's candidates.  Dense ids are shared by all candidates, so
// each candidate's n-gram counts are computed once and every pair is a merge of two count lists.
void pairwise_stats(const int64_t* cands, int64_t num_cands, int64_t width, const int64_t* lens,
                    Scratch& s, std::vector<int32_t>& counts, std::vector<int32_t>& distinct,
                    std::vector<int64_t>& distinct_start, int64_t* out) {
  int64_t total_len = 0;
  for (int64_t k = 0; k < num_cands; ++k) total_len += lens[k];
  reset_tables(s, std::max<int64_t>(total_len, 1));
  int64_t offset = 0;
  for (int64_t k = 0; k < num_cands; ++k) {
    insert_ngrams(cands + k * width, lens[k], s, offset);
    offset += lens[k];
  }
  for (int64_t i = 0; i < num_cands; ++i) {
    for (int64_t j = 0; j < num_cands; ++j) {
      int64_t* row = out + (i * num_cands + j) * kBleuStatsWidth;
      row[kBleuHypLen] = lens[i];
      row[kBleuRefLen] = lens[j];
      for (int n = 0; n < kBleuMaxOrder; ++n) {
        row[kBleuCorrect + n] = 0;
        row[kBleuTotal + n] = bleu_total_ngrams(lens[i], n + 1);
      }
    }
  }
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    const int64_t distinct_ids = s.tables[n].size();
    if (distinct_ids == 0) break;
    counts.assign(num_cands * distinct_ids, 0);
    distinct.clear();
    distinct_start.assign(num_cands + 1, 0);
    offset = 0;
    for (int64_t k = 0; k < num_cands; ++k) {
      int32_t* count_k = counts.data() + k * distinct_ids;
      for (int64_t i = 0; i + n < lens[k]; ++i) {
        const int32_t id = s.ids[n][offset + i];
        if (count_k[id]++ == 0) distinct.push_back(id);
      }
      distinct_start[k + 1] = static_cast<int64_t>(distinct.size());
      offset += lens[k];
    }
    for (int64_t i = 0; i < num_cands; ++i) {
      const int32_t* count_i = counts.data() + i * distinct_ids;
      for (int64_t j = 0; j < num_cands; ++j) {
        const int32_t* count_j = counts.data() + j * distinct_ids;
        int64_t correct = 0;
        for (int64_t d = distinct_start[i]; d < distinct_start[i + 1]; ++d) {
          correct += std::min(count_i[distinct[d]], count_j[distinct[d]]);
        }
        out[(i * num_cands + j) * kBleuStatsWidth + kBleuCorrect + n] = correct;
      }
    }
  }
}

at::Tensor pairwise_bleu_stats_cpu(const at::Tensor& cands_in, const at::Tensor& lengths_in) {
  check_pairwise_bleu_args(cands_in, lengths_in);
  const at::Tensor cands = cands_in.contiguous();
  const at::Tensor lengths = lengths_in.contiguous();
  const int64_t batch = cands.size(0), num_cands = cands.size(1), width = cands.size(2);
  check_lengths_cpu(lengths, width, 0, "lengths", "cands.size(2)");
  at::Tensor out = at::empty({batch, num_cands, num_cands, kBleuStatsWidth}, cands.options());
  const int64_t* cand_ptr = cands.data_ptr<int64_t>();
  const int64_t* len_ptr = lengths.data_ptr<int64_t>();
  int64_t* out_ptr = out.data_ptr<int64_t>();
  at::parallel_for(0, batch, 16, [&](int64_t begin, int64_t end) {
    Scratch scratch;
    std::vector<int32_t> counts, distinct;
    std::vector<int64_t> distinct_start;
    for (int64_t b = begin; b < end; ++b) {
      pairwise_stats(cand_ptr + b * num_cands * width, num_cands, width, len_ptr + b * num_cands,
                     scratch, counts, distinct, distinct_start,
                     out_ptr + b * num_cands * num_cands * kBleuStatsWidth);
    }
  });
  return out;
}

at::Tensor bleu_from_stats_cpu(const at::Tensor& stats_in, bool effective_order) {
  check_bleu_stats_tensor(stats_in);
  const at::Tensor stats = stats_in.contiguous();
  auto out_sizes = stats.sizes().vec();
  out_sizes.pop_back();
  at::Tensor out = at::empty(out_sizes, stats.options().dtype(at::kDouble));
  const int64_t rows = out.numel();
  const int64_t* in_ptr = stats.data_ptr<int64_t>();
  double* out_ptr = out.data_ptr<double>();
  at::parallel_for(0, rows, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      out_ptr[k] = bleu_score_from_stats(in_ptr + k * kBleuStatsWidth, effective_order);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mple, CPU, m) {
  m.impl("bleu_stats", &bleu_stats_cpu);
  m.impl("pairwise_bleu_stats", &pairwise_bleu_stats_cpu);
  m.impl("bleu_from_stats", &bleu_from_stats_cpu);
}

}  // namespace mple
