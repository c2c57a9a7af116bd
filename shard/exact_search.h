// Exact search that skips lists which provably cannot hold a top-k item.
//
// For an item x in list l, with ĉ_l the list's quantized centroid (what the prober scores),
//     score(q, x) = q̂·x̂ = q̂·ĉ_l + q̂·(x̂ − ĉ_l) ≤ q̂·ĉ_l + ‖q̂‖·r_l,     r_l = max_{x∈l} ‖x̂ − ĉ_l‖
// where q̂, x̂ are the dequantized query and item (the vectors the int8 score is exactly the inner
// product of). The search scans each query's lists in order of this bound: first the `first_pass`
// lists with the highest bounds, then every other list whose bound (plus a rounding margin) is
// not below the query's k-th score so far. Lists left out cannot contain an item that would
// enter or tie into the top k, so the result is that of a scan of every list, bit for bit; how
// many lists it skips depends on how clustered the data is (on unclustered data it scans them all).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/fused_scan.h"
#include "kernels/cpu/kmeans.h"
#include "shard/query_batch.h"
#include "shard/shard_index.h"

namespace argent {

class ListBounds {
 public:
  // Radii of every list of `shard` around the quantized centroids.
  ListBounds(const ShardIndex& shard, const QuantizedCentroids& centroids);

  // scores/ids [q.n, k] as fused_scan writes them. `threads` as for fused_scan.
  void search(const ShardIndex& shard, const QueryBatch& q, int64_t k, int first_pass,
              int threads, float* scores, int64_t* ids, ScanStats* stats) const;

  const std::vector<double>& radius() const { return radius_; }

  // Keeps the bound valid after `row` of `shard` was written into `list` by an upsert: the
  // list's radius grows to cover it. Deletes and compaction need nothing (a radius may
  // over-estimate; the bound only has to hold for every live item).
  void include(const ShardIndex& shard, int64_t row, int64_t list);

 private:
  QuantizedCentroids centroids_;     // a copy: the engine that owns this object may move
  std::vector<double> radius_;         // [nlist]; -1 for a list with no live item
  std::vector<double> centroid_norm_;  // [nlist] ‖ĉ_l‖
};

}  // namespace argent
