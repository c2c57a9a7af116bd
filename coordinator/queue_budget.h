// The byte budget of the gateway's queues (serve.max_queue_bytes). A count bound alone lets a
// client fill the queue with requests that are each within the per-request caps but large (a
// search with 100,000 exclude_ids holds 800 KB once decoded): 4096 of them are 3 GiB. Each
// admitted request carries a QueueCharge for the bytes it holds, which goes back to the budget
// when the request object is destroyed — after it is answered, wherever that happens (the step
// loop, the merge thread, the updater, a failure reply) — so the budget bounds requests being
// searched or merged as well as queued ones.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace argent {

// Why a queue did or did not take a request.
enum class PushResult {
  kQueued,
  kClosed,     // the queue's closed_reason(): answered UNAVAILABLE
  kFull,       // serve.max_queue requests queued: OVERLOADED
  kOverBytes,  // serve.max_queue_bytes held: OVERLOADED
};

// Bytes held by admitted requests against a limit. Thread-safe: charges are taken on the
// gateway thread and given back on whichever thread destroys the request. Header-only, like
// PendingSearch, which the fuzzers and validation tests use without the coordinator library.
//
// The last eighth of the budget is kept for small requests (at most 1/1024 of it, 32 KiB of the
// default 32 MiB): a client that fills the budget with large requests would otherwise turn away
// every other client's ordinary searches until its own were answered.
class QueueBudget {
 public:
  explicit QueueBudget(int64_t limit) : limit_(limit) {}

  // Takes `bytes` when they fit under the limit (under large_limit() for a large request), or
  // when nothing is held at all: a request larger than the whole budget is then served alone
  // instead of being refused forever.
  bool try_take(int64_t bytes) {
    const int64_t ceiling = bytes <= small_request() ? limit_ : large_limit();
    int64_t held = held_.load();
    for (;;) {
      if (held != 0 && held + bytes > ceiling) return false;
      if (held_.compare_exchange_weak(held, held + bytes)) return true;
    }
  }
  void give_back(int64_t bytes) { held_.fetch_sub(bytes); }
  int64_t held() const { return held_.load(); }
  int64_t limit() const { return limit_; }
  // Requests of at most this many bytes may use the whole limit; larger ones large_limit().
  int64_t small_request() const { return limit_ / 1024; }
  int64_t large_limit() const { return limit_ - limit_ / 8; }

 private:
  const int64_t limit_;
  std::atomic<int64_t> held_{0};
};

// One request's share of a QueueBudget; move-only, given back when destroyed. The budget is
// shared so that a request outliving its queue (in a reply on its way out) never dangles.
class QueueCharge {
 public:
  QueueCharge() = default;
  QueueCharge(std::shared_ptr<QueueBudget> budget, int64_t bytes)
      : budget_(std::move(budget)), bytes_(bytes) {}
  QueueCharge(QueueCharge&& other) noexcept { *this = std::move(other); }
  QueueCharge& operator=(QueueCharge&& other) noexcept {
    if (this != &other) {
      release();
      budget_ = std::move(other.budget_);
      bytes_ = other.bytes_;
      other.bytes_ = 0;
    }
    return *this;
  }
  QueueCharge(const QueueCharge&) = delete;
  QueueCharge& operator=(const QueueCharge&) = delete;
  ~QueueCharge() { release(); }

  int64_t bytes() const { return bytes_; }

 private:
  void release() {
    if (budget_) budget_->give_back(bytes_);
    budget_.reset();
    bytes_ = 0;
  }

  std::shared_ptr<QueueBudget> budget_;
  int64_t bytes_ = 0;
};

// The admission both queues apply under their lock: closed first, then the count, then the
// bytes. On kQueued, `charge` holds `bytes` of `budget` until the request is destroyed.
inline PushResult admit(bool closed, int64_t depth, int64_t capacity,
                        const std::shared_ptr<QueueBudget>& budget, int64_t bytes,
                        QueueCharge* charge) {
  if (closed) return PushResult::kClosed;
  if (depth >= capacity) return PushResult::kFull;
  if (!budget->try_take(bytes)) return PushResult::kOverBytes;
  *charge = QueueCharge(budget, bytes);
  return PushResult::kQueued;
}

// What a request's routing envelope holds (capacities: what the allocator holds).
inline int64_t envelope_bytes(const std::vector<std::string>& envelope) {
  int64_t bytes = 0;
  for (const std::string& frame : envelope) bytes += int64_t(sizeof frame + frame.capacity());
  return bytes;
}

}  // namespace argent
