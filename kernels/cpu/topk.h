// Top-K selection for the CPU scan: a reservoir that accepts candidates above a threshold and
// compacts to the best K when it fills, plus the final merge of several reservoirs.
//
// Order: score descending, then item id ascending. Rows are stored as int32 (a shard holds fewer
// than 2^31 rows; fused_scan checks it) and ids are looked up only to break exact score ties.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace argent {

struct TopKEntry {
  float score;
  int32_t row;
};

class TopKReservoir {
 public:
  // Empties the reservoir for a new query with `k` results (k >= 0). A floor (floor_score,
  // floor_id) keeps out every row that does not order before it: for a caller that already
  // holds k results, the worst of them (such rows could not enter the final top k).
  void reset(int64_t k, float floor_score = -std::numeric_limits<float>::infinity(),
             int64_t floor_id = std::numeric_limits<int64_t>::max());

  // Rows scoring below this cannot enter; rows scoring exactly this must pass accepts().
  float threshold() const { return thr_score_; }
  bool accepts(float score, int64_t id) const {
    return score > thr_score_ || (score == thr_score_ && id < thr_id_);
  }
  // Adds a candidate the caller checked with accepts(); `ids` maps rows to item ids.
  void push(float score, int32_t row, const int64_t* ids) {
    entries_.push_back({score, row});
    if (int64_t(entries_.size()) >= capacity_) compact(ids);
  }

  int64_t k() const { return k_; }
  const std::vector<TopKEntry>& entries() const { return entries_; }

 private:
  void compact(const int64_t* ids);

  int64_t k_ = 0;
  int64_t capacity_ = 0;
  float thr_score_ = -std::numeric_limits<float>::infinity();
  int64_t thr_id_ = std::numeric_limits<int64_t>::max();
  std::vector<TopKEntry> entries_;
};

// Merges the entries of several reservoirs of one query and writes the best k, sorted, to
// scores/ids/rows [k]; slots past the number of candidates get score -inf, id -1, row -1.
void finish_topk(const TopKReservoir* const* parts, int n_parts, int64_t k, const int64_t* ids,
                 float* scores_out, int64_t* ids_out, int64_t* rows_out);

// Merges sorted per-source result lists. For each of `n_queries` queries, source s offers
// `k_in` (score, id) pairs sorted best first (padding: id -1). Writes the best `k_out` pairs to
// scores_out/ids_out [n_queries, k_out], with origin_out [n_queries, k_out] = s * k_in + position
// (or -1 for padding) so callers can fetch per-candidate payloads. Ids must be unique across
// sources (each item lives on one shard).
void merge_topk(int n_sources, const float* const* scores, const int64_t* const* ids,
                int64_t n_queries, int64_t k_in, int64_t k_out, float* scores_out,
                int64_t* ids_out, int64_t* origin_out);

}  // namespace argent
