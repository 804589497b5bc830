// Sentence BLEU statistics on token ids, CPU backend.
//
// n-gram identity is exact.  Each distinct n-gram of the hypothesis gets a dense id, order by order:
// a unigram is keyed by its token (a hash map that compares whole keys, so a collision costs time
// but never changes a count), an n-gram by the pair (dense id of its (n-1)-gram prefix, dense id of
// its last unigram).  Those pairs index a small direct grid for sentence-sized inputs, or a hash map
// on the exact packed pair for long ones.  Reference n-grams are looked up, never inserted: one whose
// prefix is not a hypothesis n-gram cannot match and stays unmatched at every higher order.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "mple/bleu_score.h"
#include "mple/checks.h"
#include "mple/memory.h"

namespace mple {
namespace {

// Tables below are cleared in O(1) by bumping a generation stamp: a slot whose stamp is not the
// current one is empty.  That keeps per-sentence resets off the profile.
struct StampedId {
  uint32_t stamp = 0;
  int32_t id = -1;
};

// Open-addressing map from exact 64-bit keys to dense ids 0, 1, 2, ...
class HashIdMap {
 public:
  void reset(int64_t max_items) {
    int64_t capacity = 16;
    while (capacity < 2 * max_items) capacity <<= 1;
    if (capacity > static_cast<int64_t>(slots_.size())) {  // grow only; stamps keep old slots empty
      slots_.assign(capacity, StampedId{});
      keys_.resize(capacity);
      stamp_ = 0;
      shift_ = 64;
      for (int64_t c = capacity; c > 1; c >>= 1) --shift_;
      mask_ = static_cast<uint64_t>(capacity - 1);
    }
    if (++stamp_ == 0) {  // wrapped around: really clear once every 2^32 resets
      slots_.assign(slots_.size(), StampedId{});
      stamp_ = 1;
    }
    size_ = 0;
  }

  // Dense id of `key`, inserting it with the next free id if new.
  int32_t insert(uint64_t key) {
    for (uint64_t slot = home(key);; slot = (slot + 1) & mask_) {
      StampedId& entry = slots_[slot];
      if (entry.stamp != stamp_) {
        entry.stamp = stamp_;
        entry.id = size_;
        keys_[slot] = key;
        return size_++;
      }
      if (keys_[slot] == key) return entry.id;
    }
  }

  // Dense id of `key`, or -1 if absent.
  int32_t find(uint64_t key) const {
    for (uint64_t slot = home(key);; slot = (slot + 1) & mask_) {
      const StampedId& entry = slots_[slot];
      if (entry.stamp != stamp_) return -1;
      if (keys_[slot] == key) return entry.id;
    }
  }

  int32_t size() const { return size_; }

 private:
  uint64_t home(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }

  std::vector<StampedId> slots_;
  std::vector<uint64_t> keys_;
  uint64_t mask_ = 0;
  int shift_ = 60;
  uint32_t stamp_ = 0;
  int32_t size_ = 0;
};

// Map from (prefix id, last unigram id) to dense ids.  A direct grid of prefixes x unigrams cells when
// that is small (the common case for sentences), else a hash map on the pair packed exactly into
// 64 bits.
class PairIdMap {
 public:
  void reset(int32_t prefixes, int32_t unigrams, int64_t max_items) {
    columns_ = unigrams;
    size_ = 0;
    direct_ = static_cast<int64_t>(prefixes) * unigrams <= kDirectCells;
    if (direct_) {
      const size_t cells = static_cast<size_t>(prefixes) * unigrams;
      if (grid_.size() < cells) grid_.resize(cells);  // new cells carry stamp 0: empty
      if (++stamp_ == 0) {
        grid_.assign(grid_.size(), StampedId{});
        stamp_ = 1;
      }
    } else {
      hash_.reset(max_items);
    }
  }

  int32_t insert(int32_t prefix, int32_t last) {
    if (!direct_) return hash_.insert(pack(prefix, last));
    StampedId& cell = grid_[static_cast<int64_t>(prefix) * columns_ + last];
    if (cell.stamp != stamp_) {
      cell.stamp = stamp_;
      cell.id = size_++;
    }
    return cell.id;
  }

  int32_t find(int32_t prefix, int32_t last) const {
    if (!direct_) return hash_.find(pack(prefix, last));
    const StampedId& cell = grid_[static_cast<int64_t>(prefix) * columns_ + last];
    return cell.stamp == stamp_ ? cell.id : -1;
  }

  int32_t size() const { return direct_ ? size_ : hash_.size(); }

 private:
  static constexpr int64_t kDirectCells = 1 << 13;  // 64 KB of cells: stays in L1/L2

