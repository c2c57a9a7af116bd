#include "coordinator/request_queue.h"

#include <algorithm>

#include "coordinator/step_protocol.h"

namespace argent {
namespace {

// A step fetches the batch's largest candidate count for every query in it, so a request with
// 100,000 exclude_ids would make each small request batched with it cost 1.2 MB per rank (and
// its step's time): requests share a step only when all their candidate counts are within a
// factor of 2, give or take kCandidateSlack, which keeps ordinary mixes of k together. (Checked
// against the whole batch's range, not its first request: each request's budget charge counts
// its own candidates, which must stay within ~2x of what the step gathers for it.)
constexpr int64_t kCandidateSlack = 1024;

// Whether `r` may join a batch opened by `first` whose candidate counts span [lo, hi].
bool joins(const PendingSearch& r, const PendingSearch& first, int64_t lo, int64_t hi) {
  return r.exact == first.exact && (r.exact || r.nprobe == first.nprobe) &&
         std::max(hi, r.candidates) <= 2 * std::min(lo, r.candidates) + kCandidateSlack;
}

}  // namespace

// Capacities, not sizes: what the allocator holds. A short string's capacity (15) lives inside
// the object and is counted twice; that slack is a few bytes a request.
int64_t request_bytes(const PendingSearch& r) {
  int64_t bytes =
      int64_t(sizeof(PendingSearch) + r.filter.capacity()) + envelope_bytes(r.envelope);
  bytes += int64_t(r.embedding.capacity() * sizeof(float));
  bytes += int64_t(r.exclude_ids.capacity() * sizeof(int64_t));
  bytes += int64_t(r.task_weights.capacity() * sizeof(float));
  return bytes;
}

int64_t candidate_bytes(int64_t candidates, int ranks, int32_t code_dims) {
  return int64_t(ranks) * int64_t(shard_block_bytes(1, candidates, code_dims));
}

int64_t search_bytes(const PendingSearch& r, int ranks, int32_t code_dims) {
  return request_bytes(r) + candidate_bytes(r.candidates, ranks, code_dims);
}

PushResult RequestQueue::push(PendingSearch& r, int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const PushResult admitted =
        admit(closed_, int64_t(queue_.size()), capacity_, budget_, bytes, &r.charge);
    if (admitted != PushResult::kQueued) return admitted;
    queue_.push_back(std::move(r));
  }
  cv_.notify_one();
  return PushResult::kQueued;
}

std::vector<PendingSearch> RequestQueue::pop_batch(int max_batch,
                                                   std::chrono::microseconds max_wait,
                                                   std::chrono::milliseconds idle_wait) {
  std::vector<PendingSearch> batch;
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, idle_wait, [&] { return !queue_.empty() || closed_ || woken_; })) return batch;
  woken_ = false;
  if (queue_.empty()) return batch;
  const auto close_at = queue_.front().arrival + max_wait;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  // Takes every queued request that can join, oldest first; others keep their place.
  int64_t lo = batch.front().candidates, hi = lo;
  auto take_matching = [&] {
    for (auto it = queue_.begin(); it != queue_.end() && int(batch.size()) < max_batch;) {
      if (joins(*it, batch.front(), lo, hi)) {
        lo = std::min(lo, it->candidates);
        hi = std::max(hi, it->candidates);
        batch.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  };
  for (;;) {
    take_matching();
    if (int(batch.size()) >= max_batch || closed_) break;
    if (cv_.wait_until(lock, close_at) == std::cv_status::timeout) {
      take_matching();  // requests that arrived just before the batch closed
      break;
    }
  }
  return batch;
}

void RequestQueue::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

std::vector<PendingSearch> RequestQueue::close(const std::string& reason) {
  std::vector<PendingSearch> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) closed_reason_ = reason;
    closed_ = true;
    for (auto& r : queue_) left.push_back(std::move(r));
    queue_.clear();
  }
  cv_.notify_all();
  return left;
}

std::string RequestQueue::closed_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_reason_;
}

int64_t RequestQueue::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int64_t(queue_.size());
}

}  // namespace argent
