#include "coordinator/metrics.h"

#include <algorithm>
#include <cctype>
#include <mutex>

#include "common/error.h"
#include "common/log.h"
#include "common/progress.h"
#include "coordinator/metrics_http.h"

namespace argent {
namespace {

using Labels = std::map<std::string, std::string>;

// Request latency: 100 us to 10 s, about three buckets a decade.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
// Batch sizes are bounded by serve.max_batch (at most 4096): powers of two.
const prometheus::Histogram::BucketBoundaries kBatchBuckets = {1,   2,   4,    8,    16,  32,
                                                               64,  128, 256,  512,  1024, 2048,
                                                               4096};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The operation and status of a reply, as label values.
std::pair<const char*, v1::StatusCode> op_and_status(const v1::Response& r) {
  switch (r.body_case()) {
    case v1::Response::kSearch: return {"search", r.search().status().code()};
    case v1::Response::kMutation: return {"mutation", r.mutation().status().code()};
    case v1::Response::kStats: return {"stats", r.stats().status().code()};
    case v1::Response::kHealth: return {"health", r.health().status().code()};
    case v1::Response::kAdmin: return {"admin", r.admin().status().code()};
    case v1::Response::kError: return {"malformed", r.error().code()};
    default: return {"unknown", v1::INTERNAL};
  }
}

}  // namespace

struct Metrics::Families {
  std::mutex mu;  // guards the maps of registered families (prometheus guards the metrics)
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& latency;
  prometheus::Histogram& batch;
  prometheus::Family<prometheus::Gauge>& queue_depth;
  prometheus::Family<prometheus::Histogram>& rank_step;
  prometheus::Histogram& all_gather;
  prometheus::Family<prometheus::Gauge>& shard_items;
  prometheus::Family<prometheus::Gauge>& shard_tombstones;
  prometheus::Counter& upserts;
  prometheus::Counter& deletes;
  prometheus::Histogram& visible;
  prometheus::Gauge& wal_sequence;
  prometheus::Gauge& wal_bytes;
  prometheus::Gauge& snapshot_sequence;
  prometheus::Gauge& rebalance_progress;
  prometheus::Gauge& rebalance_moved;
  prometheus::Gauge& rebalance_total;
  prometheus::Family<prometheus::Counter>& rejected;
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauges;
  std::map<std::string, prometheus::Family<prometheus::Histogram>*> histograms;

  explicit Families(prometheus::Registry& r)
      : requests(prometheus::BuildCounter()
                     .Name("argent_requests_total")
                     .Help("Replies sent by the gateway, by operation and status")
                     .Register(r)),
        latency(prometheus::BuildHistogram()
                    .Name("argent_request_latency_seconds")
                    .Help("Arrival at the gateway to reply, by operation and status")
                    .Register(r)),
        batch(prometheus::BuildHistogram()
                  .Name("argent_batch_size")
                  .Help("Search requests per search step (dynamic batching)")
                  .Register(r)
                  .Add({}, kBatchBuckets)),
        queue_depth(prometheus::BuildGauge()
                        .Name("argent_queue_depth")
                        .Help("Requests waiting, by queue (search, write)")
                        .Register(r)),
        rank_step(prometheus::BuildHistogram()
                      .Name("argent_rank_step_seconds")
                      .Help("Each rank's local search time of a search step")
                      .Register(r)),
        all_gather(prometheus::BuildHistogram()
                       .Name("argent_all_gather_seconds")
                       .Help("The coordinator's wait in a search step's result all-gather")
                       .Register(r)
                       .Add({}, kLatencyBuckets)),
        shard_items(prometheus::BuildGauge()
                        .Name("argent_shard_items")
                        .Help("Live items each rank holds")
                        .Register(r)),
        shard_tombstones(prometheus::BuildGauge()
                             .Name("argent_shard_tombstones")
                             .Help("Deleted rows each rank holds until compaction")
                             .Register(r)),
        upserts(prometheus::BuildCounter()
                    .Name("argent_upserted_items_total")
                    .Help("Items upserted and acknowledged")
                    .Register(r)
                    .Add({})),
        deletes(prometheus::BuildCounter()
                    .Name("argent_deleted_items_total")
                    .Help("Ids deleted and acknowledged")
                    .Register(r)
                    .Add({})),
        visible(prometheus::BuildHistogram()
                    .Name("argent_write_visible_seconds")
                    .Help("Write arrival to visible on every rank; the ack is sent at that "
                          "moment, so ack -> visible is 0")
                    .Register(r)
                    .Add({}, kLatencyBuckets)),
        wal_sequence(prometheus::BuildGauge()
                         .Name("argent_wal_sequence")
                         .Help("Last sequence number written to the write-ahead log")
                         .Register(r)
                         .Add({})),
        wal_bytes(prometheus::BuildGauge()
                      .Name("argent_wal_bytes")
                      .Help("Size of the write-ahead log")
                      .Register(r)
                      .Add({})),
        snapshot_sequence(prometheus::BuildGauge()
                              .Name("argent_snapshot_sequence")
                              .Help("Log sequence the latest snapshot covers (0: the build)")
                              .Register(r)
                              .Add({})),
        rebalance_progress(prometheus::BuildGauge()
                               .Name("argent_rebalance_progress")
                               .Help("Fraction of the running rebalance's partitions moved "
                                     "(1: none running)")
                               .Register(r)
                               .Add({})),
        rebalance_moved(prometheus::BuildGauge()
                            .Name("argent_rebalance_partitions_moved")
                            .Help("Partitions the running rebalance has moved")
                            .Register(r)
                            .Add({})),
        rebalance_total(prometheus::BuildGauge()
                            .Name("argent_rebalance_partitions_total")
                            .Help("Partitions the running rebalance moves in all")
                            .Register(r)
                            .Add({})),
        rejected(prometheus::BuildCounter()
                     .Name("argent_rejected_total")
                     .Help("Requests refused without being served, by reason")
                     .Register(r)) {
    rebalance_progress.Set(1.0);
    // The three reasons the server has today are present (at 0) from the start.
    for (const char* reason : {"overloaded", "deadline", "invalid"}) rejected.Add({{"reason", reason}});
  }
};

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<Families>(*registry_)) {}

