// The coordinator's Prometheus metrics (docs/operations.md, "Metrics"): one process-wide
// registry that the serving code updates as it works, exposed over HTTP at /metrics by
// `serve(metrics.endpoint)`. Updating a metric costs an atomic add whether or not the endpoint is
// served, so code records unconditionally.
//
// Other components add their own metrics through `counter`, `gauge` and `rejection`:
//
//   metrics().rejection("dropped").Increment();                  // argent_rejected_total{reason}
//   metrics().counter("argent_curve_auth_failures_total", "...").Increment();
//   metrics().set_rebalance_progress(moved, total);               // the rebalance gauges
//
// Thread-safe: every method may be called from any thread. References returned stay valid for
// the life of the process.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "argent/v1/service.pb.h"

namespace argent {

class Progress;  // common/progress.h
class MetricsHttpServer;  // coordinator/metrics_http.h

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Starts the HTTP endpoint ("127.0.0.1:9464", "0.0.0.0:9464"; a port of 0 or an empty string
  // disables it) and returns the address it listens on ("" when disabled). Throws
  // Error(kUnavailable) naming the endpoint when it cannot bind.
  std::string serve(const std::string& endpoint);

  // One reply leaving the gateway: counts argent_requests_total{op, status} and, when `arrival`
  // is set (not the epoch), observes argent_request_latency_seconds{op, status}.
  void observe_response(const v1::Response& response,
                        std::chrono::steady_clock::time_point arrival);
  void observe_batch(int64_t size);
  void set_queue_depth(const std::string& queue, int64_t depth);
  // A rank's local search time of one step (its ShardBlock's search_ms).
  void observe_rank_step(int32_t rank, double seconds);
  // The coordinator's wait in the result all-gather of one search step.
  void observe_all_gather(double seconds);
  void set_shard(int32_t rank, int64_t items, int64_t tombstones);
  void set_shard_items(int32_t rank, int64_t items);
  // One applied mutation step: items upserted and ids deleted.
  void observe_writes(int64_t upserts, int64_t deletes);
  // One write request's arrival -> visible on every rank (its ack is sent at that moment).
  void observe_write_visible(double seconds);
  void set_wal(uint64_t last_sequence, int64_t bytes);
  void set_snapshot_sequence(uint64_t sequence);
  // Rebalance progress (issue 8's `argent admin rebalance`): partitions moved of `total`;
  // argent_rebalance_progress is moved / total (1 when total is 0: nothing to move).
  void set_rebalance_progress(int64_t moved, int64_t total);
  // argent_rejected_total{reason}: requests refused without being served ("overloaded",
  // "deadline", "invalid", ...). New reasons appear on first use.
  prometheus::Counter& rejection(const std::string& reason);

  // Registration points for metrics of other components. The same name and labels give back
  // the same metric; a name already registered as another type throws.
  prometheus::Counter& counter(const std::string& name, const std::string& help,
                               const std::map<std::string, std::string>& labels = {});
  prometheus::Gauge& gauge(const std::string& name, const std::string& help,
                           const std::map<std::string, std::string>& labels = {});
  prometheus::Histogram& histogram(const std::string& name, const std::string& help,
                                   const prometheus::Histogram::BucketBoundaries& buckets,
                                   const std::map<std::string, std::string>& labels = {});

  prometheus::Registry& registry() { return *registry_; }

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
  std::unique_ptr<MetricsHttpServer> server_;
};

// The process's metrics.
Metrics& metrics();

// Progress of one rebalance, for issue 8's mover: a bar on stderr when it is a terminal
// (common/progress.h) and the argent_rebalance_* gauges. Not thread-safe; one per rebalance.
//
//   RebalanceMeter progress(moves.size());
//   for (const Move& m : moves) { move(m); progress.moved(1); }
class RebalanceMeter {
 public:
  explicit RebalanceMeter(int64_t total_partitions);
  ~RebalanceMeter();  // marks the rebalance finished (progress 1)
  void moved(int64_t partitions);

 private:
  int64_t total_, moved_ = 0;
  std::unique_ptr<Progress> bar_;
};

}  // namespace argent
