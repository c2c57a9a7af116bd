#include "shard/prober.h"

#include "common/error.h"
#include "kernels/cpu/bloom.h"
#include "kernels/cpu/dense_scores.h"

namespace argent {

Prober::Prober(const IndexMeta& meta)
    : centroids_(quantize_centroids(meta.centroids.data(), meta.nlist, meta.dim)),
      bloom_words_(meta.bloom.words) {}

std::vector<int32_t> Prober::probe(const QueryBatch& q, int nprobe, const int64_t* list_sizes,
                                   const uint64_t* list_summaries) const {
  ARGENT_CHECK(nprobe >= 1, "nprobe ", nprobe, " must be >= 1");
  const int64_t nlist = centroids_.n_clusters, stride = centroids_.n_rows;
  std::vector<float> scores(size_t(q.n * stride));
  dense_scores(q.codes.data(), q.scales.data(), q.bias.data(), q.n, centroids_.blocked.data(),
               centroids_.scales.data(), centroids_.n_rows, q.d_pad, scores.data(), stride);
  // select_probes reads rows of nlist scores; compact the stride away.
  if (stride != nlist)
    for (int64_t i = 0; i < q.n; ++i)
      std::copy_n(scores.data() + i * stride, nlist, scores.data() + i * nlist);

  std::vector<uint8_t> ok(size_t(q.n * nlist));
  const ScanQueriesView v = q.view();
  for (int64_t i = 0; i < q.n; ++i) {
    const int32_t plan = q.plans.empty() ? -1 : q.plan_of_query[size_t(i)];
    for (int64_t l = 0; l < nlist; ++l) {
      bool usable = list_sizes[l] > 0;
      if (usable && plan >= 0)
        usable = eval_plan_summary(v.plans[plan], list_summaries + l * bloom_words_, bloom_words_);
      ok[size_t(i * nlist + l)] = usable;
    }
  }
  std::vector<int32_t> lists(size_t(q.n) * size_t(nprobe));
  select_probes(scores.data(), q.n, nlist, nprobe, ok.data(), lists.data());
  return lists;
}

}  // namespace argent
