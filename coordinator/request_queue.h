// The bounded queue between the gateway thread and the step loop, and the dynamic batcher.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

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
  SteadyClock::time_point arrival;
  SteadyClock::time_point deadline;  // time_point::max(): none
};

class RequestQueue {
 public:
  explicit RequestQueue(int64_t capacity) : capacity_(capacity) {}

  // False (and `r` untouched) when the queue is full or closed.
  bool push(PendingSearch& r);

  // Dynamic batching: waits up to `idle_wait` for a first request, then collects requests that
  // can share its step (same nprobe / exact) until `max_batch` or until `max_wait` after the
  // first one arrived. Returns an empty batch on timeout or once closed and drained.
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

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingSearch> queue_;
  int64_t capacity_;
  bool closed_ = false;
  std::string closed_reason_;
  bool woken_ = false;  // set by wake(), consumed by pop_batch
};

}  // namespace argent
