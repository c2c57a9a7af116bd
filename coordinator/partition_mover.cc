#include "coordinator/partition_mover.h"

#include <cstring>

#include "collectives/mpi_communicator.h"
#include "common/error.h"
#include "common/log.h"
#include "coordinator/shard_worker.h"

namespace argent {

int64_t PartitionMover::follow(StepOp op, const MoveStep& move, MpiCommunicator& control,
                               ShardWorker& worker, PartitionMap& map) {
  const int rank = control.rank();
  ARGENT_CHECK_DATA(move.partition >= 0 && move.partition < map.partitions() && move.from >= 0 &&
                        move.from < control.size() && move.to >= 0 && move.to < control.size() &&
                        move.from != move.to,
                    "move step: partition ", move.partition, " from ", move.from, " to ", move.to);
  switch (op) {
    case StepOp::kMoveBegin: {
      ARGENT_CHECK_DATA(map.rank_of(move.partition) == move.from, "move step: partition ",
                        move.partition, " is on rank ", map.rank_of(move.partition), ", not ",
                        move.from);
      int64_t mine = 0;
      if (rank == move.from) {
        reset();
        outgoing_partition_ = move.partition;
        outgoing_ = encode_partition(worker.shard().export_partitions({move.partition}).front());
        mine = int64_t(outgoing_.size());
      }
      std::vector<int64_t> sizes(size_t(control.size()));
      control.all_gather(&mine, sizes.data(), sizeof mine);
      const int64_t bytes = sizes[size_t(move.from)];
      if (rank == move.to) begin(move, rank, worker, bytes);
      moving_partition_ = move.partition;
      moving_mutations_ = 0;
      return bytes;
    }
    case StepOp::kMoveChunk: {
      int32_t ok = 1;
      if (rank == move.from || rank == move.to) ok = chunk(move, control, worker.shard().meta());
      if (!move.last) return ok;
      std::vector<int32_t> all(size_t(control.size()));
      control.all_gather(&ok, all.data(), sizeof ok);
      for (int32_t v : all) ok &= v;
      return ok;
    }
    case StepOp::kMoveCommit:
      commit(move, rank, worker);
      map = map.with_move(move.partition, move.to);
      last_forwarded_ = moving_mutations_;
      moving_partition_ = -1;
      return 1;
    case StepOp::kMoveAbort:
      reset();
      moving_partition_ = -1;
      return 1;
    default:
      ARGENT_CHECK_DATA(false, "move step: op ", int32_t(op));
  }
  return 0;
}

void PartitionMover::begin(const MoveStep& move, int rank, ShardWorker& worker, int64_t bytes) {
  reset();
  ARGENT_CHECK_DATA(bytes > 0 && bytes < (int64_t(1) << 40), "move step: partition of ", bytes,
                    " bytes");
  incoming_partition_ = move.partition;
  incoming_.assign(size_t(bytes), 0);
  ARGENT_LOG(kInfo, "rank ", rank, ": receiving partition ", move.partition, " (", bytes,
             " bytes) from rank ", move.from, "; holding ", worker.shard().partitions().size(),
             " partitions");
}

int32_t PartitionMover::chunk(const MoveStep& move, MpiCommunicator& control,
                              const IndexMeta& meta) {
  const bool source = control.rank() == move.from;
  const std::vector<uint8_t>& have = source ? outgoing_ : incoming_;
  ARGENT_CHECK_DATA((source ? outgoing_partition_ : incoming_partition_) == move.partition &&
                        move.offset >= 0 && move.bytes > 0 &&
                        uint64_t(move.offset + move.bytes) <= have.size(),
                    "move step: chunk [", move.offset, ", +", move.bytes, ") of partition ",
                    move.partition, " does not fit its ", have.size(), " bytes");
  if (source) {
    control.send(outgoing_.data() + move.offset, size_t(move.bytes), move.to);
    if (move.last) {
      outgoing_.clear();
      outgoing_.shrink_to_fit();
    }
    return 1;
  }
  control.recv(incoming_.data() + move.offset, size_t(move.bytes), move.from);
  if (!move.last) return 1;
  try {
    received_ = decode_partition(incoming_, meta, move.partition,
                                 "partition " + std::to_string(move.partition) + " from rank " +
                                     std::to_string(move.from));
  } catch (const Error& e) {
    ARGENT_LOG(kError, "rank ", control.rank(), ": move of partition ", move.partition,
               " failed its check: ", e.what());
    return 0;
  }
  incoming_.clear();
  incoming_.shrink_to_fit();
  verified_ = true;
  return 1;
}

void PartitionMover::forward(const MutationStep& step) {
  if (moving_partition_ < 0) return;
  for (const StepMutation& m : step.mutations) {
    if (m.item.partition != moving_partition_) continue;
    ++moving_mutations_;
    if (incoming_partition_ == moving_partition_) forwarded_.push_back(m);
  }
}

void PartitionMover::commit(const MoveStep& move, int rank, ShardWorker& worker) {
  if (rank == move.to) {
    ARGENT_CHECK_DATA(verified_ && incoming_partition_ == move.partition,
                      "move step: commit of partition ", move.partition, " before it arrived");
    ShardIndex& shard = worker.mutable_shard();
    shard.add_partition(std::move(received_));
    // The mutations the source applied since kMoveBegin, in log order: the partition is now
    // exactly what the source held.
    for (const StepMutation& m : forwarded_) {
      if (m.kind == MutationKind::kUpsert)
        shard.upsert(m.item);
      else
        shard.remove(m.item.id);
    }
    ARGENT_LOG(kInfo, "rank ", rank, ": took over partition ", move.partition, " from rank ",
               move.from, " (", forwarded_.size(), " forwarded mutations replayed)");
    reset();
  }
  if (rank == move.from) {
    worker.mutable_shard().remove_partition(move.partition);
    reset();
  }
}

void PartitionMover::reset() {
  outgoing_partition_ = incoming_partition_ = -1;
  outgoing_.clear();
  outgoing_.shrink_to_fit();
  incoming_.clear();
  incoming_.shrink_to_fit();
  received_ = PartitionData{};
  verified_ = false;
  forwarded_.clear();
}

}  // namespace argent
