#include "launch/ground_truth.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <queue>

namespace argent {
namespace {

constexpr int64_t kItemBlock = 2048;

std::vector<float> maybe_normalized(const float* x, int64_t n, int dim, bool normalize) {
  std::vector<float> out(x, x + n * dim);
  if (!normalize) return out;
  for (int64_t i = 0; i < n; ++i) {
    double sq = 0;
    for (int j = 0; j < dim; ++j) sq += double(out[size_t(i * dim + j)]) * out[size_t(i * dim + j)];
    if (sq > 0)
      for (int j = 0; j < dim; ++j) out[size_t(i * dim + j)] = float(out[size_t(i * dim + j)] / std::sqrt(sq));
  }
  return out;
}

using Entry = std::pair<float, int64_t>;  // (score, -position): the heap top is the worst kept
struct Worse {
  bool operator()(const Entry& a, const Entry& b) const {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
};
using Heap = std::priority_queue<Entry, std::vector<Entry>, Worse>;

}  // namespace

std::vector<int64_t> exact_float_topk(const float* items_in, int64_t n_items, const float* queries_in,
                                      int64_t n_queries, int dim, bool normalize, int64_t k,
                                      const std::vector<uint8_t>& eligible) {
  const std::vector<float> items = maybe_normalized(items_in, n_items, dim, normalize);
  const std::vector<float> queries = maybe_normalized(queries_in, n_queries, dim, normalize);
  const int threads = omp_get_max_threads();
  std::vector<Heap> heaps(size_t(threads) * size_t(n_queries));
#pragma omp parallel
  {
    Heap* mine = heaps.data() + size_t(omp_get_thread_num()) * size_t(n_queries);
    std::vector<float> scores(static_cast<size_t>(kItemBlock));
#pragma omp for schedule(dynamic)
    for (int64_t b0 = 0; b0 < n_items; b0 += kItemBlock) {
      const int64_t b1 = std::min(n_items, b0 + kItemBlock);
      for (int64_t q = 0; q < n_queries; ++q) {
        const float* qv = queries.data() + q * dim;
        for (int64_t i = b0; i < b1; ++i) {
          const float* iv = items.data() + i * dim;
          float s = 0;
          for (int j = 0; j < dim; ++j) s += qv[j] * iv[j];
          scores[size_t(i - b0)] = s;
        }
        Heap& h = mine[q];
        for (int64_t i = b0; i < b1; ++i) {
          if (!eligible.empty() && !eligible[size_t(i)]) continue;
          const Entry e{scores[size_t(i - b0)], -i};
          if (int64_t(h.size()) < k) {
            h.push(e);
          } else if (Worse()(e, h.top())) {
            h.pop();
            h.push(e);
          }
        }
      }
    }
  }
  std::vector<int64_t> out(size_t(n_queries * k), -1);
  for (int64_t q = 0; q < n_queries; ++q) {
    std::vector<Entry> all;
    for (int t = 0; t < threads; ++t) {
      Heap& h = heaps[size_t(t) * size_t(n_queries) + size_t(q)];
      for (; !h.empty(); h.pop()) all.push_back(h.top());
    }
    std::sort(all.begin(), all.end(), Worse());
    for (int64_t i = 0; i < std::min<int64_t>(k, int64_t(all.size())); ++i)
      out[size_t(q * k + i)] = -all[size_t(i)].second;
  }
  return out;
}

}  // namespace argent
