// What the gateway thread and the step loop share about rebalancing: queued `argent admin
// rebalance` requests (gateway -> step loop) and the partition map with the rebalance's progress
// (step loop -> Stats). Both thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "argent/v1/service.pb.h"
#include "coordinator/rebalance_plan.h"

namespace argent {

struct PendingRebalance {
  std::vector<std::string> envelope;  // ZeroMQ routing frames of the reply
  uint64_t request_id = 0;
  RebalanceRequest request;
};

class RebalanceQueue {
 public:
  // False (the request not taken) once the queue is closed.
  bool push(PendingRebalance r);
  std::optional<PendingRebalance> pop();
  // Closes the queue for good and returns what it held, for the caller to answer; `reason`
  // (shutdown, or a cluster failure) is what later pushes are refused with (closed_reason()).
  std::vector<PendingRebalance> close(const std::string& reason = "server is shutting down");
  std::string closed_reason() const;

 private:
  mutable std::mutex mu_;
  std::deque<PendingRebalance> queue_;  // GUARDED_BY(mu_)
  std::string closed_;                  // GUARDED_BY(mu_): "" while open
};

struct RebalanceProgress {
  std::string state = "idle";  // idle | running | done | failed
  std::string plan;            // even | drain | activate | explicit
  int32_t rank = -1;           // drain / activate
  int32_t moves_total = 0, moves_done = 0;
  int32_t partition = -1, from = -1, to = -1;  // the move under way (-1: none)
  int64_t bytes_copied = 0, bytes_total = 0;   // of the move under way
  int64_t bytes_moved = 0;                     // all moves of this rebalance so far
  int64_t forwarded = 0;                       // mutations replayed on destinations so far
  double seconds = 0;                          // since the rebalance started (to its end)
  uint64_t start_epoch = 0;
  std::string error;
};

struct RebalanceSnapshot {
  uint64_t epoch = 0;
  std::vector<int> owners;                   // [partitions]: the rank serving each
  std::vector<int64_t> items_per_partition;  // [partitions], as of the last stats step
  RebalanceProgress progress;
};

class RebalanceStatus {
 public:
  void set_map(uint64_t epoch, std::vector<int> owners);
  void set_items(std::vector<int64_t> items_per_partition);
  void set_progress(const RebalanceProgress& progress);
  RebalanceSnapshot snapshot() const;

 private:
  mutable std::mutex mu_;
  RebalanceSnapshot s_;  // GUARDED_BY(mu_)
};

// The Stats fields of rebalancing: the map's epoch and owners, items per partition, progress.
void fill_rebalance_stats(const RebalanceSnapshot& s, v1::StatsResponse* out);

// An AdminRequest{REBALANCE} as a RebalanceRequest; returns "" or the INVALID_ARGUMENT message.
std::string parse_rebalance_request(const v1::AdminRequest& admin, RebalanceRequest* out);

}  // namespace argent
