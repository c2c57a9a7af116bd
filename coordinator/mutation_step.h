// The step that applies mutations on every rank (docs/architecture.md, "Updates").
//
//   1. StepHeader{kMutate}, then the MutationStep payload broadcast over the data communicator:
//      the step's mutations in log order, upserts already prepared (quantized, assigned to
//      their list) on rank 0 and each tagged with the rank that owns its partition.
//   2. Every rank applies, in order, the mutations tagged with its rank, between two search
//      steps, and answers a MutationAck (fixed size for the step), all-gathered to rank 0.
//   3. All ranks re-gather the index-wide list sizes and Bloom summaries for the prober.
#pragma once

#include <cstdint>
#include <vector>

#include "coordinator/mutation_request.h"
#include "shard/mutation.h"
#include "shard/shard_index.h"

namespace argent {

struct StepMutation {
  MutationKind kind = MutationKind::kUpsert;
  int32_t rank = 0;     // the rank that applies it
  int32_t request = 0;  // index of the request it came from, within the step
  PreparedItem item;    // kDelete: only id and partition are set
};

struct MutationStep {
  int32_t n_requests = 0;
  std::vector<StepMutation> mutations;
};

std::vector<uint8_t> encode_mutation_step(const MutationStep& step);
// Throws Error(kDataLoss) for a malformed payload or one that does not fit an index of `d_pad`,
// `nlist` lists and `ranks` ranks.
MutationStep decode_mutation_step(const std::vector<uint8_t>& bytes, int32_t d_pad, int64_t nlist,
                                  int ranks);

// A rank's answer to a mutation (or snapshot) step; `applied` follows, one int64 per request.
struct MutationAck {
  int32_t rank = 0;
  int32_t ok = 1;          // 0: the rank failed the step (snapshot write error); see its log
  int64_t items = 0;       // live items the rank holds after the step
  int64_t tombstones = 0;  // deleted rows not yet compacted
  int64_t rows_in_use = 0;
};
static_assert(sizeof(MutationAck) == 32, "MutationAck is gathered as raw bytes");

inline size_t mutation_ack_bytes(int32_t n_requests) {
  return sizeof(MutationAck) + size_t(n_requests) * sizeof(int64_t);
}

// Applies this rank's mutations of `step` to `shard`, in order, and fills `ack` (applied[r] = the
// request's upserts plus the deletes that found their id). Compacts the shard afterwards when
// its tombstones exceed `compact_ratio` of its rows in use (0: never here).
std::vector<uint8_t> apply_mutation_step(const MutationStep& step, int rank, double compact_ratio,
                                         ShardIndex& shard);

// Compacts `shard` when its tombstones exceed `ratio` of its rows in use (and a minimum count):
// after a mutation step, and after a partition move dropped a partition. Returns whether it did.
bool maybe_compact(ShardIndex& shard, double ratio, int rank);

// The ack fields of `shard` (items, tombstones, rows in use) for `rank`.
MutationAck shard_ack(const ShardIndex& shard, int rank);

}  // namespace argent
