// Counters and latency percentiles of a serving coordinator; thread-safe. QPS and step counts
// cover the last completed interval (serve.stats_interval_s), the percentiles and mean step times
// the last completed interval that had answers (steps), counters the whole run.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace argent {

struct StatsSnapshot {
  int64_t requests = 0;
  double qps = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0;
  std::vector<int64_t> batch_size_histogram;  // [i]: batches of size in [2^i, 2^(i+1))
  int64_t queue_depth = 0;
  int64_t rejected_overloaded = 0, rejected_deadline = 0, rejected_invalid = 0;
  // The gateway's defences (docs/reliability.md, "Gateway").
  int64_t dropped_replies = 0;            // unroutable (client gone) or over gateway.send_hwm
  int64_t dropped_requests = 0;           // too many frames or bytes, or no routing envelope
  int64_t rejected_unauthenticated = 0;   // handshakes refused (unknown key, wrong mechanism)
  int64_t rejected_permission = 0;        // requests beyond the client's role
  std::vector<int64_t> items_per_rank;
  std::vector<int64_t> tombstones_per_rank;  // deleted rows awaiting compaction (empty: none yet)
  std::vector<std::vector<int32_t>> partitions_per_rank;
  std::vector<double> step_ms_per_rank;    // mean local search time, last interval with steps
  std::vector<int64_t> steps_per_rank;     // search steps, last interval
};

class ServerStats {
 public:
  ServerStats();

  void record_answer(double latency_ms);
  void record_batch(int64_t size);
  // A rank's local search time of one step (from its ShardBlock).
  void record_rank_step(int32_t rank, double ms);
  void record_overloaded();
  void record_deadline_exceeded();
  void record_invalid();
  void record_dropped_reply();
  void record_dropped_request();
  void record_unauthenticated();
  void record_permission_denied();
  void set_queue_depth(int64_t depth);
  void set_shards(std::vector<int64_t> items_per_rank,
                  std::vector<std::vector<int32_t>> partitions_per_rank);
  void set_tombstones(std::vector<int64_t> tombstones_per_rank);

  // Closes the current interval (QPS, and percentiles if it had answers) if `interval` has
  // passed since the last one; returns true when it did.
  bool roll(std::chrono::duration<double> interval);
  StatsSnapshot snapshot() const;
  // One log line: "qps 1234.5 p50 1.20 ms p90 ... batches {1:3, 64:120} queue 0 items [..]".
  std::string summary() const;

 private:
  using Clock = std::chrono::steady_clock;
  mutable std::mutex mu_;
  StatsSnapshot closed_;  // percentiles/QPS of the last interval, plus live counters below
  std::vector<double> interval_latencies_;
  Clock::time_point interval_start_;
  std::array<int64_t, 32> batch_hist_{};
  std::vector<double> interval_step_ms_;   // per rank: sum over the interval
  std::vector<int64_t> interval_steps_;
};

}  // namespace argent