Metrics::~Metrics() = default;

std::string Metrics::serve(const std::string& endpoint) {
  const size_t colon = endpoint.rfind(':');
  if (endpoint.empty() || (colon != std::string::npos && endpoint.substr(colon + 1) == "0"))
    return "";
  ARGENT_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < endpoint.size(),
               "metrics.endpoint '", endpoint, "' is not HOST:PORT (e.g. 127.0.0.1:9464)");
  ARGENT_CHECK(server_ == nullptr, "metrics: the endpoint is already served");
  const std::string host = endpoint.substr(0, colon);
  server_ = std::make_unique<MetricsHttpServer>(host, endpoint.substr(colon + 1), registry_);
  const std::string bound = host + ":" + std::to_string(server_->port());
  ARGENT_LOG(kInfo, "metrics: http://", bound, "/metrics");
  return bound;
}

void Metrics::observe_response(const v1::Response& response,
                               std::chrono::steady_clock::time_point arrival) {
  const auto [op, code] = op_and_status(response);
  const Labels labels = {{"op", op}, {"status", lower(v1::StatusCode_Name(code))}};
  families_->requests.Add(labels).Increment();
  if (arrival != std::chrono::steady_clock::time_point{}) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - arrival).count();
    families_->latency.Add(labels, kLatencyBuckets).Observe(std::max(0.0, seconds));
  }
}

void Metrics::observe_batch(int64_t size) { families_->batch.Observe(double(size)); }

void Metrics::set_queue_depth(const std::string& queue, int64_t depth) {
  families_->queue_depth.Add({{"queue", queue}}).Set(double(depth));
}

void Metrics::observe_rank_step(int32_t rank, double seconds) {
  families_->rank_step.Add({{"rank", std::to_string(rank)}}, kLatencyBuckets).Observe(seconds);
}

void Metrics::observe_all_gather(double seconds) { families_->all_gather.Observe(seconds); }

void Metrics::set_shard(int32_t rank, int64_t items, int64_t tombstones) {
  set_shard_items(rank, items);
  families_->shard_tombstones.Add({{"rank", std::to_string(rank)}}).Set(double(tombstones));
}

void Metrics::set_shard_items(int32_t rank, int64_t items) {
  families_->shard_items.Add({{"rank", std::to_string(rank)}}).Set(double(items));
}

void Metrics::observe_writes(int64_t upserts, int64_t deletes) {
  families_->upserts.Increment(double(upserts));
  families_->deletes.Increment(double(deletes));
}

void Metrics::observe_write_visible(double seconds) { families_->visible.Observe(seconds); }

void Metrics::set_wal(uint64_t last_sequence, int64_t bytes) {
  families_->wal_sequence.Set(double(last_sequence));
  families_->wal_bytes.Set(double(bytes));
}

void Metrics::set_snapshot_sequence(uint64_t sequence) {
  families_->snapshot_sequence.Set(double(sequence));
}

void Metrics::set_rebalance_progress(int64_t moved, int64_t total) {
  families_->rebalance_moved.Set(double(moved));
  families_->rebalance_total.Set(double(total));
  families_->rebalance_progress.Set(total > 0 ? double(moved) / double(total) : 1.0);
}

prometheus::Counter& Metrics::rejection(const std::string& reason) {
  return families_->rejected.Add({{"reason", reason}});
}

prometheus::Counter& Metrics::counter(const std::string& name, const std::string& help,
                                      const Labels& labels) {
  std::lock_guard<std::mutex> lock(families_->mu);
  auto& family = families_->counters[name];
  if (family == nullptr) family = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
  return family->Add(labels);
}

prometheus::Gauge& Metrics::gauge(const std::string& name, const std::string& help,
                                  const Labels& labels) {
  std::lock_guard<std::mutex> lock(families_->mu);
  auto& family = families_->gauges[name];
  if (family == nullptr) family = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  return family->Add(labels);
}

prometheus::Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                                          const prometheus::Histogram::BucketBoundaries& buckets,
                                          const Labels& labels) {
  std::lock_guard<std::mutex> lock(families_->mu);
  auto& family = families_->histograms[name];
  if (family == nullptr)
    family = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
  return family->Add(labels, buckets);
}

RebalanceMeter::RebalanceMeter(int64_t total_partitions)
    : total_(total_partitions),
      bar_(std::make_unique<Progress>(
          "rebalance: moving " + std::to_string(total_partitions) + " partitions",
          total_partitions)) {
  metrics().set_rebalance_progress(0, total_);
}

RebalanceMeter::~RebalanceMeter() {
  bar_->finish();
  metrics().set_rebalance_progress(total_, total_);
}

void RebalanceMeter::moved(int64_t partitions) {
  moved_ += partitions;
  bar_->add(partitions);
  metrics().set_rebalance_progress(moved_, total_);
}

Metrics& metrics() {
  static Metrics* instance = new Metrics();  // never destroyed: threads may record at exit
  return *instance;
}

}  // namespace argent
