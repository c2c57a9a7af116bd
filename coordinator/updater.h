// The update path of the serving job (docs/architecture.md, "Updates"): crash recovery at start,
// mutation steps (log, apply on every rank, acknowledge) in updater.cc, and snapshot steps in
// updater_snapshot.cc. Rank 0 runs an
// Updater from its step loop; the other ranks follow its steps with follow_mutation_step and
// follow_snapshot_step. Everything here runs on the step loop's thread, between search steps.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/mpi_communicator.h"
#include "common/config.h"
#include "coordinator/partition_map.h"
#include "coordinator/partition_mover.h"
#include "coordinator/replier.h"
#include "coordinator/server_stats.h"
#include "coordinator/shard_worker.h"
#include "coordinator/inflight_board.h"
#include "coordinator/mutation_step.h"
#include "coordinator/snapshot.h"
#include "coordinator/step_protocol.h"
#include "coordinator/update_queue.h"
#include "coordinator/wal.h"
#include "coordinator/watchdog.h"
#include "kernels/cpu/kmeans.h"

namespace argent {

// What a rank's step loop shares with the update path. References; all outlive the Updater.
struct UpdateContext {
  const Config& config;
  const IndexMeta& meta;
  PartitionMap& map;  // the map steps route by; a committed partition move replaces it
  MpiCommunicator& control;
  Communicator& data;
  ShardWorker& worker;
  GlobalLists& lists;  // rank 0: the prober's index-wide lists, refreshed after each step
  // Cluster faults (coordinator/watchdog.h, inflight_board.h); null: not watched (unit tests).
  Watchdog* watchdog = nullptr;  // every step is begun and ended with it
  InFlightBoard* board = nullptr;  // rank 0: writes taken from the queue until acknowledged
  PartitionMover* mover = nullptr;  // rebalancing: sees every mutation step (may be null)
};

// A write-ahead log record that is a partition map (a committed partition move), not a
// mutation: its first byte, where a mutation record has its MutationKind.
constexpr uint8_t kPartitionMapRecord = 0x50;  // 'P'
std::vector<uint8_t> encode_map_record(const PartitionMap& map);
bool is_map_record(const WalRecord& record);
// The map the job serves at start: the snapshot's (or round-robin over the serving ranks of
// the config when the snapshot has none), then the last map record of the log after it.
// `recovery`: what WriteAheadLog::open found. Throws Error naming the problem (a map placing a
// partition on a rank this job does not have).
PartitionMap recover_partition_map(const Config& config, const IndexMeta& meta, int ranks,
                                   const SnapshotPointer& snapshot, const WalRecovery& recovery);

class Updater {
 public:
  // `snapshot`: what this job loaded (read_snapshot_pointer). `centroids`: the prober's.
  // `wake` is called (from another thread) when a log write finishes: the step loop should come
  // back to run_queued.
  Updater(UpdateContext ctx, const QuantizedCentroids& centroids, SnapshotPointer snapshot,
          ServerStats& server_stats, UpdateStats& stats, uint64_t& step_id,
          std::function<void()> wake);
  ~Updater();

  // Takes the write-ahead log (opened at start-up, which read `recovery` from it to find the
  // partition map) and replays, through mutation steps, every mutation record after the loaded
  // snapshot. A torn tail is reported. Call before the gateway starts.
  void recover(WriteAheadLog wal, const WalRecovery& recovery);
  // Appends `map` to the log (one record, fdatasync'ed) before a partition move commits to it.
  // Only while no group is being logged (!logging()). Throws Error(kIo) when the write fails.
  void log_partition_map(const PartitionMap& map);
  // Moves writes along, without waiting: when the log write in flight has finished, applies
  // its requests on every rank (a kMutate step) and acknowledges them; when none is in flight,
  // starts writing the oldest queued requests to the log (one write and one fdatasync, on a
  // helper thread, so search steps go on meanwhile), or runs a queued snapshot.
  void run_queued(MutationQueue& queue, Replier& replier);
  // Whether a log write is in flight (run_queued can do nothing more until `wake`).
  bool logging() const { return in_flight_.has_value(); }
  // While paused, run_queued finishes the write in flight but starts no other: a partition
  // move's commit waits for the log to be free (log_partition_map) without starving.
  void set_paused(bool paused) { paused_ = paused; }
  // Shutdown: waits for the log write in flight, then applies and acknowledges it.
  void finish(Replier& replier);
  // Takes a snapshot when updates.snapshot_interval_s or updates.snapshot_wal_bytes says so.
  void maybe_snapshot();

 private:
  // Starts step `op` on every rank (the header over the control communicator) and on the
  // watchdog; end_step() after its last collective.
  void broadcast_header(StepOp op, int64_t payload_bytes, int64_t n = 0);
  void end_step();
  // Prepares `b` (quantize, assign, route to ranks) as the next request of `step`; throws
  // Error(kInvalidArgument), leaving `step` unchanged, when an item cannot be prepared.
  void add_to_step(const MutationBatch& b, MutationStep* step) const;
  // The collectives of one mutation step; returns the gathered acks (ranks x ack bytes).
  std::vector<uint8_t> mutate(const MutationStep& step);
  // A snapshot step; on success returns "" and fills `done`, else the error message.
  std::string snapshot(SnapshotPointer* done, double* seconds);
  void refresh_stats(const std::vector<uint8_t>& acks, int32_t n_requests);
  // Applies and acknowledges the finished log write.
  void complete(Replier& replier);
  void answer_snapshot(const PendingMutation& req, Replier& replier);

  // A group of requests being written to the log by a helper thread; `first` becomes the first
  // record's sequence. The WriteAheadLog belongs to that thread until `first` is ready.
  struct InFlight {
    std::vector<PendingMutation> requests;
    MutationStep step;  // the requests, prepared
    std::future<uint64_t> first;
    uint64_t token = 0;  // on ctx_.board
  };

  UpdateContext ctx_;
  const QuantizedCentroids& centroids_;
  SnapshotPointer snapshot_;
  ServerStats& server_stats_;
  UpdateStats& stats_;
  uint64_t& step_id_;
  std::optional<WriteAheadLog> wal_;  // opened by recover()
  std::optional<InFlight> in_flight_;
  std::function<void()> wake_;
  std::chrono::steady_clock::time_point last_snapshot_;
  bool paused_ = false;
};

// Ranks other than 0, on a kMutate / kSnapshot header from the coordinator.
void follow_mutation_step(const StepHeader& h, const UpdateContext& ctx);
void follow_snapshot_step(const StepHeader& h, const UpdateContext& ctx);

}  // namespace argent
