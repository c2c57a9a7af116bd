#include "coordinator/server.h"

#include <zmq.hpp>

#include <atomic>
#include <csignal>
#include <optional>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/gateway.h"
#include "coordinator/merger.h"
#include "coordinator/rerank_model.h"
#include "coordinator/partition_map.h"
#include "coordinator/rebalancer.h"
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
  PartitionMover mover;
  // Rank 0: the write-ahead log, opened before loading (its map records say where partitions
  // are), handed to the Updater.
  std::optional<WriteAheadLog> wal;
  WalRecovery wal_recovery;
};

// Rank 0 works out the partition map (snapshot, then the log's map records) and broadcasts it:
// every rank loads the partitions this one map gives it.
void agree_on_map(const Config& config, MpiCommunicator& control, RankState& s) {
  std::exception_ptr failure;
  std::vector<uint8_t> bytes = PartitionMap::round_robin(s.meta.partitions, 1, true).encode();
  int32_t ok = 1;
  if (control.rank() == 0) {
    try {
      s.wal.emplace(
          WriteAheadLog::open(config.index.dir, s.snapshot.sequence + 1, &s.wal_recovery));
      const PartitionMap map =
          recover_partition_map(config, s.meta, control.size(), s.snapshot, s.wal_recovery);
      bytes = map.encode();
    } catch (const Error&) {
      failure = std::current_exception();
      ok = 0;
    }
  }
  control.broadcast(&ok, sizeof ok, 0);
  if (failure) std::rethrow_exception(failure);
  ARGENT_CHECK(ok, "rank ", control.rank(),
               ": rank 0 could not recover the partition map (see its log)");
  control.broadcast(bytes.data(), bytes.size(), 0);  // the size is fixed by the partition count
  s.map = PartitionMap::decode(bytes.data(), bytes.size(), control.size(), s.meta.partitions,
                               "start-up partition map");
}

RankState load_rank(const Config& config, MpiCommunicator& control) {
  RankState s;
  s.meta = read_manifest(config.index.dir);
  // The latest snapshot when there is one; rank 0 then replays the log after it (Updater).
  s.snapshot = read_snapshot_pointer(config.index.dir);
  agree_on_map(config, control, s);
  const std::vector<int32_t>& mine = s.map.partitions_of(control.rank());
  ShardIndex shard = ShardIndex::load(snapshot_data_dir(config.index.dir, s.snapshot), s.meta,
                                      mine, config.index.list_slack);
  ARGENT_LOG(kInfo, "rank ", control.rank(), ": ", mine.size(), " partitions, ", shard.n_items(),
             " items (partition map epoch ", s.map.epoch(), ")");
  s.worker = std::make_unique<ShardWorker>(std::move(shard), control.rank(), config.search.threads,
                                           config.search.device, control.local_rank());
  return s;
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
  const UpdateContext update{config, s.meta, s.map, control, data, *s.worker, lists, &s.mover};
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
        gather_partition_items(data, s.worker->shard());
        break;
      case StepOp::kMutate:
        follow_mutation_step(h, update);
        break;
      case StepOp::kSnapshot:
        follow_snapshot_step(h, update);
        break;
      case StepOp::kMoveBegin:
      case StepOp::kMoveChunk:
      case StepOp::kMoveCommit:
      case StepOp::kMoveAbort:
        follow_move_step(h, update);
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
  RebalanceStatus rebalance_status;
  RebalanceQueue rebalances;
  PartitionLoad load = partition_load(items, control.size(), s.meta.partitions);
  stats.set_shards(load.per_rank, s.map.by_rank());
  rebalance_status.set_items(load.per_partition);

  zmq::context_t context(1);
  RequestQueue queue(config.serve.max_queue);
  const Prober prober(s.meta);
  uint64_t step_id = 0;
  // Writes: recovered from the log before the gateway opens, then served between searches.
  MutationQueue mutations(config.serve.max_queue, [&queue] { queue.wake(); });
  UpdateStats update_stats;
  const UpdateContext update{config, s.meta, s.map, control, data, *s.worker, lists, &s.mover};
  Updater updater(update, prober.centroids(), s.snapshot, stats, update_stats, step_id,
                  [&queue] { queue.wake(); });
  updater.recover(std::move(*s.wal), s.wal_recovery);
  s.wal.reset();
  s.wal_recovery.records.clear();
  Rebalancer rebalancer(update, updater, stats, rebalance_status, step_id);
  GatewayInfo info{control.size(), data.backend(), &mutations, &update_stats};
  info.rebalances = &rebalances;
  info.rebalance_status = &rebalance_status;
  Gateway gateway(context, config, s.meta, queue, stats, info);
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
    rebalancer.run(rebalances, replier);
    if (stats.roll(config.serve.stats_interval_s > 0 ? stats_interval
                                                     : std::chrono::duration<double>(1.0))) {
      update_stats.roll(config.serve.stats_interval_s > 0 ? stats_interval
                                                          : std::chrono::duration<double>(1.0));
      broadcast_header(control, StepOp::kStats, ++step_id, 0);
      load = partition_load(gather_partition_items(data, s.worker->shard()), control.size(),
                            s.meta.partitions);
      stats.set_shards(load.per_rank, s.map.by_rank());
      rebalance_status.set_items(load.per_partition);
      stats.set_queue_depth(queue.depth());
      if (config.serve.stats_interval_s > 0) ARGENT_LOG(kInfo, "stats: ", stats.summary());
    }
    std::vector<PendingSearch> batch =
        queue.pop_batch(config.serve.max_batch, std::chrono::microseconds(config.serve.max_wait_us),
                        std::chrono::milliseconds(
                           (!mutations.empty() && !updater.logging()) || rebalancer.active() ? 0
                                                                                             : 20));
    if (batch.empty()) continue;

    // Requests whose deadline already passed are answered now, not searched.
    const auto now = SteadyClock::now();
    std::vector<PendingSearch> live;
    for (PendingSearch& r : batch) {
      if (now > r.deadline) {
        stats.record_deadline_exceeded();
        replier.send(r.envelope, search_status(r, v1::DEADLINE_EXCEEDED,
                                               "deadline passed while the request was queued"));
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
        replier.send(r.envelope, search_status(r, v1::INTERNAL, e.what()));
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
    data.all_gather_host(block.data(), job.blocks.data(), block.size());
    job.requests = std::move(live);
    merger.push(std::move(job));
  }

  ARGENT_LOG(kInfo, "coordinator: shutting down");
  updater.finish(replier);  // a logged group is applied and acknowledged, not dropped
  broadcast_header(control, StepOp::kShutdown, ++step_id, 0);
  for (const PendingSearch& r : queue.close())
    replier.send(r.envelope, search_status(r, v1::UNAVAILABLE, "server is shutting down"));
  for (const PendingRebalance& r : rebalances.close()) {
    v1::Response out;
    out.mutable_admin()->set_request_id(r.request_id);
    out.mutable_admin()->mutable_status()->set_code(v1::UNAVAILABLE);
    out.mutable_admin()->mutable_status()->set_message("server is shutting down");
    replier.send(r.envelope, out);
  }
  for (const PendingMutation& m : mutations.close())
    replier.send(m.envelope, mutation_status(m, v1::UNAVAILABLE,
                                             "server is shutting down; not logged, not applied"));
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
  std::vector<int64_t> items = gather_partition_items(data, s.worker->shard());
  if (control.rank() == 0)
    return run_coordinator(config, control, data, s, std::move(lists), std::move(items));
  return run_shard_loop(config, control, data, s);
}

}  // namespace argent
