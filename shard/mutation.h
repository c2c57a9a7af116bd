// Streaming updates as a shard applies them: an upserted item already quantized and assigned to
// its IVF list, exactly as the index builder would have stored it.
//
// The coordinator prepares items once (rank 0 holds the centroids) and ships the prepared rows to
// the rank that owns each partition; LocalEngine prepares and applies in one process. Either way
// preparation runs the builder's own functions (quantize_rows, assign_to_centroids over the same
// quantized centroids), so an upserted item scores bit for bit as if it had been in the build.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/cpu/kmeans.h"
#include "shard/index_meta.h"
#include "shard/item_set.h"

namespace argent {

struct PreparedItem {
  int64_t id = 0;
  int32_t partition = 0;  // partition_of_id(id, meta.partitions)
  int32_t list = 0;       // the IVF list the builder would put it in
  float scale = 0;
  std::vector<int8_t> codes;  // [d_pad] row-major, padding dims 0
  std::vector<std::pair<int32_t, int64_t>> features;  // sorted by (feature, value), unique
};

// Quantizes and assigns `items` (validated: dim == meta.dim, finite, ids unique and not -1,
// features sorted and non-negative). `centroids` must be quantize_centroids(meta.centroids).
// Throws Error(kInvalidArgument) naming the first bad item.
std::vector<PreparedItem> prepare_upserts(const ItemSet& items, const IndexMeta& meta,
                                          const QuantizedCentroids& centroids);

}  // namespace argent
