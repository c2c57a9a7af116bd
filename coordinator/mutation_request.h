// A client's Upsert or Delete as the coordinator validates, logs and replays it. A request is
// the unit of atomicity: its write-ahead log record holds all of its items, so recovery applies
// all of them or none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "argent/v1/service.pb.h"
#include "common/config.h"
#include "shard/index_meta.h"
#include "shard/item_set.h"

namespace argent {

enum class MutationKind : uint8_t { kUpsert = 1, kDelete = 2 };

struct MutationBatch {
  MutationKind kind = MutationKind::kUpsert;
  ItemSet items;             // kUpsert: ids unique, dim = the index's, finite, features sorted
  std::vector<int64_t> ids;  // kDelete: unique, never -1

  int64_t size() const { return kind == MutationKind::kUpsert ? items.size() : int64_t(ids.size()); }
};

// Check a request against the index and config and fill `out`. They return "" when valid, else
// the INVALID_ARGUMENT message naming the item and the problem (wrong dimension, NaN, id -1,
// repeated id, negative feature id, empty or oversize request).
std::string validate_upsert(const v1::UpsertRequest& request, const IndexMeta& meta,
                            const Config& config, MutationBatch* out);
std::string validate_delete(const v1::DeleteRequest& request, const Config& config,
                            MutationBatch* out);
// An admin request that is not a REBALANCE must be a SNAPSHOT with no rebalance fields: an
// unknown action number (proto3 keeps it) or a stray plan, rank or move is refused by name.
std::string validate_snapshot(const v1::AdminRequest& request);

// The write-ahead log payload of one request (docs/formats.md, "Write-ahead log"):
//   u8 kind | u8[3] 0 | u32 dim | i64 n, then n times
//     upsert: i64 id | f32[dim] embedding | u32 m | m x (i32 feature, i64 value)
//     delete: i64 id
// Embeddings are logged as the client sent them (not quantized): replay re-runs the same
// preparation and so reproduces the same rows.
std::vector<uint8_t> encode_mutation(const MutationBatch& batch);
// Throws Error(kDataLoss) for a payload that is malformed or whose dimension is not `dim`.
MutationBatch decode_mutation(const uint8_t* data, size_t size, int32_t dim);

}  // namespace argent
