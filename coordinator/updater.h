// The update path of the serving job (docs/architecture.md, "Updates"): crash recovery at start,
// mutation steps (log, apply on every rank, acknowledge) and snapshot steps. Rank 0 runs an
// Updater from its step loop; the other ranks follow its steps with follow_mutation_step and
// follow_snapshot_step. Everything here runs on the step loop's thread, between search steps.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/mpi_communicator.h"
#include "common/config.h"
#include "coordinator/partition_map.h"
#include "coordinator/replier.h"
#include "coordinator/server_stats.h"
#include "coordinator/shard_worker.h"
#include "coordinator/snapshot.h"
#include "coordinator/step_protocol.h"
#include "coordinator/update_queue.h"
#include "coordinator/wal.h"
#include "kernels/cpu/kmeans.h"

namespace argent {

// What a rank's step loop shares with the update path. References; all outlive the Updater.
struct UpdateContext {
  const Config& config;
  const IndexMeta& meta;
  const PartitionMap& map;
  MpiCommunicator& control;
  Communicator& data;
  ShardWorker& worker;
  GlobalLists& lists;  // rank 0: the prober's index-wide lists, refreshed after each step
};

class Updater {
 public:
  // `snapshot`: what this job loaded (read_snapshot_pointer). `centroids`: the prober's.
  Updater(UpdateContext ctx, const QuantizedCentroids& centroids, SnapshotPointer snapshot,
          ServerStats& server_stats, UpdateStats& stats, uint64_t& step_id);

  // Opens the write-ahead log and replays, through mutation steps, every record after the
  // loaded snapshot. A torn tail is reported and discarded. Call before the gateway starts.
  void recover();
  // Runs one step for the oldest queued writes (or snapshot): log with one fdatasync, apply on
  // every rank, then acknowledge. Returns false when the queue was empty.
  bool run_queued(MutationQueue& queue, Replier& replier);
  // Takes a snapshot when updates.snapshot_interval_s or updates.snapshot_wal_bytes says so.
  void maybe_snapshot();

 private:
  // The collectives of one mutation step; returns the gathered acks (ranks x ack bytes).
  std::vector<uint8_t> mutate(const std::vector<const MutationBatch*>& batches);
  // A snapshot step; on success returns "" and fills `done`, else the error message.
  std::string snapshot(SnapshotPointer* done, double* seconds);
  void refresh_stats(const std::vector<uint8_t>& acks, int32_t n_requests);

  UpdateContext ctx_;
  const QuantizedCentroids& centroids_;
  SnapshotPointer snapshot_;
  ServerStats& server_stats_;
  UpdateStats& stats_;
  uint64_t& step_id_;
  std::optional<WriteAheadLog> wal_;  // opened by recover()
  std::chrono::steady_clock::time_point last_snapshot_;
};

// Ranks other than 0, on a kMutate / kSnapshot header from the coordinator.
void follow_mutation_step(const StepHeader& h, const UpdateContext& ctx);
void follow_snapshot_step(const StepHeader& h, const UpdateContext& ctx);

}  // namespace argent
