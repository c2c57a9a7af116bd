// Rank 0's side of rebalancing (docs/architecture.md, "Rebalancing"): takes `argent admin
// rebalance` requests, plans them (coordinator/rebalance_plan.h) and carries out the moves one
// at a time as steps of the step loop (coordinator/partition_mover.h), at most one step per
// loop turn, so search and write steps keep running between the chunks of a move. A move is
// committed only after its new map is in the write-ahead log, so a restarted job serves the map
// of the last committed move (the snapshot holds the map as of the snapshot; the log's map
// records after it win).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "coordinator/metrics.h"
#include "coordinator/partition_mover.h"
#include "coordinator/rebalance_status.h"
#include "coordinator/replier.h"
#include "coordinator/server_stats.h"
#include "coordinator/updater.h"

namespace argent {

class Rebalancer {
 public:
  // `ctx.mover` must be set; `ctx.map` is the map every step routes by, replaced at each commit.
  Rebalancer(UpdateContext ctx, Updater& updater, ServerStats& server_stats,
             RebalanceStatus& status, uint64_t& step_id);

  // Answers queued requests (a second rebalance while one runs is refused) and runs the next
  // step of the rebalance under way, if any.
  void run(RebalanceQueue& queue, Replier& replier);
  bool active() const { return !moves_.empty(); }

 private:
  enum class Phase { kBegin, kCopy, kCommit };
  void start(const PendingRebalance& request, Replier& replier);
  void advance();
  // A step of the job (numbered, on the watchdog as every step: coordinator/watchdog.h) ...
  void begin_step(StepOp op, int64_t payload_bytes, int64_t n);
  void end_step();
  // ... and a whole move step: header (n = the partition), payload, run_move_step, end.
  int64_t move_step(StepOp op, const MoveStep& move, std::vector<int64_t>* gathered_items);
  // Ends the rebalance: `error` empty for success.
  void finish(const std::string& error);
  void publish();

  UpdateContext ctx_;
  Updater& updater_;
  ServerStats& server_stats_;
  RebalanceStatus& status_;
  uint64_t& step_id_;
  std::vector<PartitionMove> moves_;  // still to do; the first is under way
  Phase phase_ = Phase::kBegin;
  MoveStep move_;
  RebalanceProgress progress_;
  std::unique_ptr<RebalanceMeter> meter_;  // the argent_rebalance_* gauges and a progress bar
  SteadyClock::time_point started_;
};

// Every rank, once the step's MoveStep is known: the mover's work, and after a commit the
// index-wide lists and each rank's items per partition (returned, [ranks * partitions]; empty
// for other steps). The same collectives in the same order on every rank.
int64_t run_move_step(StepOp op, const MoveStep& move, const UpdateContext& ctx,
                      std::vector<int64_t>* gathered_items);

// Ranks other than 0, on a move step header (n = the partition the payload moves; checked).
void follow_move_step(const StepHeader& h, const UpdateContext& ctx);

}  // namespace argent
