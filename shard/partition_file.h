// One partition of an index on disk: DIR/part-NNNNN.argent (docs/formats.md).
//
// Items are ordered by IVF list, then id; list l holds items [list_offsets[l], list_offsets[l+1]).
// Codes are row-major here (the blocked in-memory layout is built at load), and Bloom signatures
// are not stored: they are recomputed from the exact features, which cannot then disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shard/index_meta.h"

namespace argent {

struct PartitionData {
  int32_t partition = 0;
  std::vector<int64_t> ids;            // [n]
  std::vector<float> scales;           // [n]
  std::vector<int8_t> codes;           // [n, d_pad] row-major
  std::vector<int64_t> list_offsets;   // [nlist + 1]
  std::vector<int64_t> feature_offsets;  // [n + 1] CSR into feature_ids / feature_values
  std::vector<int32_t> feature_ids;    // per item sorted by (id, value), no duplicates
  std::vector<int64_t> feature_values;

  int64_t size() const { return int64_t(ids.size()); }
};

void write_partition(const std::string& dir, const IndexMeta& meta, const PartitionData& part);

// Reads and validates partition `partition` of the index described by `meta`: checksums, sizes,
// monotonic offsets, sorted features, finite scales, and that every id hashes to this
// partition. Throws Error(kDataLoss) naming the file and the problem.
PartitionData read_partition(const std::string& dir, const IndexMeta& meta, int32_t partition);

// Checks what every reader of a partition relies on (sizes, monotonic offsets, sorted features,
// finite scales, ids hashing to the partition); throws Error(kDataLoss) naming `what`.
void check_partition(const PartitionData& part, const IndexMeta& meta, const std::string& what);

// A partition as bytes for a rebalance move between ranks (docs/formats.md, "Partition in
// transit"): magic, version, the arrays and a CRC32C. decode checks the CRC, that it holds
// `partition`, and check_partition; throws Error(kDataLoss) naming `what`.
std::vector<uint8_t> encode_partition(const PartitionData& part);
PartitionData decode_partition(const std::vector<uint8_t>& bytes, const IndexMeta& meta,
                               int32_t partition, const std::string& what);

}  // namespace argent
