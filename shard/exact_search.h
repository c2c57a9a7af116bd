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
  // Radii of every list of `shard` around the quantized centroids, as of shard.version().
  ListBounds(const ShardIndex& shard, const QuantizedCentroids& centroids);

  // Brings the radii up to date with every write to `shard` since the last sync (or the
  // construction), so that each covers its list's live items again: the rows the shard's change
  // journal names are included one by one; after a reallocation (a list grew, compaction, a
  // partition added whole) or a journal overflow every radius is computed again, one pass over
  // the shard's codes. Deletes shrink no radius (a bound may over-estimate; it only has to hold
  // for every live item). Call it after writes and before the next search; not thread-safe.
  void sync(const ShardIndex& shard);

  // scores/ids/rows [q.n, k] as fused_scan writes them (rows may be null). `threads` and
  // `plan_masks` (the filter cache's, or null) as for fused_scan. `shard` must be the one synced
  // last, unchanged since (asserted by version).
  void search(const ShardIndex& shard, const QueryBatch& q, int64_t k, int first_pass,
              int threads, float* scores, int64_t* ids, int64_t* rows, ScanStats* stats,
              const uint16_t* const* plan_masks = nullptr) const;

  const std::vector<double>& radius() const { return radius_; }

 private:
  void compute_all(const ShardIndex& shard);
  // Grows list `list`'s radius to cover `row` of `shard`.
  void include(const ShardIndex& shard, int64_t row, int64_t list);

  QuantizedCentroids centroids_;     // a copy: the engine that owns this object may move
  std::vector<double> radius_;         // [nlist]; -1 for a list with no live item
  std::vector<double> centroid_norm_;  // [nlist] ‖ĉ_l‖
  uint64_t version_ = 0;               // the shard's version() the radii cover
};

}  // namespace argent
