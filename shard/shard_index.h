// The tensors of one shard: the partitions a rank serves, merged into one set of IVF lists.
//
// Each IVF list owns a contiguous range of rows (starting at a multiple of 16) with spare
// capacity after its items, so an upsert can append in place and a delete only clears the row's
// id. Everything the scan reads is an at::Tensor (CPU today, the same tensors on CUDA later):
// the index *is* the model's state, and ScanIndexView hands raw pointers to the kernels.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/cpu/fused_scan.h"
#include "shard/index_meta.h"
#include "shard/mutation.h"
#include "shard/partition_file.h"

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

// Every ShardTensors member with its name: the key in argent::load_index's dict and the buffer
// name of a retrieval module (python/argent/torch.py INDEX_BUFFERS), which bind by these names.
struct ShardTensorField {
  const char* name;
  at::Tensor ShardTensors::*member;
};
inline constexpr ShardTensorField kShardTensorFields[] = {
    {"codes", &ShardTensors::codes},
    {"scales", &ShardTensors::scales},
    {"ids", &ShardTensors::ids},
    {"signatures", &ShardTensors::signatures},
    {"row_partition", &ShardTensors::row_partition},
    {"feature_offset", &ShardTensors::feature_offset},
    {"feature_count", &ShardTensors::feature_count},
    {"feature_ids", &ShardTensors::feature_ids},
    {"feature_values", &ShardTensors::feature_values},
    {"list_offsets", &ShardTensors::list_offsets},
    {"list_sizes", &ShardTensors::list_sizes},
    {"list_capacity", &ShardTensors::list_capacity},
    {"list_summaries", &ShardTensors::list_summaries},
};

class ShardIndex {
 public:
  // Loads `partitions` of the index in `dir` (read_manifest gives `meta`). Each list gets
  // `list_slack` (a fraction of its size, rounded up to whole 16-row blocks) of spare rows.
  static ShardIndex load(const std::string& dir, const IndexMeta& meta,
                         const std::vector<int32_t>& partitions, double list_slack);

  // A shard over tensors that already hold a shard's layout (another shard's tensors(), or the
  // index buffers of a retrieval module, python/argent/torch.py): the id map and the update
  // bookkeeping are rebuilt from them. The tensors are shared, not copied, so updates write into
  // them in place (until a list must grow, which reallocates). Throws Error(kInvalidArgument) for
  // tensors of the wrong dtype or shape, or an id stored twice.
  static ShardIndex from_tensors(const IndexMeta& meta, ShardTensors tensors,
                                 std::vector<int32_t> partitions, double list_slack);
  // The same from partitions already in memory (`origin` names them in errors).
  static ShardIndex from_partitions(const IndexMeta& meta, const std::vector<PartitionData>& parts,
                                    double list_slack, const std::string& origin);

  const IndexMeta& meta() const { return meta_; }
  const ShardTensors& tensors() const { return t_; }
  const std::vector<int32_t>& partitions() const { return partitions_; }
  int64_t n_items() const { return int64_t(id_to_row_.size()); }
  int64_t n_rows() const { return t_.ids.size(0); }
  // Deleted rows still inside their list (list_sizes counts them) until compaction.
  int64_t tombstones() const { return tombstones_; }

  // Raw pointers for the kernels; valid until the shard is modified.
  ScanIndexView view() const;

  // The row holding `id`, or -1.
  int64_t row_of(int64_t id) const;
  // One row's exact features, sorted.
  std::vector<std::pair<int32_t, int64_t>> features_of_row(int64_t row) const;
  // One row's embedding as the index scores it: codes * scale, [dim] floats.
  void dequantize_row(int64_t row, float* out) const;

  // ---- Streaming updates (shard/shard_update.cc) ---------------------------------------------
  // Updates change the tensors in place. They must not run concurrently with a search or another
  // update: the serving step loop and LocalEngine run them on the searching thread between
  // searches, which is what makes a search see an item's old or new row, never a torn one. Every
  // member below is therefore GUARDED_BY(the caller's step serialization), not by a lock.

