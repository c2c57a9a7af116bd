// The snapshot half of the update path (coordinator/updater.h): snapshot steps on every rank,
// the pointer and log truncation on rank 0, and the periodic trigger.
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/mutation_step.h"
#include "coordinator/updater.h"

namespace argent {
namespace {

double ms_since(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// Every rank: write this rank's partitions into the snapshot directory (compacted first: a
// snapshot holds no tombstones), gather who succeeded, refresh the lists.
std::vector<uint8_t> snapshot_and_gather(uint64_t sequence, const UpdateContext& ctx) {
  MutationAck ack;
  try {
    ShardIndex& shard = ctx.worker.mutable_shard();
    shard.compact();
    write_shard_snapshot(shard, ctx.config.index.dir, snapshot_dir_name(sequence));
    ack = shard_ack(shard, ctx.data.rank());
  } catch (const std::exception& e) {
    // A failed snapshot (disk full, permissions) must not stop serving: report it and go on.
    ARGENT_LOG(kError, "rank ", ctx.data.rank(), ": snapshot ", sequence, " failed: ", e.what());
    ack = shard_ack(ctx.worker.shard(), ctx.data.rank());
    ack.ok = 0;
  }
  std::vector<uint8_t> acks(sizeof(MutationAck) * size_t(ctx.data.size()));
  ctx.data.all_gather_host(&ack, acks.data(), sizeof ack);
  ctx.lists = gather_global_lists(ctx.data, ctx.worker.shard());
  return acks;
}

}  // namespace

void Updater::answer_snapshot(const PendingMutation& req, Replier& replier) {
  SnapshotPointer done;
  double seconds = 0;
  const uint64_t token =
      ctx_.board ? ctx_.board->track({reply_target(req)}, replier) : 0;
  const std::string problem = snapshot(&done, &seconds);
  if (ctx_.board && !ctx_.board->release(token)) return;  // answered by a failure
  v1::Response r;
  v1::AdminResponse* a = r.mutable_admin();
  a->set_request_id(req.request_id);
  a->mutable_status()->set_code(problem.empty() ? v1::OK : v1::INTERNAL);
  a->mutable_status()->set_message(problem);
  a->set_sequence(done.sequence);
  a->set_items(done.items);
  a->set_seconds(seconds);
  a->set_path(problem.empty() ? snapshot_data_dir(ctx_.config.index.dir, done) : "");
  replier.send(req.envelope, r, req.arrival);
}

std::string Updater::snapshot(SnapshotPointer* done, double* seconds) {
  const auto start = SteadyClock::now();
  const uint64_t sequence = wal_->next_sequence() - 1;  // every logged record is applied
  if (sequence == snapshot_.sequence && !snapshot_.dir.empty()) {
    *done = snapshot_;  // nothing new since the last snapshot
    return "";
  }
  broadcast_header(StepOp::kSnapshot, int64_t(sizeof(uint64_t)));
  uint64_t seq = sequence;
  ctx_.data.broadcast_host(&seq, sizeof seq, 0);
  const std::vector<uint8_t> acks = snapshot_and_gather(sequence, ctx_);
  end_step();
  refresh_stats(acks, 0);
  SnapshotPointer p;
  p.sequence = sequence;
  p.dir = snapshot_dir_name(sequence);
  p.map_epoch = ctx_.map.epoch();  // a move commits between steps: this map is whole
  p.map_owners = ctx_.map.owners();
  std::string problem;
  for (int r = 0; r < ctx_.data.size(); ++r) {
    MutationAck a;
    std::memcpy(&a, acks.data() + size_t(r) * sizeof a, sizeof a);
    p.items += a.items;
    if (!a.ok) problem += (problem.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!problem.empty()) {
    remove_other_snapshots(ctx_.config.index.dir, snapshot_.dir);
    return "snapshot failed on rank(s) " + problem + " (see their logs); the previous one stays";
  }
  try {
    commit_snapshot(ctx_.config.index.dir, ctx_.meta, p);
    wal_->reset(sequence + 1);
  } catch (const Error& e) {
    return std::string("snapshot: ") + e.what();
  }
  snapshot_ = p;
  remove_other_snapshots(ctx_.config.index.dir, p.dir);
  last_snapshot_ = std::chrono::steady_clock::now();
  stats_.set_snapshot(sequence);
  stats_.set_wal(sequence, wal_->bytes());
  *done = p;
  *seconds = ms_since(start) / 1000.0;
  ARGENT_LOG(kInfo, "snapshot at sequence ", sequence, ": ", p.items, " items in ", *seconds,
             " s (", p.dir, "); write-ahead log truncated");
  return "";
}

void Updater::maybe_snapshot() {
  if (in_flight_) return;  // the log belongs to the writing thread until it finishes
  const UpdatesConfig& u = ctx_.config.updates;
  const bool pending = wal_->next_sequence() - 1 > snapshot_.sequence;
  const double age = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                   last_snapshot_).count();
  const bool due = (u.snapshot_interval_s > 0 && age >= u.snapshot_interval_s) ||
                   (u.snapshot_wal_bytes > 0 && wal_->bytes() >= u.snapshot_wal_bytes);
  if (!pending || !due) return;
  SnapshotPointer done;
  double seconds = 0;
  const std::string problem = snapshot(&done, &seconds);
  if (!problem.empty()) {
    ARGENT_LOG(kError, "periodic snapshot: ", problem);
    last_snapshot_ = std::chrono::steady_clock::now();  // retry after another interval
  }
}

void follow_snapshot_step(const StepHeader& h, const UpdateContext& ctx) {
  ARGENT_CHECK_DATA(h.payload_bytes == int64_t(sizeof(uint64_t)), "snapshot step of ",
                    h.payload_bytes, " bytes");
  uint64_t sequence = 0;
  ctx.data.broadcast_host(&sequence, sizeof sequence, 0);
  snapshot_and_gather(sequence, ctx);
}

}  // namespace argent
