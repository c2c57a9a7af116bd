#include "coordinator/updater.h"

#include <cstring>
#include <optional>

#include "common/error.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/progress.h"
#include "coordinator/coordinator_steps.h"
#include "coordinator/mutation_step.h"

namespace argent {
namespace {

double ms_since(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// Every rank, after the step's payload is known: apply, gather the acks, refresh the prober's
// lists. The same collectives in the same order on every rank.
std::vector<uint8_t> apply_and_gather(const MutationStep& step, const UpdateContext& ctx) {
  // A partition being moved keeps its writes on the source; the destination keeps a copy to
  // replay when the move commits (coordinator/partition_mover.h).
  if (ctx.mover) ctx.mover->forward(step);
  const std::vector<uint8_t> ack =
      apply_mutation_step(step, ctx.data.rank(), ctx.config.updates.compact_tombstone_ratio,
                          ctx.worker.mutable_shard());
  std::vector<uint8_t> acks(ack.size() * size_t(ctx.data.size()));
  ctx.data.all_gather_host(ack.data(), acks.data(), ack.size());
  ctx.lists = gather_global_lists(ctx.data, ctx.worker.shard());
  return acks;
}

v1::Response mutation_reply(uint64_t request_id, v1::StatusCode code, const std::string& message,
                            int64_t applied, uint64_t sequence) {
  v1::Response r;
  v1::MutationResponse* m = r.mutable_mutation();
  m->set_request_id(request_id);
  m->mutable_status()->set_code(code);
  m->mutable_status()->set_message(message);
  m->set_applied(applied);
  m->set_sequence(sequence);
  return r;
}

}  // namespace

Updater::Updater(UpdateContext ctx, const QuantizedCentroids& centroids, SnapshotPointer snapshot,
                 ServerStats& server_stats, UpdateStats& stats, uint64_t& step_id,
                 std::function<void()> wake)
    : ctx_(ctx),
      centroids_(centroids),
      snapshot_(std::move(snapshot)),
      server_stats_(server_stats),
      stats_(stats),
      step_id_(step_id),
      last_snapshot_(std::chrono::steady_clock::now()),
      wake_(std::move(wake)) {}

void Updater::broadcast_header(StepOp op, int64_t payload_bytes, int64_t n) {
  start_step(ctx_.control, ctx_.watchdog, step_id_, op, payload_bytes, 0, n);
}

void Updater::end_step() {
  if (ctx_.watchdog) ctx_.watchdog->end();
}

Updater::~Updater() {
  // Never leave the helper thread writing to a destroyed log.
  if (in_flight_ && in_flight_->first.valid()) in_flight_->first.wait();
}

void Updater::recover(WriteAheadLog wal, const WalRecovery& rec) {
  const auto start = SteadyClock::now();
  wal_.emplace(std::move(wal));
  if (rec.discarded_bytes > 0)
    ARGENT_LOG(kWarn, "write-ahead log: discarded a torn tail of ", rec.discarded_bytes,
               " bytes at offset ", rec.valid_bytes, " (", rec.discard_reason,
               "); its mutations were never acknowledged");
  // Stale snapshot directories (a snapshot interrupted before its pointer was written) go; every
  // rank has finished loading by now (the start-up collectives came first).
  remove_other_snapshots(ctx_.config.index.dir, snapshot_.dir);
  std::vector<MutationBatch> pending;
  int64_t items = 0, replayed = 0;
  auto flush = [&] {
    if (pending.empty()) return;
    MutationStep step;
    for (const MutationBatch& b : pending) add_to_step(b, &step);
    refresh_stats(mutate(step), step.n_requests);
    pending.clear();
    items = 0;
  };
  Progress progress("replaying the write-ahead log", int64_t(rec.records.size()));
  for (const WalRecord& r : rec.records) {
    progress.add(1);
    if (r.sequence <= snapshot_.sequence) continue;  // already in the snapshot
    // Map records were read before loading (recover_partition_map): the job already serves the
    // last one, and mutations route by it whichever map they were first applied under, since
    // any rank can load any partition of the snapshot.
    if (is_map_record(r)) continue;
    MutationBatch b = decode_mutation(r.payload.data(), r.payload.size(), ctx_.meta.dim);
    if (items + b.size() > ctx_.config.updates.max_step_items) flush();
    items += b.size();
    pending.push_back(std::move(b));
    ++replayed;
  }
  flush();
  progress.finish();
  // Records the snapshot covers are left when a crash came between the snapshot's pointer and
  // the log's truncation: finish that truncation now.
  if (wal_->next_sequence() <= snapshot_.sequence) wal_->reset(snapshot_.sequence + 1);
  stats_.set_wal(wal_->next_sequence() - 1, wal_->bytes());
  stats_.set_snapshot(snapshot_.sequence);
  ARGENT_LOG(kInfo, "recovery: snapshot at sequence ", snapshot_.sequence, " (",
             snapshot_.dir.empty() ? std::string("the build") : snapshot_.dir, "), replayed ",
             replayed, " log records in ", ms_since(start), " ms; next sequence ",
             wal_->next_sequence());
}

void Updater::log_partition_map(const PartitionMap& map) {
  ARGENT_ASSERT(!in_flight_, "partition map logged while a group is being logged");
  wal_->append({encode_map_record(map)});
  stats_.set_wal(wal_->next_sequence() - 1, wal_->bytes());
}

std::vector<uint8_t> encode_map_record(const PartitionMap& map) {
  std::vector<uint8_t> out = {kPartitionMapRecord, 0, 0, 0};
  const std::vector<uint8_t> body = map.encode();
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

bool is_map_record(const WalRecord& record) {
  return !record.payload.empty() && record.payload[0] == kPartitionMapRecord;
}

PartitionMap recover_partition_map(const Config& config, const IndexMeta& meta, int ranks,
                                   const SnapshotPointer& snapshot, const WalRecovery& recovery) {
  std::optional<PartitionMap> map;
  std::string source = "serve.standby_ranks and round-robin";
  // Only the map in force is checked against the job's ranks: after "drain 3" and a restart with
  // three ranks, earlier records that still place partitions on rank 3 are history.
  const WalRecord* last_logged = nullptr;
  for (const WalRecord& r : recovery.records)
    if (r.sequence > snapshot.sequence && is_map_record(r)) last_logged = &r;
  if (last_logged != nullptr) {
    source = "write-ahead log record " + std::to_string(last_logged->sequence);
    map = PartitionMap::decode(last_logged->payload.data() + 4, last_logged->payload.size() - 4,
                               ranks, meta.partitions, source);
  } else if (!snapshot.map_owners.empty()) {
    ARGENT_CHECK_DATA(int64_t(snapshot.map_owners.size()) == meta.partitions, "snapshot ",
                      snapshot.dir, ": partition map of ", snapshot.map_owners.size(),
                      " partitions, the index has ", meta.partitions);
    for (size_t p = 0; p < snapshot.map_owners.size(); ++p)
      ARGENT_CHECK(snapshot.map_owners[p] < ranks, "snapshot ", snapshot.dir,
                   ": partition map epoch ", snapshot.map_epoch, " places partition ", p,
                   " on rank ", snapshot.map_owners[p], ", but the job has ", ranks,
                   " ranks; start it with at least ", snapshot.map_owners[p] + 1, " ranks");
    map = PartitionMap::from_owners(snapshot.map_owners, ranks, snapshot.map_epoch);
    source = "the snapshot";
  }
  if (!map)
    map = PartitionMap::round_robin(meta.partitions, ranks, config.serve.coordinator_serves,
                                    config.serve.standby_ranks);
  ARGENT_LOG(kInfo, "partition map epoch ", map->epoch(), " from ", source);
  return *map;
}

void Updater::add_to_step(const MutationBatch& b, MutationStep* step) const {
  const int32_t r = step->n_requests;
  std::vector<StepMutation> added;
  if (b.kind == MutationKind::kUpsert) {
    for (PreparedItem& item : prepare_upserts(b.items, ctx_.meta, centroids_)) {
      StepMutation m;
      m.kind = MutationKind::kUpsert;
      m.rank = ctx_.map.rank_of(item.partition);
      m.request = r;
      m.item = std::move(item);
      added.push_back(std::move(m));
    }
  } else {
    for (int64_t id : b.ids) {
      StepMutation m;
      m.kind = MutationKind::kDelete;
      m.item.id = id;
      m.item.partition = partition_of_id(id, ctx_.meta.partitions);
      m.rank = ctx_.map.rank_of(m.item.partition);
      m.request = r;
      added.push_back(std::move(m));
    }
  }
  // Only a request that prepared whole joins the step.
  for (StepMutation& m : added) step->mutations.push_back(std::move(m));
  ++step->n_requests;
}

std::vector<uint8_t> Updater::mutate(const MutationStep& step) {
  std::vector<uint8_t> payload = encode_mutation_step(step);
  broadcast_header(StepOp::kMutate, int64_t(payload.size()), step.n_requests);
  ctx_.data.broadcast_host(payload.data(), payload.size(), 0);
  std::vector<uint8_t> acks = apply_and_gather(step, ctx_);
  end_step();
  // Every rank's ack must come from that rank (a rank out of step would answer another's).
  const size_t stride = mutation_ack_bytes(step.n_requests);
  for (int r = 0; r < ctx_.data.size(); ++r) {
    MutationAck a;
    std::memcpy(&a, acks.data() + size_t(r) * stride, sizeof a);
    if (a.rank != r && ctx_.watchdog)
      ctx_.watchdog->fail("rank " + std::to_string(r) + " answered step " +
                          std::to_string(step_id_) + " (mutate) as rank " +
                          std::to_string(a.rank) + ", expected rank " + std::to_string(r));
  }
  return acks;
}

void Updater::refresh_stats(const std::vector<uint8_t>& acks, int32_t n_requests) {
  const size_t stride = mutation_ack_bytes(n_requests);
  std::vector<int64_t> items, tombstones_per_rank;
  int64_t tombstones = 0, rows = 0;
  for (int r = 0; r < ctx_.data.size(); ++r) {
    MutationAck a;
    std::memcpy(&a, acks.data() + size_t(r) * stride, sizeof a);
    items.push_back(a.items);
    tombstones += a.tombstones;
    tombstones_per_rank.push_back(a.tombstones);
    rows += a.rows_in_use;
  }
  server_stats_.set_shards(std::move(items), server_stats_.snapshot().partitions_per_rank);
  server_stats_.set_tombstones(std::move(tombstones_per_rank));
  stats_.set_shards(tombstones, rows);
}

void Updater::run_queued(MutationQueue& queue, Replier& replier) {
  if (in_flight_) {
    if (in_flight_->first.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
    complete(replier);
  }
  if (paused_) return;
  std::vector<PendingMutation> requests = queue.pop(ctx_.config.updates.max_step_items);
  if (requests.empty()) return;
  if (requests.front().type == PendingMutation::Type::kSnapshot) {
    answer_snapshot(requests.front(), replier);
    return;
  }
  // Prepare first (quantize, assign, route): a request that fails here is answered and never
  // logged, so the log holds nothing that could not be applied.
  in_flight_.emplace();
  std::vector<std::vector<uint8_t>> payloads;
  for (PendingMutation& m : requests) {
    try {
      add_to_step(m.batch, &in_flight_->step);
    } catch (const Error& e) {
      replier.send(m.envelope, mutation_reply(m.request_id, v1::INVALID_ARGUMENT, e.what(), 0, 0),
                   m.arrival);
      continue;
    }
    payloads.push_back(encode_mutation(m.batch));
    in_flight_->requests.push_back(std::move(m));
  }
  if (in_flight_->requests.empty()) {
    in_flight_.reset();
    return;
  }
  // From here until acknowledged, a cluster failure answers them (UNAVAILABLE).
  if (ctx_.board) in_flight_->token = ctx_.board->track_all(in_flight_->requests, replier);
  // Then log, with one fdatasync for the whole group (group commit), on a helper thread: search
  // steps continue meanwhile, and nothing is applied, or acknowledged, before it is durable.
  WriteAheadLog* wal = &*wal_;
  in_flight_->first = std::async(std::launch::async, [wal, payloads = std::move(payloads), this] {
    struct Wake {
      std::function<void()>& wake;
      ~Wake() {
        if (wake) wake();
      }
    } wake_on_exit{wake_};
    return wal->append(payloads);
  });
}

void Updater::complete(Replier& replier) {
  InFlight job = std::move(*in_flight_);
  in_flight_.reset();
  uint64_t first = 0;
  try {
    first = job.first.get();
  } catch (const Error& e) {
    // The log was cut back to before these records: they are neither durable nor applied.
    ARGENT_LOG(kError, "write-ahead log: ", e.what());
    if (ctx_.board && !ctx_.board->release(job.token)) return;  // answered by a failure
    for (const PendingMutation& m : job.requests)
      replier.send(m.envelope, mutation_reply(m.request_id, v1::UNAVAILABLE,
                                              std::string("not logged, not applied: ") + e.what(),
                                              0, 0),
                   m.arrival);
    return;
  }
  // Route by the map of this step: a partition move may have committed while the group was
  // being logged, and its rows belong to the partition's owner now.
  for (StepMutation& m : job.step.mutations) m.rank = ctx_.map.rank_of(m.item.partition);
  const std::vector<uint8_t> acks = mutate(job.step);
  if (ctx_.board && !ctx_.board->release(job.token)) return;  // answered by a failure

  // Every rank has applied the step: acknowledge. A later search runs in a later step, so it
  // sees these writes (read-your-writes).
  const int32_t n = int32_t(job.requests.size());
  const size_t stride = mutation_ack_bytes(n);
  int64_t upserts = 0, deletes = 0;
  std::vector<double> visible;
  for (int32_t q = 0; q < n; ++q) {
    int64_t applied = 0;
    for (int r = 0; r < ctx_.data.size(); ++r) {
      int64_t v = 0;
      std::memcpy(&v, acks.data() + size_t(r) * stride + sizeof(MutationAck) + size_t(q) * 8, 8);
      applied += v;
    }
    const PendingMutation& m = job.requests[size_t(q)];
    (m.batch.kind == MutationKind::kUpsert ? upserts : deletes) += m.batch.size();
    visible.push_back(ms_since(m.arrival));
    replier.send(m.envelope, mutation_reply(m.request_id, v1::OK, "", applied, first + uint64_t(q)),
                 m.arrival);
  }
  refresh_stats(acks, n);
  stats_.record_step(upserts, deletes, visible);
  stats_.set_wal(wal_->next_sequence() - 1, wal_->bytes());
}

void Updater::finish(Replier& replier) {
  if (!in_flight_) return;
  in_flight_->first.wait();
  complete(replier);
}

void follow_mutation_step(const StepHeader& h, const UpdateContext& ctx) {
  ARGENT_CHECK_DATA(h.payload_bytes >= 0 && h.payload_bytes < (int64_t(1) << 33),
                    "mutation step of ", h.payload_bytes, " bytes");
  std::vector<uint8_t> payload(size_t(h.payload_bytes));
  ctx.data.broadcast_host(payload.data(), payload.size(), 0);
  const MutationStep step =
      decode_mutation_step(payload, ctx.meta.d_pad, ctx.meta.nlist, ctx.data.size());
  apply_and_gather(step, ctx);
}

}  // namespace argent
