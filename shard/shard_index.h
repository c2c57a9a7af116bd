// The tensors of one shard: the partitions a rank serves, merged into one set of IVF lists.
//
// Each IVF list owns a contiguous range of rows (starting at a multiple of 16) with spare
// capacity after its items, so an upsert can append in place and a delete only clears the row's
// id. Everything the scan reads is an at::Tensor (CPU today, the same tensors on CUDA later):
// the index *is* the model's state, and ScanIndexView hands raw pointers to the kernels.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/cpu/fused_scan.h"
#include "shard/index_meta.h"

namespace argent {

struct ShardTensors {
  at::Tensor codes;          // int8 [rows * d_pad], blocked layout (kernels/layout.h)
  at::Tensor scales;         // float32 [rows]
  at::Tensor ids;            // int64 [rows]; kEmptyId for free or deleted rows
  at::Tensor signatures;     // int64 [rows, bloom_words] (uint64 bits)
  at::Tensor row_partition;  // int32 [rows]; -1 for free rows
  at::Tensor feature_offset; // int64 [rows] into the feature pool
  at::Tensor feature_count;  // int32 [rows]
  at::Tensor feature_ids;    // int32 [pool]
  at::Tensor feature_values; // int64 [pool]
  at::Tensor list_offsets;   // int64 [nlist]
  at::Tensor list_sizes;     // int64 [nlist] rows in use
  at::Tensor list_capacity;  // int64 [nlist]
  at::Tensor list_summaries; // int64 [nlist, bloom_words]: OR of the list's signatures
};

class ShardIndex {
 public:
  // Loads `partitions` of the index in `dir` (read_manifest gives `meta`). Each list gets
  // `list_slack` (a fraction of its size, rounded up to whole 16-row blocks) of spare rows.
  static ShardIndex load(const std::string& dir, const IndexMeta& meta,
                         const std::vector<int32_t>& partitions, double list_slack);

  const IndexMeta& meta() const { return meta_; }
  const ShardTensors& tensors() const { return t_; }
  const std::vector<int32_t>& partitions() const { return partitions_; }
  int64_t n_items() const { return int64_t(id_to_row_.size()); }
  int64_t n_rows() const { return t_.ids.size(0); }

  // Raw pointers for the kernels; valid until the shard is modified.
  ScanIndexView view() const;

  // The row holding `id`, or -1.
  int64_t row_of(int64_t id) const;
  // One row's exact features, sorted.
  std::vector<std::pair<int32_t, int64_t>> features_of_row(int64_t row) const;
  // One row's embedding as the index scores it: codes * scale, [dim] floats.
  void dequantize_row(int64_t row, float* out) const;

 private:
  IndexMeta meta_;
  std::vector<int32_t> partitions_;
  ShardTensors t_;
  std::unordered_map<int64_t, int64_t> id_to_row_;
};

}  // namespace argent
