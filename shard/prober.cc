#include "shard/prober.h"

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/bloom.h"
#include "kernels/cpu/dense_scores.h"

namespace argent {

Prober::Prober(const IndexMeta& meta)
    : centroids_(quantize_centroids(meta.centroids.data(), meta.nlist, meta.dim)),
      bloom_words_(meta.bloom.words) {}

void probe_lists(const ScanQueriesView& q, int d_pad, const int8_t* centroid_codes,
                 const float* centroid_scales, int64_t nlist, int64_t stride,
                 const int64_t* list_sizes, const uint64_t* list_summaries, int bloom_words,
                 int nprobe, int32_t* lists) {
  ARGENT_CHECK(nprobe >= 1, "nprobe ", nprobe, " must be >= 1");
  std::vector<float> scores(size_t(q.n * stride));
  dense_scores(q.codes, q.scales, q.bias, q.n, centroid_codes, centroid_scales, stride, d_pad,
               scores.data(), stride);
  // select_probes reads rows of nlist scores; compact the stride away.
  if (stride != nlist)
    for (int64_t i = 0; i < q.n; ++i)
      std::copy_n(scores.data() + i * stride, nlist, scores.data() + i * nlist);

  // A list's Bloom summary is read only when the list is next in line for a filtered query:
  // about nprobe summaries per query, where reading every list's was 5 % of a filtered IVF
  // batch (1M items, 4096 lists, B = 1 or 64).
  const int64_t n_plans = q.plan_of_query ? q.n_plans : 0;
  for (int64_t i = 0; q.plan_of_query && i < q.n; ++i)
    ARGENT_CHECK(q.plan_of_query[i] >= -1 && q.plan_of_query[i] < n_plans, "probe: query ", i,
                 " has plan ", q.plan_of_query[i], " of ", n_plans);
  select_probes(
      scores.data(), q.n, nlist, nprobe,
      [&](int64_t i, int32_t l) {
        if (list_sizes[l] <= 0) return false;
        const int32_t plan = q.plan_of_query ? q.plan_of_query[i] : -1;
        return plan < 0 ||
               eval_plan_summary(q.plans[plan], list_summaries + l * bloom_words, bloom_words);
      },
      lists);
}

std::vector<int32_t> Prober::probe(const QueryBatch& q, int nprobe, const int64_t* list_sizes,
                                   const uint64_t* list_summaries) const {
  ARGENT_CHECK(nprobe >= 1, "nprobe ", nprobe, " must be >= 1");
  std::vector<int32_t> lists(size_t(q.n) * size_t(nprobe));
  probe_lists(q.view(), q.d_pad, centroids_.blocked.data(), centroids_.scales.data(),
              centroids_.n_clusters, centroids_.n_rows, list_sizes, list_summaries, bloom_words_,
              nprobe, lists.data());
  return lists;
}

}  // namespace argent
