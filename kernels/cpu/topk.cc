#include "kernels/cpu/topk.h"

#include <algorithm>
#include <queue>

namespace argent {
namespace {

constexpr int64_t kMinSlack = 256;  // a small k still compacts rarely

}  // namespace

void TopKReservoir::reset(int64_t k, float floor_score, int64_t floor_id) {
  k_ = k;
  capacity_ = k + std::max(k, kMinSlack);
  entries_.clear();
  if (k == 0) {
    thr_score_ = std::numeric_limits<float>::infinity();
    thr_id_ = std::numeric_limits<int64_t>::min();
  } else {
    thr_score_ = floor_score;
    thr_id_ = floor_id;
  }
}

void TopKReservoir::compact(const int64_t* ids) {
  auto better = [ids](const TopKEntry& a, const TopKEntry& b) {
    return a.score > b.score || (a.score == b.score && ids[a.row] < ids[b.row]);
  };
  if (int64_t(entries_.size()) <= k_) return;
  std::nth_element(entries_.begin(), entries_.begin() + (k_ - 1), entries_.end(), better);
  entries_.resize(size_t(k_));
  thr_score_ = entries_[size_t(k_ - 1)].score;
  thr_id_ = ids[entries_[size_t(k_ - 1)].row];
}

void finish_topk(const TopKReservoir* const* parts, int n_parts, int64_t k, const int64_t* ids,
                 float* scores_out, int64_t* ids_out, int64_t* rows_out) {
  std::vector<TopKEntry> all;
  for (int p = 0; p < n_parts; ++p) {
    if (parts[p] == nullptr) continue;
    all.insert(all.end(), parts[p]->entries().begin(), parts[p]->entries().end());
  }
  auto better = [ids](const TopKEntry& a, const TopKEntry& b) {
    return a.score > b.score || (a.score == b.score && ids[a.row] < ids[b.row]);
  };
  const int64_t n = std::min<int64_t>(k, int64_t(all.size()));
  if (n > 0) {
    std::partial_sort(all.begin(), all.begin() + n, all.end(), better);
  }
  for (int64_t i = 0; i < k; ++i) {
    if (i < n) {
      scores_out[i] = all[size_t(i)].score;
      ids_out[i] = ids[all[size_t(i)].row];
      if (rows_out) rows_out[i] = all[size_t(i)].row;
    } else {
      scores_out[i] = -std::numeric_limits<float>::infinity();
      ids_out[i] = -1;
      if (rows_out) rows_out[i] = -1;
    }
  }
}

void merge_topk(int n_sources, const float* const* scores, const int64_t* const* ids,
                int64_t n_queries, int64_t k_in, int64_t k_out, float* scores_out,
                int64_t* ids_out, int64_t* origin_out) {
  struct Head {
    float score;
    int64_t id;
    int source;
    int64_t pos;
  };
  // The heap's top is the best head: greatest score, then smallest id.
  auto worse = [](const Head& a, const Head& b) {
    return a.score < b.score || (a.score == b.score && a.id > b.id);
  };
#pragma omp parallel for schedule(static) if (n_queries * k_out > 65536)
  for (int64_t q = 0; q < n_queries; ++q) {
    std::vector<Head> heap;
    heap.reserve(size_t(n_sources));
    auto offer = [&](int s, int64_t pos) {
      if (pos >= k_in) return;
      const int64_t id = ids[s][q * k_in + pos];
      if (id == -1) return;  // padding; other negative ids are valid items
      heap.push_back({scores[s][q * k_in + pos], id, s, pos});
      std::push_heap(heap.begin(), heap.end(), worse);
    };
    for (int s = 0; s < n_sources; ++s) offer(s, 0);
    for (int64_t i = 0; i < k_out; ++i) {
      const int64_t o = q * k_out + i;
      if (heap.empty()) {
        scores_out[o] = -std::numeric_limits<float>::infinity();
        ids_out[o] = -1;
        if (origin_out) origin_out[o] = -1;
        continue;
      }
      std::pop_heap(heap.begin(), heap.end(), worse);
      const Head h = heap.back();
      heap.pop_back();
      scores_out[o] = h.score;
      ids_out[o] = h.id;
      if (origin_out) origin_out[o] = int64_t(h.source) * k_in + h.pos;
      offer(h.source, h.pos + 1);
    }
  }
}

}  // namespace argent
