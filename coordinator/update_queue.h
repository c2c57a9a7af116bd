// The queue between the gateway thread and the step loop for writes (upserts, deletes) and
// admin actions, and the counters of the update path. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/mutation_request.h"
#include "coordinator/request_queue.h"

namespace argent {

struct PendingMutation {
  enum class Type { kMutation, kSnapshot };
  Type type = Type::kMutation;
  std::vector<std::string> envelope;  // ZeroMQ routing frames of the reply
  uint64_t request_id = 0;
  MutationBatch batch;  // kMutation
  SteadyClock::time_point arrival;
  // Set by MutationQueue::push: this request's bytes in serve.max_queue_bytes until destroyed
  // (after it is logged, applied and acknowledged).
  QueueCharge charge;
};

// What `m` holds in memory once decoded (an upsert's features are 12 bytes a pair here, 2 to 4
// on the wire); what serve.max_queue_bytes counts for a write.
int64_t request_bytes(const PendingMutation& m);

class MutationQueue {
 public:
  // At most `capacity` requests queued and `max_bytes` of requests held (queue_budget.h).
  // `wake` is called after each push (the step loop's search queue wait ends early on it).
  MutationQueue(int64_t capacity, int64_t max_bytes, std::function<void()> wake)
      : capacity_(capacity),
        budget_(std::make_shared<QueueBudget>(max_bytes)),
        wake_(std::move(wake)) {}

  // kQueued takes `m` and charges `bytes` (request_bytes()) to it; otherwise `m` is untouched.
  PushResult push(PendingMutation& m, int64_t bytes);
  // The oldest requests, in arrival order, up to `max_items` items in all (the first one is
  // taken whatever its size) and stopping before a snapshot; a snapshot comes out alone.
  std::vector<PendingMutation> pop(int64_t max_items);
  bool empty() const;
  int64_t depth() const;
  // Bytes charged by requests pushed and not yet destroyed, and their limit.
  int64_t held_bytes() const { return budget_->held(); }
  int64_t max_bytes() const { return budget_->limit(); }
  std::vector<PendingMutation> close(const std::string& reason = "server is shutting down");
  // "" while open; after close() its reason.
  std::string closed_reason() const;

 private:
  mutable std::mutex mu_;
  std::deque<PendingMutation> queue_;  // GUARDED_BY(mu_)
  int64_t capacity_;
  std::shared_ptr<QueueBudget> budget_;
  bool closed_ = false;  // GUARDED_BY(mu_)
  std::string closed_reason_;  // GUARDED_BY(mu_)
  std::function<void()> wake_;
};

struct UpdateStatsSnapshot {
  int64_t upserts = 0, deletes = 0;
  double upserts_per_s = 0, deletes_per_s = 0;
  double visible_p50_ms = 0, visible_p99_ms = 0;
  double tombstone_ratio = 0;
  uint64_t wal_sequence = 0;
  int64_t wal_bytes = 0;
  uint64_t snapshot_sequence = 0;
};

class UpdateStats {
 public:
  UpdateStats();
  // One applied step: items upserted, ids deleted, and each request's arrival -> visible time.
  void record_step(int64_t upserts, int64_t deletes, const std::vector<double>& visible_ms);
  void set_shards(int64_t tombstones, int64_t rows_in_use);
  void set_wal(uint64_t last_sequence, int64_t bytes);
  void set_snapshot(uint64_t sequence);
  // Closes the rate/percentile interval when `interval` has passed; returns whether it did.
  bool roll(std::chrono::duration<double> interval);
  UpdateStatsSnapshot snapshot() const;

 private:
  using Clock = std::chrono::steady_clock;
  mutable std::mutex mu_;
  UpdateStatsSnapshot closed_;       // GUARDED_BY(mu_)
  int64_t interval_upserts_ = 0, interval_deletes_ = 0;
  std::vector<double> interval_visible_;
  Clock::time_point interval_start_;
};

}  // namespace argent