  // Writes `item` into the next free row of its list (growing the list by reallocating the
  // shard when it is full), with its Bloom signature, exact features and the list's summary.
  // A live row with the same id is tombstoned first, so an id never has two live copies.
  // Returns the row. Throws Error(kInvalidArgument) when this shard does not hold the item's
  // partition or the item does not fit the index (code length, list number).
  int64_t upsert(const PreparedItem& item);
  // Tombstones the row of `id` (ids[row] = -1, which every scan skips). Returns false when the
  // id is not here.
  bool remove(int64_t id);
  // Rebuilds the tensors with only live rows, reclaiming tombstones and dead feature-store
  // entries; each list gets index.list_slack spare rows again.
  void compact();
  // The live items of each partition this shard holds (or of `only`, which it must hold), in
  // the file order (list, then id).
  std::vector<PartitionData> export_partitions(const std::vector<int32_t>& only = {}) const;

  // ---- Rebalancing (shard/shard_update.cc); serialized like the updates above ----------------
  // Takes in a partition this shard does not hold yet (a rebalance move's destination): each
  // row is appended to its list like an upsert. `part` must be well formed (check_partition).
  // Throws Error(kInvalidArgument), changing nothing, when the partition is already here or an
  // id of it is already live here.
  void add_partition(PartitionData part);
  // Tombstones every row of `partition` (a move's source, after the destination took it over);
  // compaction reclaims them later, as for deletes. Throws Error(kInvalidArgument) when this
  // shard does not hold it.
  void remove_partition(int32_t partition);
  // Live items of each partition of the index, [meta.partitions] (0 for those not held here).
  std::vector<int64_t> items_per_partition() const;

  // ---- Change tracking, for copies of the tensors kept elsewhere (a GPU shard) ---------------
  // Every write moves version() forward; versions of different ShardIndex objects never
  // overlap. rows_written_since(v, &rows) gives the rows written in place since version v
  // (sorted, unique) and returns true; it returns false when the copy must be rebuilt whole: the
  // tensors were reallocated since v (a list grew, compaction, a partition that did not fit),
  // more rows changed than the journal keeps, or v is another object's. Besides those rows only
  // the list tables change in place (small: copy them whole), and the feature pool grows at its
  // end (its first pool_used() entries are what rows reference; a reallocated pool keeps them).
  uint64_t version() const { return version_; }
  bool rows_written_since(uint64_t version, std::vector<int64_t>* rows) const;
  int64_t pool_used() const { return pool_used_; }

 private:
  // Relays every live row into fresh tensors; list `grow` (or -1) gets at least twice its live
  // rows of capacity, so repeated upserts into one list reallocate only O(log n) times.
  // `incoming` (or null): rows per list about to be added; each list gets room for them.
  void rebuild(int64_t grow, const std::vector<int64_t>* incoming = nullptr);
  void tombstone(int64_t row);
  void append_features(int64_t row, const std::vector<std::pair<int32_t, int64_t>>& features);

  IndexMeta meta_;
  std::vector<int32_t> partitions_;
  double list_slack_ = 0;
  ShardTensors t_;                                 // GUARDED_BY(step serialization)
  std::unordered_map<int64_t, int64_t> id_to_row_;  // GUARDED_BY(step serialization)
  int64_t pool_used_ = 0;    // entries of feature_ids/values in use (live or dead)
  int64_t tombstones_ = 0;   // deleted rows inside lists

  // Change tracking: rows written since the journal's start, each with the version it made.
  void note_row_written(int64_t row);
  void note_reallocated();
  static uint64_t first_version();  // a fresh range of 2^40 versions per object
  uint64_t version_ = first_version();
  uint64_t rebuilt_at_ = version_;   // rows_written_since(v) needs v >= this
  std::deque<std::pair<uint64_t, int64_t>> journal_;  // (version, row), oldest first
};

}  // namespace argent
