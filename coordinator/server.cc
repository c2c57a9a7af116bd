#include "coordinator/server.h"

#include <zmq.hpp>

#include <atomic>
#include <csignal>
#include <optional>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/coordinator_steps.h"
#include "coordinator/fault_injection.h"
#include "coordinator/gateway.h"
#include "coordinator/inflight_board.h"
#include "coordinator/merger.h"
#include "coordinator/metrics.h"
#include "coordinator/rerank_model.h"
#include "coordinator/partition_map.h"
#include "coordinator/rank_liveness.h"
#include "coordinator/rebalancer.h"
#include "coordinator/replier.h"
#include "coordinator/request_queue.h"
#include "coordinator/server_stats.h"
#include "coordinator/shard_worker.h"
#include "coordinator/step_protocol.h"
#include "coordinator/update_queue.h"
#include "coordinator/updater.h"
#include "coordinator/watchdog.h"
#include "shard/prober.h"

namespace argent {
namespace {

std::atomic<bool> g_shutdown{false};

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
  // The rank is prefixed where the error is printed ("rank 2: rank 0 could not ...").
  ARGENT_CHECK(ok, "rank 0 could not recover the partition map (see its log)");
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
  s.worker = std::make_unique<ShardWorker>(std::move(shard), control.rank(), config.search,
                                           control.local_rank());
  return s;
}

// Ranks other than 0: follow the coordinator's steps until it says shut down. Any error (a
// failed collective, a step out of sequence, a payload that disagrees with its header) fails
// the rank through its watchdog: logged, communicator aborted, process ended.
int run_shard_loop(const Config& config, MpiCommunicator& control, Communicator& data,
                   RankState& s) {
  const int rank = control.rank();
  Watchdog watchdog(data, rank, config.serve, [] { return g_shutdown.load(); }, nullptr);
  GlobalLists lists;  // gathered after updates for the coordinator; unused here
  const UpdateContext update{config,    s.meta, s.map,     control, data,
                             *s.worker, lists,  &watchdog, nullptr, &s.mover};
  // The coordinator sends a step at least every heartbeat_ms; silence for longer than that plus
  // a step's deadline means it is gone.
  const CollectiveTimeout idle(config.serve.heartbeat_ms + config.serve.step_timeout_ms);
  const InjectedFaults& faults = injected_faults();
  uint64_t previous = 0;
  for (;;) {
    try {
      StepHeader h;
      try {
        control.broadcast(&h, sizeof(h), 0, idle);
      } catch (const Error& e) {
        watchdog.fail("no step from the coordinator (rank 0) within " +
                      std::to_string(idle.count()) + " ms: " + e.what());
      }
      check_step_header(h, previous, rank);
      previous = h.step;
      watchdog.begin(h);
      switch (StepOp(h.op)) {
        case StepOp::kSearch: {
          ARGENT_CHECK_DATA(h.payload_bytes >= 0 && h.payload_bytes < (int64_t(1) << 31),
                            "search step of ", h.payload_bytes, " bytes");
          std::vector<uint8_t> payload(size_t(h.payload_bytes));
          data.broadcast_host(payload.data(), payload.size(), 0);
          const SearchStep step =
              decode_search_step(payload, s.meta.d_pad, s.meta.bloom.words, s.meta.nlist);
          check_search_step(h, step, rank);
          std::vector<uint8_t> block = s.worker->search(step);
          StepHeader echoed = h;
          if (faults.wrong_k_rank == rank) echoed.k = h.k + 1;  // test builds only
          stamp_shard_block(block, echoed);
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
          watchdog.end();
          ARGENT_LOG(kInfo, "rank ", rank, ": shutting down");
          return 0;
        default:
          ARGENT_CHECK_DATA(false, "rank ", rank, ": unknown step op ", h.op);
      }
      watchdog.end();
    } catch (const std::exception& e) {
      watchdog.fail(e.what());
    }
  }
}

ReplyTarget rebalance_target(const PendingRebalance& r) {
  ReplyTarget t;
  t.kind = ReplyTarget::Kind::kAdmin;
  t.envelope = r.envelope;
  t.request_id = r.request_id;
  return t;
}

// Rank 0's answer to a cluster failure (Watchdog's handler): every request a step or the merge
// thread holds, and every queued one, gets UNAVAILABLE naming the failure and what is known of
// the ranks; the queues stay closed, so later requests get the same; then the gateway thread
// gets a moment to send the replies before the watchdog ends the process.
struct FailureReplies {
  const Config& config;
  zmq::context_t& context;
  InFlightBoard& board;
  RequestQueue& queue;
  MutationQueue& mutations;
  RebalanceQueue& rebalances;
  const RankLiveness& liveness;

  void operator()(const std::string& why) const {
    const std::string ranks = liveness.diagnose();
    const std::string message = "cluster failure: " + why +
                                (why.find(ranks) == std::string::npos ? "; " + ranks : "") +
                                "; the job is aborting (its supervisor restarts it)";
    Replier replier(context);
    int64_t answered = board.fail(message, replier);
    for (const PendingSearch& r : queue.close(message)) {
      replier.send(r.envelope, search_status(r, v1::UNAVAILABLE, message));
      ++answered;
    }
    for (const PendingMutation& m : mutations.close(message)) {
      replier.send(m.envelope, status_reply(reply_target(m), v1::UNAVAILABLE,
                                            message + "; not logged, not applied"));
      ++answered;
    }
    for (const PendingRebalance& r : rebalances.close(message)) {
      replier.send(r.envelope, status_reply(rebalance_target(r), v1::UNAVAILABLE, message));
      ++answered;
    }
    ARGENT_LOG(kCritical, "coordinator: answered ", answered, " requests UNAVAILABLE: ", message);
    std::this_thread::sleep_for(std::chrono::milliseconds(config.serve.abort_grace_ms / 2));
  }
};

// Rank 0: the gateway, the batcher, the step loop and the merger.
int run_coordinator(const Config& config, MpiCommunicator& control, Communicator& data,
                    RankState& s, GlobalLists lists, std::vector<int64_t> items,
                    const RankLiveness& liveness) {
  ServerStats stats;
  RebalanceStatus rebalance_status;
  RebalanceQueue rebalances;
  PartitionLoad load = partition_load(items, control.size(), s.meta.partitions);
  stats.set_shards(load.per_rank, s.map.by_rank());
  rebalance_status.set_items(load.per_partition);

  zmq::context_t context(1);
  RequestQueue queue(config.serve.max_queue, config.serve.max_queue_bytes);
  // A search is charged the candidate lists it gathers from every rank: with a large
  // search.max_k over many ranks, a budget that holds only a few such searches turns large-k
  // traffic away (OVERLOADED) long before serve.max_queue. Say so at start, with the numbers.
  const int64_t max_k_search = candidate_bytes(config.search.max_k, control.size(),
                                               config.rerank.enabled ? s.meta.d_pad : 0);
  if (max_k_search * 8 > config.serve.max_queue_bytes)
    ARGENT_LOG(kWarn, "serve.max_queue_bytes = ", config.serve.max_queue_bytes, " holds only ",
               config.serve.max_queue_bytes / max_k_search, " searches at search.max_k = ",
               config.search.max_k, " over ", control.size(), " ranks (", max_k_search,
               " bytes each); raise it if clients send large k");
  const Prober prober(s.meta);
  uint64_t step_id = 0, batch_id = 0;
  // Writes: recovered from the log before the gateway opens, then served between searches.
  MutationQueue mutations(config.serve.max_queue, config.serve.max_queue_bytes,
                          [&queue] { queue.wake(); });
  InFlightBoard board;
  Watchdog watchdog(data, 0, config.serve, [] { return g_shutdown.load(); },
                    FailureReplies{config, context, board, queue, mutations, rebalances, liveness},
                    [&liveness] { return liveness.exited_ranks(); });
  UpdateStats update_stats;
  const UpdateContext update{config,    s.meta, s.map,     control, data,
                             *s.worker, lists,  &watchdog, &board,  &s.mover};
  Updater updater(update, prober.centroids(), s.snapshot, stats, update_stats, step_id,
                  [&queue] { queue.wake(); });
  try {
    updater.recover(std::move(*s.wal), s.wal_recovery);
  } catch (const std::exception& e) {
    watchdog.fail(std::string("recovery: ") + e.what());
  }
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
  metrics().serve(config.metrics.endpoint);
  gateway.start();
  Merger merger(context, stats, data.size(), rerank.get(), &board);
  Replier replier(context);
  int64_t total_items = 0;
  for (int64_t n : stats.snapshot().items_per_rank) total_items += n;
  ARGENT_LOG(kInfo, "serving ", total_items, " items on ", control.size(), " ranks (",
             data.backend(), " collectives)");

  const auto stats_interval = std::chrono::duration<double>(
      config.serve.stats_interval_s > 0 ? config.serve.stats_interval_s : 1.0);
  while (!g_shutdown.load()) {
    try {
      // Writes move first (log, then apply and acknowledge), so they become visible within a
      // step or two; the log's fdatasync runs beside the search steps.
      updater.run_queued(mutations, replier);
      updater.maybe_snapshot();
      // At most one step of a rebalance under way per turn: searches and writes run between.
      rebalancer.run(rebalances, replier);
      const bool roll = stats.roll(stats_interval);
      if (roll || watchdog.ms_since_last_step() >= double(config.serve.heartbeat_ms)) {
        // Also the heartbeat: the shard ranks take a long silence for a lost coordinator.
        if (roll) update_stats.roll(stats_interval);
        start_step(control, &watchdog, step_id, StepOp::kStats, 0);
        load = partition_load(gather_partition_items(data, s.worker->shard()), control.size(),
                              s.meta.partitions);
        watchdog.end();
        stats.set_shards(load.per_rank, s.map.by_rank());
        rebalance_status.set_items(load.per_partition);
        stats.set_queue_depth(queue.depth());
        metrics().set_queue_depth("write", mutations.depth());
        if (roll && config.serve.stats_interval_s > 0) {
          const UpdateStatsSnapshot u = update_stats.snapshot();
          ARGENT_LOG(kInfo, "stats: ", stats.summary(), " writes upserts/s ", u.upserts_per_s,
                     " deletes/s ", u.deletes_per_s, " visible p99 ", u.visible_p99_ms,
                     " ms wal seq ", u.wal_sequence);
        }
      }
      std::vector<PendingSearch> batch = queue.pop_batch(
          config.serve.max_batch, std::chrono::microseconds(config.serve.max_wait_us),
          std::chrono::milliseconds(
              (!mutations.empty() && !updater.logging()) || rebalancer.active() ? 0 : 20));
      if (batch.empty()) continue;
      run_search_step(SearchStepContext{config, control, data, s.meta, *s.worker, lists, prober,
                                        rerank.get(),
                                        watchdog, board, stats, merger, replier, step_id,
                                        batch_id},
                      std::move(batch));
    } catch (const std::exception& e) {
      // A failed collective or a checked mismatch: the cluster is no longer in step.
      watchdog.fail(std::string("rank 0: ") + e.what());
    }
  }

  // SIGTERM. mpirun sends it to every rank when one of them died: that is a failure to report
  // (naming the rank), not a clean stop.
  const std::string lost = liveness.lost_ranks();
  if (!lost.empty()) watchdog.fail("the job is being stopped (SIGTERM) and " + lost);
  ARGENT_LOG(kInfo, "coordinator: shutting down");
  try {
    updater.finish(replier);  // a logged group is applied and acknowledged, not dropped
    start_step(control, &watchdog, step_id, StepOp::kShutdown, 0);
    watchdog.end();
  } catch (const std::exception& e) {
    watchdog.fail(std::string("rank 0: shutdown: ") + e.what());
  }
  for (const PendingSearch& r : queue.close())
    replier.send(r.envelope, search_status(r, v1::UNAVAILABLE, "server is shutting down"),
                 r.arrival);
  for (const PendingRebalance& r : rebalances.close())
    replier.send(r.envelope,
                 status_reply(rebalance_target(r), v1::UNAVAILABLE, "server is shutting down"));
  for (const PendingMutation& m : mutations.close())
    replier.send(m.envelope, status_reply(reply_target(m), v1::UNAVAILABLE,
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
  const RankLiveness liveness = RankLiveness::gather(control);
  if (control.rank() == 0)
    return run_coordinator(config, control, data, s, std::move(lists), std::move(items),
                           liveness);
  return run_shard_loop(config, control, data, s);
}

}  // namespace argent