  static uint64_t pack(int32_t prefix, int32_t last) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(prefix)) << 32) | static_cast<uint32_t>(last);
  }

  std::vector<StampedId> grid_;
  HashIdMap hash_;
  int32_t columns_ = 0;
  int32_t size_ = 0;
  uint32_t stamp_ = 0;
  bool direct_ = true;
};

// Per-thread scratch memory, reused across the pairs a thread handles.
struct Scratch {
  HashIdMap unigrams;
  PairIdMap ngrams;
  std::vector<int32_t> unigram_ids, ngram_ids;          // hypothesis (or all candidates)
  std::vector<int32_t> ref_unigram_ids, ref_ngram_ids;  // all present references, concatenated
  std::vector<int64_t> ref_offsets;
  std::vector<int32_t> counts, ref_max, ref_counts;
};

// Advances n-gram ids in place from order n to order n + 1 (1-based n) for one sequence, inserting
// new n-grams: ids[i] <- id of (n-gram at i, unigram at i + n).
void extend_ngram_ids(int32_t* ids, const int32_t* unigram_ids, int64_t positions, int order,
                      PairIdMap& map) {
  for (int64_t i = 0; i < positions; ++i) ids[i] = map.insert(ids[i], unigram_ids[i + order]);
}

// Advances a reference's n-gram ids from order n to n + 1 in place (n = 0: leaves the unigram ids)
// and counts the ones that are hypothesis n-grams, in one pass.
void count_reference_ngrams(int32_t* ids, const int32_t* unigram_ids, int64_t positions, int order,
                            const PairIdMap& map, int32_t* counts) {
  for (int64_t i = 0; i < positions; ++i) {
    int32_t id = ids[i];
    if (order > 0 && id >= 0) {
      const int32_t last = unigram_ids[i + order];
      id = last >= 0 ? map.find(id, last) : -1;
      ids[i] = id;
    }
    if (id >= 0) ++counts[id];
  }
}

