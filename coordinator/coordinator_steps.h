// Rank 0's side of the steps it drives from the step loop (coordinator/server.cc): starting a
// step (header, sequence number, watchdog) and running one search step end to end, from a
// batch of queued requests to the merge thread.
#pragma once

#include <cstdint>
#include <vector>

#include "collectives/mpi_communicator.h"
#include "common/config.h"
#include "coordinator/inflight_board.h"
#include "coordinator/merger.h"
#include "coordinator/request_queue.h"
#include "coordinator/server_stats.h"
#include "coordinator/shard_worker.h"
#include "coordinator/step_protocol.h"
#include "coordinator/watchdog.h"
#include "shard/prober.h"

namespace argent {

// Starts step `op` on the watchdog (null: an unwatched loop, as in unit tests) and on every rank
// (its header over `control`), numbered ++step_id. Every step of rank 0's loop starts here (search,
// stats, shutdown, mutation, snapshot and move steps). The caller ends it (watchdog->end())
// after the step's last collective.
StepHeader start_step(MpiCommunicator& control, Watchdog* watchdog, uint64_t& step_id, StepOp op,
                      int64_t payload, uint64_t batch = 0, int64_t n = 0, int64_t k = 0);

// What a search step uses; references into the coordinator's state, all outliving the call.
struct SearchStepContext {
  const Config& config;
  MpiCommunicator& control;
  Communicator& data;
  const IndexMeta& meta;
  ShardWorker& worker;
  const GlobalLists& lists;
  const Prober& prober;
  const RerankSetup* rerank;  // null without a reranker
  Watchdog& watchdog;
  InFlightBoard& board;
  ServerStats& stats;
  Merger& merger;
  Replier& replier;  // the step loop's
  uint64_t& step_id;
  uint64_t& batch_id;
};

// Answers the requests of `batch` whose deadline passed, searches the others in one step
// (tracked on the board until the merger takes them), checks every rank's block against the
// step's header and hands the gathered blocks to the merger. A batch that cannot be prepared
// is answered INTERNAL; a failed collective throws; a rank whose block disagrees with the
// header fails the cluster (watchdog.fail, naming the rank and both values).
void run_search_step(const SearchStepContext& ctx, std::vector<PendingSearch> batch);

}  // namespace argent
