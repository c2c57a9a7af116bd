// One rank's side of a partition move (docs/architecture.md, "Rebalancing"). Rank 0's
// Rebalancer (coordinator/rebalancer.h) drives a move as steps of the ordinary step loop, so
// searches and updates keep running between them; every rank handles each step here:
//
//   kMoveBegin   the source freezes the partition (exports its live rows and encodes them,
//                shard/partition_file.h); every rank learns its size; from this step on the
//                destination keeps a copy of every mutation of the partition that a mutation
//                step carries (each mutation step is broadcast whole), to replay later.
//   kMoveChunk   the source sends bytes [offset, offset + bytes) to the destination, MPI point
//                to point; after the last chunk the destination decodes and checks the
//                partition (CRC32C and structure) and every rank learns whether it may commit.
//   kMoveCommit  at this step boundary the destination adds the partition and replays the
//                forwarded mutations in order, the source drops it, and every rank's map moves
//                the partition: every search before the step saw the partition on the source,
//                every search after it on the destination.
//   kMoveAbort   both sides drop what they hold; the map is unchanged.
//
// Moves travel over the control (MPI) communicator on every backend: a shard's tensors live in
// host memory (the CUDA scanner's device copy is a cache refreshed after a change), so the bytes
// to move are host bytes; NCCL stays the data plane of search steps.
#pragma once

#include <cstdint>
#include <vector>

#include "coordinator/mutation_step.h"
#include "coordinator/partition_map.h"
#include "coordinator/step_protocol.h"
#include "shard/partition_file.h"

namespace argent {

class MpiCommunicator;
class Communicator;
class ShardWorker;
struct IndexMeta;

// The fixed-size payload of every move step, broadcast over the control communicator.
struct MoveStep {
  int32_t partition = 0;
  int32_t from = 0;
  int32_t to = 0;
  int32_t last = 0;     // kMoveChunk: 1 for the last chunk
  int64_t offset = 0;   // kMoveChunk
  int64_t bytes = 0;    // kMoveChunk
};
static_assert(sizeof(MoveStep) == 32, "MoveStep is broadcast as raw bytes");

class PartitionMover {
 public:
  // Per step, on every rank, in step order; `map` is this rank's map (kMoveCommit replaces it).
  // Returns: kMoveBegin, the partition's encoded size; kMoveChunk, 1 when the chunk went well
  // and (after the last one) every rank may commit, else 0; the others 1.
  int64_t follow(StepOp op, const MoveStep& move, MpiCommunicator& control, ShardWorker& worker,
                 PartitionMap& map);

  // Mutation steps call this before applying: keeps the mutations of an incoming partition.
  void forward(const MutationStep& step);

  // Mutations of the partition that moved last, carried since its kMoveBegin (every rank
  // counts them; the destination replayed them).
  int64_t last_forwarded() const { return last_forwarded_; }

 private:
  void begin(const MoveStep& move, int rank, ShardWorker& worker, int64_t bytes);
  int32_t chunk(const MoveStep& move, MpiCommunicator& control, const IndexMeta& meta);
  void commit(const MoveStep& move, int rank, ShardWorker& worker);
  void reset();

  // Source side: the frozen partition, encoded.
  int32_t outgoing_partition_ = -1;
  std::vector<uint8_t> outgoing_;
  // Destination side: bytes received so far, the decoded partition after the last chunk, and
  // the partition's mutations since kMoveBegin, in log order.
  int32_t incoming_partition_ = -1;
  std::vector<uint8_t> incoming_;
  PartitionData received_;
  bool verified_ = false;
  std::vector<StepMutation> forwarded_;
  // Every rank: the partition moving now (-1: none) and its mutations since kMoveBegin.
  int32_t moving_partition_ = -1;
  int64_t moving_mutations_ = 0;
  int64_t last_forwarded_ = 0;
};

}  // namespace argent
