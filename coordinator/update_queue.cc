#include "coordinator/update_queue.h"

#include <algorithm>
#include <cmath>

#include "coordinator/metrics.h"

namespace argent {
namespace {

template <typename T>
int64_t vector_bytes(const std::vector<T>& v) {
  return int64_t(v.capacity() * sizeof(T));
}

}  // namespace

int64_t request_bytes(const PendingMutation& m) {
  int64_t bytes = int64_t(sizeof(PendingMutation)) + envelope_bytes(m.envelope);
  const ItemSet& items = m.batch.items;
  bytes += vector_bytes(items.ids) + vector_bytes(items.embeddings) +
           vector_bytes(items.feature_offsets) + vector_bytes(items.feature_ids) +
           vector_bytes(items.feature_values) + vector_bytes(items.codes) +
           vector_bytes(items.scales) + vector_bytes(m.batch.ids);
  return bytes;
}

PushResult MutationQueue::push(PendingMutation& m, int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const PushResult admitted =
        admit(closed_, int64_t(queue_.size()), capacity_, budget_, bytes, &m.charge);
    if (admitted != PushResult::kQueued) return admitted;
    queue_.push_back(std::move(m));
  }
  if (wake_) wake_();
  return PushResult::kQueued;
}

std::vector<PendingMutation> MutationQueue::pop(int64_t max_items) {
  std::vector<PendingMutation> out;
  std::lock_guard<std::mutex> lock(mu_);
  int64_t items = 0;
  while (!queue_.empty()) {
    PendingMutation& next = queue_.front();
    const bool snapshot = next.type == PendingMutation::Type::kSnapshot;
    if (!out.empty() && (snapshot || items + next.batch.size() > max_items)) break;
    items += next.batch.size();
    out.push_back(std::move(next));
    queue_.pop_front();
    if (snapshot) break;
  }
  return out;
}

bool MutationQueue::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.empty();
}

int64_t MutationQueue::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int64_t(queue_.size());
}

std::string MutationQueue::closed_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_reason_;
}

std::vector<PendingMutation> MutationQueue::close(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!closed_) closed_reason_ = reason;
  closed_ = true;
  std::vector<PendingMutation> left;
  for (auto& m : queue_) left.push_back(std::move(m));
  queue_.clear();
  return left;
}

UpdateStats::UpdateStats() : interval_start_(Clock::now()) {}

void UpdateStats::record_step(int64_t upserts, int64_t deletes,
                              const std::vector<double>& visible_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  closed_.upserts += upserts;
  closed_.deletes += deletes;
  interval_upserts_ += upserts;
  interval_deletes_ += deletes;
  if (interval_visible_.size() < 1000000)
    interval_visible_.insert(interval_visible_.end(), visible_ms.begin(), visible_ms.end());
  metrics().observe_writes(upserts, deletes);
  for (double ms : visible_ms) metrics().observe_write_visible(ms / 1000.0);
}

void UpdateStats::set_shards(int64_t tombstones, int64_t rows_in_use) {
  std::lock_guard<std::mutex> lock(mu_);
  closed_.tombstone_ratio = rows_in_use > 0 ? double(tombstones) / double(rows_in_use) : 0.0;
}

void UpdateStats::set_wal(uint64_t last_sequence, int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  closed_.wal_sequence = last_sequence;
  closed_.wal_bytes = bytes;
  metrics().set_wal(last_sequence, bytes);
}

void UpdateStats::set_snapshot(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  closed_.snapshot_sequence = sequence;
  metrics().set_snapshot_sequence(sequence);
}

bool UpdateStats::roll(std::chrono::duration<double> interval) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  const std::chrono::duration<double> elapsed = now - interval_start_;
  if (elapsed < interval) return false;
  const double seconds = elapsed.count();
  closed_.upserts_per_s = seconds > 0 ? double(interval_upserts_) / seconds : 0;
  closed_.deletes_per_s = seconds > 0 ? double(interval_deletes_) / seconds : 0;
  // An interval without writes keeps the visibility of the last one with writes (as
  // ServerStats keeps its latencies).
  if (!interval_visible_.empty()) {
    std::sort(interval_visible_.begin(), interval_visible_.end());
    auto pct = [&](double p) {
      const size_t rank = size_t(std::ceil(p * double(interval_visible_.size())));
      return interval_visible_[std::min(interval_visible_.size() - 1, rank == 0 ? 0 : rank - 1)];
    };
    closed_.visible_p50_ms = pct(0.50);
    closed_.visible_p99_ms = pct(0.99);
    interval_visible_.clear();
  }
  interval_upserts_ = interval_deletes_ = 0;
  interval_start_ = now;
  return true;
}

UpdateStatsSnapshot UpdateStats::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

}  // namespace argent
