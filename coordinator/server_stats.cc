#include "coordinator/server_stats.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "coordinator/metrics.h"

namespace argent {
namespace {

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest value with at least p of the sample at or below it.
  const size_t rank = size_t(std::ceil(p * double(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

ServerStats::ServerStats() : interval_start_(Clock::now()) {}

void ServerStats::record_answer(double latency_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.requests;
  // Bounded: under extreme load keep a uniform-enough sample of the interval.
  if (interval_latencies_.size() < 1000000) interval_latencies_.push_back(latency_ms);
}

void ServerStats::record_batch(int64_t size) {
  if (size <= 0) return;
  metrics().observe_batch(size);
  int bucket = 0;
  while (bucket < 31 && (int64_t(1) << (bucket + 1)) <= size) ++bucket;
  std::lock_guard<std::mutex> lock(mu_);
  ++batch_hist_[size_t(bucket)];
}

void ServerStats::record_rank_step(int32_t rank, double ms) {
  metrics().observe_rank_step(rank, ms / 1000.0);
  if (rank < 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (interval_steps_.size() <= size_t(rank)) {
    interval_steps_.resize(size_t(rank) + 1, 0);
    interval_step_ms_.resize(size_t(rank) + 1, 0.0);
  }
  ++interval_steps_[size_t(rank)];
  interval_step_ms_[size_t(rank)] += ms;
}

void ServerStats::record_overloaded() {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.rejected_overloaded;
  metrics().rejection("overloaded").Increment();
}
void ServerStats::record_deadline_exceeded() {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.rejected_deadline;
  metrics().rejection("deadline").Increment();
}
void ServerStats::record_dropped_reply() {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.dropped_replies;
}

void ServerStats::record_dropped_request() {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.dropped_requests;
}

void ServerStats::record_unauthenticated() {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.rejected_unauthenticated;
}

void ServerStats::record_permission_denied() {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.rejected_permission;
}

void ServerStats::record_invalid() {
  std::lock_guard<std::mutex> lock(mu_);
  ++closed_.rejected_invalid;
  metrics().rejection("invalid").Increment();
}
void ServerStats::set_queue_depth(int64_t depth) {
  std::lock_guard<std::mutex> lock(mu_);
  closed_.queue_depth = depth;
  metrics().set_queue_depth("search", depth);
}
void ServerStats::set_shards(std::vector<int64_t> items_per_rank,
                             std::vector<std::vector<int32_t>> partitions_per_rank) {
  for (size_t r = 0; r < items_per_rank.size(); ++r)
    metrics().set_shard_items(int32_t(r), items_per_rank[r]);
  std::lock_guard<std::mutex> lock(mu_);
  closed_.items_per_rank = std::move(items_per_rank);
  closed_.partitions_per_rank = std::move(partitions_per_rank);
}

void ServerStats::set_tombstones(std::vector<int64_t> tombstones_per_rank) {
  std::lock_guard<std::mutex> lock(mu_);
  closed_.tombstones_per_rank = std::move(tombstones_per_rank);
  for (size_t r = 0; r < closed_.tombstones_per_rank.size(); ++r)
    metrics().set_shard(int32_t(r),
                        r < closed_.items_per_rank.size() ? closed_.items_per_rank[r] : 0,
                        closed_.tombstones_per_rank[r]);
}

bool ServerStats::roll(std::chrono::duration<double> interval) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  const std::chrono::duration<double> elapsed = now - interval_start_;
  if (elapsed < interval) return false;
  closed_.qps = elapsed.count() > 0 ? double(interval_latencies_.size()) / elapsed.count() : 0;
  // An idle interval keeps the latencies of the last one with answers: a client asking an idle
  // server how fast it answers wants those, not zeros.
  if (!interval_latencies_.empty()) {
    std::sort(interval_latencies_.begin(), interval_latencies_.end());
    closed_.p50_ms = percentile(interval_latencies_, 0.50);
    closed_.p90_ms = percentile(interval_latencies_, 0.90);
    closed_.p99_ms = percentile(interval_latencies_, 0.99);
    interval_latencies_.clear();
  }
  closed_.steps_per_rank = interval_steps_;
  // As the latencies: a rank without steps in the interval keeps its last mean step time.
  closed_.step_ms_per_rank.resize(interval_steps_.size(), 0.0);
  for (size_t r = 0; r < interval_steps_.size(); ++r)
    if (interval_steps_[r] > 0)
      closed_.step_ms_per_rank[r] = interval_step_ms_[r] / double(interval_steps_[r]);
  std::fill(interval_steps_.begin(), interval_steps_.end(), 0);
  std::fill(interval_step_ms_.begin(), interval_step_ms_.end(), 0.0);
  interval_start_ = now;
  return true;
}

StatsSnapshot ServerStats::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  StatsSnapshot s = closed_;
  int last = 0;
  for (int i = 0; i < 32; ++i)
    if (batch_hist_[size_t(i)]) last = i + 1;
  s.batch_size_histogram.assign(batch_hist_.begin(), batch_hist_.begin() + last);
  return s;
}

std::string ServerStats::summary() const {
  const StatsSnapshot s = snapshot();
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(2);
  out << "qps " << s.qps << " p50 " << s.p50_ms << " ms p90 " << s.p90_ms << " ms p99 " << s.p99_ms
      << " ms requests " << s.requests << " queue " << s.queue_depth << " batches {";
  bool first = true;
  for (size_t i = 0; i < s.batch_size_histogram.size(); ++i) {
    if (!s.batch_size_histogram[i]) continue;
    out << (first ? "" : ", ") << (int64_t(1) << i) << ": " << s.batch_size_histogram[i];
    first = false;
  }
  out << "} rejected overloaded " << s.rejected_overloaded << " deadline " << s.rejected_deadline
      << " invalid " << s.rejected_invalid << " dropped replies " << s.dropped_replies
      << " requests " << s.dropped_requests << " refused auth " << s.rejected_unauthenticated
      << " role " << s.rejected_permission << " items [";
  for (size_t r = 0; r < s.items_per_rank.size(); ++r)
    out << (r ? ", " : "") << s.items_per_rank[r];
  out << "]";
  return out.str();
}

}  // namespace argent
