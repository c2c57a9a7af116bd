// The bounded queue between the gateway thread and the step loop, and the dynamic batcher.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/queue_budget.h"

namespace argent {

using SteadyClock = std::chrono::steady_clock;

// A validated search request waiting for a batch.
struct PendingSearch {
  std::vector<std::string> envelope;  // ZeroMQ routing frames to send the reply back with
  uint64_t request_id = 0;
  std::vector<float> embedding;
  int64_t k = 0;
  int32_t nprobe = 0;  // 0 with exact
  bool exact = false;
  std::string filter;
  std::vector<int64_t> exclude_ids;
  std::vector<float> task_weights;  // the value model's weights; empty: the server's defaults
  int64_t rerank_depth = 0;         // candidates reranked (with a reranker)
  // Candidates its step asks each rank for: k (with a reranker max(k, rerank_depth)) plus its
  // exclude_ids, which the merge skips.
  int64_t candidates = 0;
  SteadyClock::time_point arrival;
  SteadyClock::time_point deadline;  // time_point::max(): none
  // Set by RequestQueue::push: this request's bytes in serve.max_queue_bytes until destroyed.
  QueueCharge charge;
};

// What `r` holds in memory: the decoded request, not its wire size (exclude_ids are 8 bytes
// each here whatever their varint length).
int64_t request_bytes(const PendingSearch& r);
// The candidate lists a step gathers on rank 0 for one query of `candidates` from `ranks` ranks
// (shard_block_bytes, `code_dims` with a reranker).
int64_t candidate_bytes(int64_t candidates, int ranks, int32_t code_dims);
// What serve.max_queue_bytes counts for `r`: request_bytes(r) and its candidate_bytes. The
// lists dominate for a search with many exclude_ids: 100,000 of them are 800 KB in the request
// and 1.2 MB of candidates from each rank.
int64_t search_bytes(const PendingSearch& r, int ranks, int32_t code_dims);

class RequestQueue {
 public:
  // At most `capacity` requests queued, and `max_bytes` of requests held (queued, searched or
  // merged: see queue_budget.h).
  RequestQueue(int64_t capacity, int64_t max_bytes)
      : capacity_(capacity), budget_(std::make_shared<QueueBudget>(max_bytes)) {}

  // kQueued takes `r` and charges `bytes` (search_bytes()) to it; otherwise `r` is untouched.
  PushResult push(PendingSearch& r, int64_t bytes);

  // Dynamic batching: waits up to `idle_wait` for a first request, then collects requests that
  // can share its step (same nprobe / exact, and candidates within a factor of about 2 of every
  // other member's: see joins()) until `max_batch` or until `max_wait` after the first one
  // arrived.
  // Returns an empty batch on timeout or once closed and drained.
  std::vector<PendingSearch> pop_batch(int max_batch, std::chrono::microseconds max_wait,
                                       std::chrono::milliseconds idle_wait);

  // Ends a pop_batch that is waiting idle for a first request (it returns an empty batch), so
  // the step loop turns to queued writes at once instead of after its idle wait.
  void wake();

  // Stops accepting; returns what was still queued (to be answered UNAVAILABLE). `reason`
  // says why (closed_reason()).
  std::vector<PendingSearch> close(const std::string& reason = "server is shutting down");
  // "" while open; after close() its reason (the gateway answers new requests UNAVAILABLE).
  std::string closed_reason() const;
  int64_t depth() const;
  // Bytes charged by requests pushed and not yet destroyed, and their limit.
  int64_t held_bytes() const { return budget_->held(); }
  int64_t max_bytes() const { return budget_->limit(); }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingSearch> queue_;
  int64_t capacity_;
  std::shared_ptr<QueueBudget> budget_;
  bool closed_ = false;
  std::string closed_reason_;
  bool woken_ = false;  // set by wake(), consumed by pop_batch
};

}  // namespace argent
