// The coordinator's global top-K: merges every rank's per-query top-k block.
#pragma once

#include <cstdint>
#include <unordered_set>
#include <vector>

namespace argent {

struct MergedResult {
  std::vector<int64_t> ids;   // best first; ties by id ascending
  std::vector<float> scores;
  std::vector<int32_t> ranks;      // which rank's block each result came from
  std::vector<int64_t> positions;  // and its position in that rank's [k] list
};

// For query `q`, merges ranks' lists (each sorted by score desc, id asc, -1 padded) from the
// gathered blocks into the best `k` ids not in `excluded`. The order is total, so the result
// equals a single-process search over the union of the ranks' items.
MergedResult merge_query(const std::vector<const float*>& rank_scores,
                         const std::vector<const int64_t*>& rank_ids, int64_t block_k,
                         int64_t k, const std::unordered_set<int64_t>& excluded);

}  // namespace argent
