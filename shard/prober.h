// IVF probing: picks, for each query, the lists to scan. Done once per batch on the coordinator
// (it holds the centroids and every list's global size and Bloom summary), then broadcast, so all
// shards scan the same lists. Lists that are empty everywhere, or whose Bloom summary proves that
// no item can pass the query's filter, are not spent a probe on.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/kmeans.h"
#include "shard/index_meta.h"
#include "shard/query_batch.h"

namespace argent {

// The probe on raw arrays, what Prober::probe runs: for queries `q` (codes [q.n, d_pad]), the best
// `nprobe` lists by centroid score among those that are non-empty (list_sizes [n_lists]) and
// whose Bloom summary (list_summaries [n_lists, bloom_words]) admits the query's filter.
// centroid_codes: blocked, centroid_rows (n_lists rounded up to 16) rows; centroid_scales
// [centroid_rows]. Writes lists [q.n, nprobe], -1 padding. Throws for nprobe < 1.
void probe_lists(const ScanQueriesView& q, int d_pad, const int8_t* centroid_codes,
                 const float* centroid_scales, int64_t n_lists, int64_t centroid_rows,
                 const int64_t* list_sizes, const uint64_t* list_summaries, int bloom_words,
                 int nprobe, int32_t* lists);

class Prober {
 public:
  explicit Prober(const IndexMeta& meta);

  // lists [q.n, nprobe] (-1 pads when fewer lists qualify). list_sizes [nlist] and
  // list_summaries [nlist, bloom words] describe the whole index (every shard's lists).
  std::vector<int32_t> probe(const QueryBatch& q, int nprobe, const int64_t* list_sizes,
                             const uint64_t* list_summaries) const;

  int64_t nlist() const { return centroids_.n_clusters; }
  const QuantizedCentroids& centroids() const { return centroids_; }

 private:
  QuantizedCentroids centroids_;
  int bloom_words_;
};

}  // namespace argent
