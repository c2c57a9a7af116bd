#include "coordinator/request_queue.h"

namespace argent {
namespace {

bool same_step(const PendingSearch& a, const PendingSearch& b) {
  return a.exact == b.exact && (a.exact || a.nprobe == b.nprobe);
}

}  // namespace

bool RequestQueue::push(PendingSearch& r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || int64_t(queue_.size()) >= capacity_) return false;
    queue_.push_back(std::move(r));
  }
  cv_.notify_one();
  return true;
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
  auto take_matching = [&] {
    for (auto it = queue_.begin(); it != queue_.end() && int(batch.size()) < max_batch;) {
      if (same_step(*it, batch.front())) {
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
