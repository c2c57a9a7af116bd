#include "shard/mutation.h"

#include "common/error.h"
#include "common/hash.h"
#include "kernels/cpu/quantize.h"

namespace argent {

std::vector<PreparedItem> prepare_upserts(const ItemSet& items, const IndexMeta& meta,
                                          const QuantizedCentroids& centroids) {
  ARGENT_CHECK(items.dim == meta.dim, "upsert: embedding dimension ", items.dim,
               " != index dimension ", meta.dim);
  validate_item_set(items);
  ARGENT_ASSERT(centroids.n_clusters == meta.nlist && centroids.d_pad == meta.d_pad,
                "centroids of ", centroids.n_clusters, " lists for an index of ", meta.nlist);
  const int64_t n = items.size();
  std::vector<PreparedItem> out(static_cast<size_t>(n));
  if (n == 0) return out;
  // The builder's path (shard/index_builder.cc), row for row: same quantizer, same assignment.
  std::vector<int8_t> codes(size_t(n) * size_t(meta.d_pad));
  std::vector<float> scales(static_cast<size_t>(n));
  std::vector<int32_t> bias(static_cast<size_t>(n)), labels(static_cast<size_t>(n));
  quantize_rows(items.embeddings.data(), n, items.dim, meta.d_pad, meta.normalize, codes.data(),
                scales.data(), bias.data());
  assign_to_centroids(codes.data(), scales.data(), bias.data(), n, centroids, labels.data());
  for (int64_t i = 0; i < n; ++i) {
    PreparedItem& p = out[size_t(i)];
    p.id = items.ids[size_t(i)];
    p.partition = partition_of_id(p.id, meta.partitions);
    p.list = labels[size_t(i)];
    p.scale = scales[size_t(i)];
    p.codes.assign(codes.begin() + i * meta.d_pad, codes.begin() + (i + 1) * meta.d_pad);
    for (int64_t j = items.feature_offsets[size_t(i)]; j < items.feature_offsets[size_t(i) + 1]; ++j)
      p.features.emplace_back(items.feature_ids[size_t(j)], items.feature_values[size_t(j)]);
  }
  return out;
}

}  // namespace argent