// Statistics of one hypothesis against its present references (ref_lens[r] < 0: absent).
void sentence_stats(const int64_t* hyp, int64_t hyp_len, const int64_t* refs, int64_t ref_stride,
                    const int64_t* ref_lens, int64_t num_refs, Scratch& s, int64_t* out) {
  out[kBleuHypLen] = hyp_len;
  out[kBleuRefLen] = bleu_closest_ref_len(hyp_len, ref_lens, num_refs);
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    out[kBleuCorrect + n] = 0;
    out[kBleuTotal + n] = bleu_total_ngrams(hyp_len, n + 1);
  }
  if (hyp_len == 0) return;

  s.unigrams.reset(hyp_len);
  s.unigram_ids.resize(hyp_len);
  for (int64_t i = 0; i < hyp_len; ++i) s.unigram_ids[i] = s.unigrams.insert(static_cast<uint64_t>(hyp[i]));
  s.ngram_ids.assign(s.unigram_ids.begin(), s.unigram_ids.end());
  const int32_t distinct_unigrams = s.unigrams.size();

  s.ref_offsets.assign(1, 0);
  for (int64_t r = 0; r < num_refs; ++r) s.ref_offsets.push_back(s.ref_offsets.back() + std::max<int64_t>(ref_lens[r], 0));
  s.ref_unigram_ids.resize(s.ref_offsets.back());
  for (int64_t r = 0; r < num_refs; ++r) {
    const int64_t* ref = refs + r * ref_stride;
    int32_t* ids = s.ref_unigram_ids.data() + s.ref_offsets[r];
    for (int64_t i = 0; i < std::max<int64_t>(ref_lens[r], 0); ++i) {
      ids[i] = s.unigrams.find(static_cast<uint64_t>(ref[i]));
    }
  }
  s.ref_ngram_ids.assign(s.ref_unigram_ids.begin(), s.ref_unigram_ids.end());
  if (static_cast<int64_t>(s.ref_counts.size()) < hyp_len) s.ref_counts.assign(hyp_len, 0);

  int64_t present_refs = 0;
  for (int64_t r = 0; r < num_refs; ++r) present_refs += ref_lens[r] > 0;

  int32_t distinct = distinct_unigrams;
  for (int n = 0; n < kBleuMaxOrder && n < hyp_len; ++n) {
    const int64_t positions = hyp_len - n;
    if (n > 0) {
      s.ngrams.reset(distinct, distinct_unigrams, positions);
      extend_ngram_ids(s.ngram_ids.data(), s.unigram_ids.data(), positions, n, s.ngrams);
      distinct = s.ngrams.size();
    }
    s.counts.assign(distinct, 0);
    s.ref_max.assign(distinct, 0);
    for (int64_t i = 0; i < positions; ++i) ++s.counts[s.ngram_ids[i]];

    for (int64_t r = 0; r < num_refs; ++r) {
      const int64_t ref_positions = ref_lens[r] - n;
      if (ref_positions <= 0) continue;
      int32_t* ids = s.ref_ngram_ids.data() + s.ref_offsets[r];
      // With one reference the clipping count is that reference's own count.
      int32_t* counts = present_refs == 1 ? s.ref_max.data() : s.ref_counts.data();
      count_reference_ngrams(ids, s.ref_unigram_ids.data() + s.ref_offsets[r], ref_positions, n,
                             s.ngrams, counts);
      if (present_refs == 1) continue;
      for (int64_t i = 0; i < ref_positions; ++i) {
        const int32_t id = ids[i];
        if (id < 0) continue;
        s.ref_max[id] = std::max(s.ref_max[id], s.ref_counts[id]);
        s.ref_counts[id] = 0;  // every position of this n-gram saw the full count before the first reset
      }
    }
    int64_t correct = 0;
    for (int32_t id = 0; id < distinct; ++id) correct += std::min(s.counts[id], s.ref_max[id]);
    out[kBleuCorrect + n] = correct;
    if (correct == 0) break;  // no n-gram matches, so no longer n-gram can
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
                    Scratch& s, std::vector<int32_t>& distinct, std::vector<int64_t>& distinct_start,
                    int64_t* out) {
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
  s.ref_offsets.assign(1, 0);
  for (int64_t k = 0; k < num_cands; ++k) s.ref_offsets.push_back(s.ref_offsets.back() + lens[k]);
  const int64_t total_len = s.ref_offsets.back();
  if (total_len == 0) return;
  s.unigrams.reset(total_len);
  s.unigram_ids.resize(total_len);
  for (int64_t k = 0; k < num_cands; ++k) {
    for (int64_t i = 0; i < lens[k]; ++i) {
      s.unigram_ids[s.ref_offsets[k] + i] = s.unigrams.insert(static_cast<uint64_t>(cands[k * width + i]));
    }
  }
  s.ngram_ids.assign(s.unigram_ids.begin(), s.unigram_ids.end());
  const int32_t distinct_unigrams = s.unigrams.size();
  int32_t distinct_ids = distinct_unigrams;
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    if (n > 0) {
      s.ngrams.reset(distinct_ids, distinct_unigrams, total_len);
      for (int64_t k = 0; k < num_cands; ++k) {
        if (lens[k] - n <= 0) continue;
        extend_ngram_ids(s.ngram_ids.data() + s.ref_offsets[k], s.unigram_ids.data() + s.ref_offsets[k],
                               lens[k] - n, n, s.ngrams);
      }
      distinct_ids = s.ngrams.size();
    }
    if (distinct_ids == 0) break;
    s.counts.assign(num_cands * distinct_ids, 0);
    distinct.clear();
    distinct_start.assign(num_cands + 1, 0);
    for (int64_t k = 0; k < num_cands; ++k) {
      int32_t* count_k = s.counts.data() + k * distinct_ids;
      const int32_t* ids = s.ngram_ids.data() + s.ref_offsets[k];
      for (int64_t i = 0; i + n < lens[k]; ++i) {
        if (count_k[ids[i]]++ == 0) distinct.push_back(ids[i]);
      }
      distinct_start[k + 1] = static_cast<int64_t>(distinct.size());
    }
    for (int64_t i = 0; i < num_cands; ++i) {
      const int32_t* count_i = s.counts.data() + i * distinct_ids;
      for (int64_t j = 0; j < num_cands; ++j) {
        const int32_t* count_j = s.counts.data() + j * distinct_ids;
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
  check_fits_in_memory(buffer_bytes({batch, num_cands, num_cands, kBleuStatsWidth}, 8), host_memory_bytes(),
                       "pairwise_bleu_stats",
                       "the statistics (B, K, K, 10) = (" + std::to_string(batch) + ", " +
                           std::to_string(num_cands) + ", " + std::to_string(num_cands) + ", 10)",
                       "host");
  at::Tensor out = at::empty({batch, num_cands, num_cands, kBleuStatsWidth}, cands.options());
  const int64_t* cand_ptr = cands.data_ptr<int64_t>();
  const int64_t* len_ptr = lengths.data_ptr<int64_t>();
  int64_t* out_ptr = out.data_ptr<int64_t>();
  at::parallel_for(0, batch, 16, [&](int64_t begin, int64_t end) {
    Scratch scratch;
    std::vector<int32_t> distinct;
    std::vector<int64_t> distinct_start;
    for (int64_t b = begin; b < end; ++b) {
      pairwise_stats(cand_ptr + b * num_cands * width, num_cands, width, len_ptr + b * num_cands,
                     scratch, distinct, distinct_start,
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
