#include "coordinator/server.h"

#include <zmq.hpp>

#include <atomic>
#include <csignal>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/gateway.h"
#include "coordinator/merger.h"
#include "coordinator/metrics.h"
#include "coordinator/rerank_model.h"
#include "coordinator/partition_map.h"
#include "coordinator/replier.h"
#include "coordinator/request_queue.h"
#include "coordinator/server_stats.h"
#include "coordinator/shard_worker.h"
#include "coordinator/step_protocol.h"
#include "coordinator/update_queue.h"
#include "coordinator/updater.h"
#include "shard/prober.h"

namespace argent {
namespace {

std::atomic<bool> g_shutdown{false};

double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

v1::Response mutation_status(const PendingMutation& m, v1::StatusCode code, const std::string& msg) {
  v1::Response out;
  if (m.type == PendingMutation::Type::kSnapshot) {
    out.mutable_admin()->set_request_id(m.request_id);
    out.mutable_admin()->mutable_status()->set_code(code);
    out.mutable_admin()->mutable_status()->set_message(msg);
  } else {
    out.mutable_mutation()->set_request_id(m.request_id);
    out.mutable_mutation()->mutable_status()->set_code(code);
    out.mutable_mutation()->mutable_status()->set_message(msg);
  }
  return out;
}

// Everything a rank holds while serving.
struct RankState {
  IndexMeta meta;
  PartitionMap map;
  SnapshotPointer snapshot;  // what was loaded: the latest snapshot, or the build
  std::unique_ptr<ShardWorker> worker;
};

RankState load_rank(const Config& config, const Communicator& control) {
  RankState s;
  s.meta = read_manifest(config.index.dir);
  s.map = PartitionMap::round_robin(s.meta.partitions, control.size(),
                                    config.serve.coordinator_serves);
  const std::vector<int32_t>& mine = s.map.partitions_of(control.rank());
  // The latest snapshot when there is one; rank 0 then replays the log after it (Updater).
  s.snapshot = read_snapshot_pointer(config.index.dir);
  ShardIndex shard = ShardIndex::load(snapshot_data_dir(config.index.dir, s.snapshot), s.meta,
                                      mine, config.index.list_slack);
  ARGENT_LOG(kInfo, "rank ", control.rank(), ": ", mine.size(), " partitions, ", shard.n_items(), " items");
  s.worker = std::make_unique<ShardWorker>(std::move(shard), control.rank(), config.search.threads,
                                           config.search.device, control.local_rank());
  return s;
}

std::vector<int64_t> gather_items(Communicator& data, const ShardWorker& worker) {
  const int64_t mine = worker.shard().n_items();
  std::vector<int64_t> all(size_t(data.size()));
  data.all_gather_host(&mine, all.data(), sizeof(int64_t));
  return all;
}

void broadcast_header(MpiCommunicator& control, StepOp op, uint64_t step, int64_t payload) {
  StepHeader h;
  h.op = int32_t(op);
  h.step = step;
  h.payload_bytes = payload;
  control.broadcast(&h, sizeof(h), 0);
}

// Ranks other than 0: follow the coordinator's steps until it says shut down.
int run_shard_loop(const Config& config, MpiCommunicator& control, Communicator& data,
                   RankState& s) {
  GlobalLists lists;  // gathered after updates for the coordinator; unused here
  const UpdateContext update{config, s.meta, s.map, control, data, *s.worker, lists};
  for (;;) {
    StepHeader h;
    control.broadcast(&h, sizeof(h), 0, kNoTimeout);  // an idle server is not a failure
    ARGENT_CHECK_DATA(h.magic == StepHeader{}.magic, "step header with bad magic ", h.magic);
    switch (StepOp(h.op)) {
      case StepOp::kSearch: {
        ARGENT_CHECK_DATA(h.payload_bytes >= 0 && h.payload_bytes < (int64_t(1) << 31),
                          "search step of ", h.payload_bytes, " bytes");
        std::vector<uint8_t> payload(size_t(h.payload_bytes));
        data.broadcast_host(payload.data(), payload.size(), 0);
        const SearchStep step =
            decode_search_step(payload, s.meta.d_pad, s.meta.bloom.words, s.meta.nlist);
        const std::vector<uint8_t> block = s.worker->search(step);
        std::vector<uint8_t> gathered(block.size() * size_t(data.size()));
        data.all_gather_host(block.data(), gathered.data(), block.size());
        break;
      }
      case StepOp::kStats:
        gather_items(data, *s.worker);
        break;
      case StepOp::kMutate:
        follow_mutation_step(h, update);
        break;
      case StepOp::kSnapshot:
        follow_snapshot_step(h, update);
        break;
      case StepOp::kShutdown:
        ARGENT_LOG(kInfo, "rank ", control.rank(), ": shutting down");
        return 0;
      default:
        ARGENT_CHECK_DATA(false, "unknown step op ", h.op);
    }
  }
}

// Rank 0: the gateway, the batcher, the step loop and the merger.
int run_coordinator(const Config& config, MpiCommunicator& control, Communicator& data,
                    RankState& s, GlobalLists lists, std::vector<int64_t> items) {
  ServerStats stats;
  std::vector<std::vector<int32_t>> partitions;
  for (int r = 0; r < control.size(); ++r) partitions.push_back(s.map.partitions_of(r));
  stats.set_shards(std::move(items), partitions);

  zmq::context_t context(1);
  RequestQueue queue(config.serve.max_queue);
  const Prober prober(s.meta);
  uint64_t step_id = 0;
  // Writes: recovered from the log before the gateway opens, then served between searches.
  MutationQueue mutations(config.serve.max_queue, [&queue] { queue.wake(); });
  UpdateStats update_stats;
  Updater updater(UpdateContext{config, s.meta, s.map, control, data, *s.worker, lists},
                  prober.centroids(), s.snapshot, stats, update_stats, step_id,
                  [&queue] { queue.wake(); });
  updater.recover();
  Gateway gateway(context, config, s.meta, queue, stats,
                  GatewayInfo{control.size(), data.backend(), &mutations, &update_stats});
  // The reranker is loaded before the gateway opens, so a bad model file stops the job at start.
  std::unique_ptr<RerankSetup> rerank;
  if (config.rerank.enabled) {
    rerank = std::make_unique<RerankSetup>();
    RerankModel model = load_rerank_model(config.rerank.model, config.rerank, s.meta.dim);
    rerank->defaults =
        default_value_weights(config.rerank, model.task_weights, model.retrieval_weight);
    rerank->reranker = std::make_unique<Reranker>(std::move(model), config.rerank.device,
                                                  config.rerank.chunk_rows);
    rerank->dim = s.meta.dim;
    rerank->normalize = s.meta.normalize;
    ARGENT_LOG(kInfo, "reranker: ", config.rerank.model, ", ", rerank->reranker->n_tasks(),
               " tasks, depth ", config.rerank.depth, ", on ", rerank->reranker->device().str());
  }
  metrics().serve(config.metrics.endpoint);
  gateway.start();
  Merger merger(context, stats, data.size(), rerank.get());
  Replier replier(context);
  int64_t total_items = 0;
  for (int64_t n : stats.snapshot().items_per_rank) total_items += n;
  ARGENT_LOG(kInfo, "serving ", total_items, " items on ", control.size(), " ranks (",
             data.backend(), " collectives)");

  const auto stats_interval = std::chrono::duration<double>(config.serve.stats_interval_s);
  while (!g_shutdown.load()) {
    // Writes move first (log, then apply and acknowledge), so they become visible within a
    // step or two; the log's fdatasync runs beside the search steps.
    updater.run_queued(mutations, replier);
    updater.maybe_snapshot();
    if (stats.roll(config.serve.stats_interval_s > 0 ? stats_interval
                                                     : std::chrono::duration<double>(1.0))) {
      update_stats.roll(config.serve.stats_interval_s > 0 ? stats_interval
                                                          : std::chrono::duration<double>(1.0));
      broadcast_header(control, StepOp::kStats, ++step_id, 0);
      stats.set_shards(gather_items(data, *s.worker), partitions);
      stats.set_queue_depth(queue.depth());
      metrics().set_queue_depth("write", mutations.depth());
      if (config.serve.stats_interval_s > 0) {
        const UpdateStatsSnapshot u = update_stats.snapshot();
        ARGENT_LOG(kInfo, "stats: ", stats.summary(), " writes upserts/s ", u.upserts_per_s,
                   " deletes/s ", u.deletes_per_s, " visible p99 ", u.visible_p99_ms,
                   " ms wal seq ", u.wal_sequence);
      }
    }
    std::vector<PendingSearch> batch =
        queue.pop_batch(config.serve.max_batch, std::chrono::microseconds(config.serve.max_wait_us),
                        std::chrono::milliseconds(!mutations.empty() && !updater.logging() ? 0 : 20));
    if (batch.empty()) continue;

    // Requests whose deadline already passed are answered now, not searched.
    const auto now = SteadyClock::now();
    std::vector<PendingSearch> live;
    for (PendingSearch& r : batch) {
      if (now > r.deadline) {
        stats.record_deadline_exceeded();
        replier.send(r.envelope, search_status(r, v1::DEADLINE_EXCEEDED,
                                               "deadline passed while the request was queued"),
                     r.arrival);
      } else {
        live.push_back(std::move(r));
      }
    }
    if (live.empty()) continue;
    stats.record_batch(int64_t(live.size()));

    SearchStep step;
    try {
      const int64_t n = int64_t(live.size());
      std::vector<float> x(size_t(n * s.meta.dim));
      std::vector<std::string> filters;
      for (int64_t q = 0; q < n; ++q) {
        std::copy(live[size_t(q)].embedding.begin(), live[size_t(q)].embedding.end(),
                  x.begin() + q * s.meta.dim);
        filters.push_back(live[size_t(q)].filter);
        // With the reranker, a query needs its top max(k, depth) candidates after exclusions.
        const PendingSearch& r = live[size_t(q)];
        const int64_t wanted = rerank ? std::max(r.k, r.rerank_depth) : r.k;
        step.k = std::max<int64_t>(step.k, wanted + int64_t(r.exclude_ids.size()));
      }
      step.queries = prepare_queries(x.data(), n, s.meta.dim, s.meta, filters);
      step.nprobe = live.front().exact ? 0 : live.front().nprobe;
      step.with_codes = rerank != nullptr;
      if (step.nprobe > 0)
        step.lists = prober.probe(step.queries, step.nprobe, lists.sizes.data(),
                                  lists.summaries.data());
    } catch (const Error& e) {
      // Requests were validated one by one; a batch that still fails is answered, not fatal.
      for (const PendingSearch& r : live)
        replier.send(r.envelope, search_status(r, v1::INTERNAL, e.what()), r.arrival);
      continue;
    }
    std::vector<uint8_t> payload = encode_search_step(step);
    broadcast_header(control, StepOp::kSearch, ++step_id, int64_t(payload.size()));
    data.broadcast_host(payload.data(), payload.size(), 0);
    const std::vector<uint8_t> block = s.worker->search(step);

    MergeJob job;
    job.k = step.k;
    job.code_dims = step.with_codes ? s.meta.d_pad : 0;
    job.dispatched = now;
    job.blocks.resize(block.size() * size_t(data.size()));
    const auto gather_start = SteadyClock::now();
    data.all_gather_host(block.data(), job.blocks.data(), block.size());
    metrics().observe_all_gather(ms_between(gather_start, SteadyClock::now()) / 1000.0);
    job.requests = std::move(live);
    merger.push(std::move(job));
  }

  ARGENT_LOG(kInfo, "coordinator: shutting down");
  updater.finish(replier);  // a logged group is applied and acknowledged, not dropped
  broadcast_header(control, StepOp::kShutdown, ++step_id, 0);
  for (const PendingSearch& r : queue.close())
    replier.send(r.envelope, search_status(r, v1::UNAVAILABLE, "server is shutting down"),
                 r.arrival);
  for (const PendingMutation& m : mutations.close())
    replier.send(m.envelope,
                 mutation_status(m, v1::UNAVAILABLE,
                                 "server is shutting down; not logged, not applied"),
                 m.arrival);
  merger.stop();
  gateway.stop();
  return 0;
}

}  // namespace

void request_server_shutdown() { g_shutdown.store(true); }

int run_server(const Config& config, MpiCommunicator& control, Communicator& data) {
  RankState s = load_rank(config, control);
  ARGENT_CHECK(s.worker->shard().meta().dim > 0, "index has no dimension");
  // Startup collectives, on every rank in the same order: the index-wide lists for the prober
  // and each rank's item count for Stats and Health.
  GlobalLists lists = gather_global_lists(data, s.worker->shard());
  std::vector<int64_t> items = gather_items(data, *s.worker);
  if (control.rank() == 0)
    return run_coordinator(config, control, data, s, std::move(lists), std::move(items));
  return run_shard_loop(config, control, data, s);
}

}  // namespace argent
