#include "coordinator/merge.h"

#include <cstddef>
#include <queue>

namespace argent {

MergedResult merge_query(const std::vector<const float*>& rank_scores,
                         const std::vector<const int64_t*>& rank_ids, int64_t block_k,
                         int64_t k, const std::unordered_set<int64_t>& excluded) {
  // A k-way merge with a heap of each rank's next candidate; the heap's top is the best
  // remaining (highest score, then lowest id).
  struct Head {
    float score;
    int64_t id;
    size_t rank;
    int64_t pos;
  };
  auto worse = [](const Head& a, const Head& b) {
    return a.score < b.score || (a.score == b.score && a.id > b.id);
  };
  std::priority_queue<Head, std::vector<Head>, decltype(worse)> heads(worse);
  for (size_t r = 0; r < rank_ids.size(); ++r) {
    // -1 is padding; any other id, negative ones included, is an item.
    if (block_k > 0 && rank_ids[r][0] != -1)
      heads.push({rank_scores[r][0], rank_ids[r][0], r, 0});
  }
  MergedResult out;
  out.ids.reserve(size_t(k));
  out.scores.reserve(size_t(k));
  while (!heads.empty() && int64_t(out.ids.size()) < k) {
    const Head h = heads.top();
    heads.pop();
    if (!excluded.count(h.id)) {
      out.ids.push_back(h.id);
      out.scores.push_back(h.score);
      out.ranks.push_back(int32_t(h.rank));
      out.positions.push_back(h.pos);
    }
    const int64_t next = h.pos + 1;
    if (next < block_k && rank_ids[h.rank][next] != -1)
      heads.push({rank_scores[h.rank][next], rank_ids[h.rank][next], h.rank, next});
  }
  return out;
}

}  // namespace argent
