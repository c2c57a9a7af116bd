#include "coordinator/rebalancer.h"

#include "common/error.h"
#include "common/log.h"
#include "coordinator/coordinator_steps.h"

namespace argent {
namespace {

double seconds_since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

v1::Response admin_reply(uint64_t request_id, v1::StatusCode code, const std::string& message) {
  v1::Response r;
  r.mutable_admin()->set_request_id(request_id);
  r.mutable_admin()->mutable_status()->set_code(code);
  r.mutable_admin()->mutable_status()->set_message(message);
  return r;
}

}  // namespace

int64_t run_move_step(StepOp op, const MoveStep& move, const UpdateContext& ctx,
                      std::vector<int64_t>* gathered_items) {
  const int64_t result = ctx.mover->follow(op, move, ctx.control, ctx.worker, ctx.map);
  if (op == StepOp::kMoveCommit) {
    if (ctx.control.rank() == move.from)
      maybe_compact(ctx.worker.mutable_shard(), ctx.config.updates.compact_tombstone_ratio,
                    move.from);
    ctx.lists = gather_global_lists(ctx.data, ctx.worker.shard());
    std::vector<int64_t> items = gather_partition_items(ctx.data, ctx.worker.shard());
    if (gathered_items) *gathered_items = std::move(items);
  }
  return result;
}

void follow_move_step(const StepHeader& h, const UpdateContext& ctx) {
  ARGENT_CHECK_DATA(h.payload_bytes == int64_t(sizeof(MoveStep)), "move step of ",
                    h.payload_bytes, " bytes");
  MoveStep move;
  ctx.control.broadcast(&move, sizeof move, 0);
  // The payload must be the move the header names (as a search step's sizes must be its
  // header's): a rank that misread a step fails here rather than moving the wrong partition.
  ARGENT_CHECK_DATA(move.partition == h.n, "rank ", ctx.control.rank(), ": step ", h.step, " (",
                    step_op_name(h.op), ") payload moves partition ", move.partition,
                    ", header n = ", h.n);
  run_move_step(StepOp(h.op), move, ctx, nullptr);
}

Rebalancer::Rebalancer(UpdateContext ctx, Updater& updater, ServerStats& server_stats,
                       RebalanceStatus& status, uint64_t& step_id)
    : ctx_(ctx),
      updater_(updater),
      server_stats_(server_stats),
      status_(status),
      step_id_(step_id) {
  ARGENT_ASSERT(ctx_.mover != nullptr, "rebalancer without a partition mover");
  status_.set_map(ctx_.map.epoch(), ctx_.map.owners());
}

void Rebalancer::begin_step(StepOp op, int64_t payload_bytes, int64_t n) {
  start_step(ctx_.control, ctx_.watchdog, step_id_, op, payload_bytes, 0, n);
}

void Rebalancer::end_step() {
  if (ctx_.watchdog) ctx_.watchdog->end();
}

int64_t Rebalancer::move_step(StepOp op, const MoveStep& move,
                              std::vector<int64_t>* gathered_items) {
  begin_step(op, int64_t(sizeof(MoveStep)), move.partition);
  MoveStep payload = move;
  ctx_.control.broadcast(&payload, sizeof payload, 0);
  const int64_t result = run_move_step(op, move, ctx_, gathered_items);
  end_step();
  return result;
}

void Rebalancer::run(RebalanceQueue& queue, Replier& replier) {
  while (std::optional<PendingRebalance> r = queue.pop()) {
    if (active()) {
      replier.send(r->envelope,
                   admin_reply(r->request_id, v1::UNAVAILABLE,
                               "a rebalance (" + progress_.plan + ") is running: " +
                                   std::to_string(progress_.moves_done) + " of " +
                                   std::to_string(progress_.moves_total) +
                                   " moves done; retry when it has finished"));
      continue;
    }
    start(*r, replier);
  }
  if (active()) advance();
}

void Rebalancer::start(const PendingRebalance& r, Replier& replier) {
  // Plan on current item counts: one stats step, as the periodic one.
  begin_step(StepOp::kStats, 0, 0);
  const std::vector<int64_t> gathered = gather_partition_items(ctx_.data, ctx_.worker.shard());
  end_step();
  const PartitionLoad load = partition_load(gathered, ctx_.data.size(), ctx_.map.partitions());
  status_.set_items(load.per_partition);
  std::vector<PartitionMove> moves;
  try {
    moves = plan_rebalance(ctx_.map, load.per_partition, r.request,
                           ctx_.config.serve.coordinator_serves);
  } catch (const Error& e) {
    replier.send(r.envelope, admin_reply(r.request_id, v1::INVALID_ARGUMENT, e.what()));
    return;
  }
  v1::Response reply = admin_reply(r.request_id, v1::OK, "");
  for (const PartitionMove& m : moves) {
    v1::PartitionMoveSpec* spec = reply.mutable_admin()->add_planned();
    spec->set_partition(m.partition);
    spec->set_from_rank(m.from);
    spec->set_to_rank(m.to);
  }
  reply.mutable_admin()->set_partition_map_epoch(ctx_.map.epoch());
  progress_ = RebalanceProgress{};
  progress_.plan = plan_name(r.request.plan);
  progress_.rank = r.request.rank;
  progress_.moves_total = int32_t(moves.size());
  progress_.start_epoch = ctx_.map.epoch();
  progress_.state = moves.empty() ? "done" : "running";
  if (!moves.empty()) meter_ = std::make_unique<RebalanceMeter>(int64_t(moves.size()));
  started_ = SteadyClock::now();
  moves_ = std::move(moves);
  phase_ = Phase::kBegin;
  ARGENT_LOG(kInfo, "rebalance ", progress_.plan, ": ", progress_.moves_total,
             " partition moves from map epoch ", ctx_.map.epoch());
  publish();
  replier.send(r.envelope, reply);
}

void Rebalancer::advance() {
  const PartitionMove& m = moves_.front();
  switch (phase_) {
    case Phase::kBegin: {
      move_ = MoveStep{};
      move_.partition = m.partition;
      move_.from = m.from;
      move_.to = m.to;
      progress_.bytes_total = move_step(StepOp::kMoveBegin, move_, nullptr);
      progress_.bytes_copied = 0;
      progress_.partition = m.partition;
      progress_.from = m.from;
      progress_.to = m.to;
      phase_ = Phase::kCopy;
      break;
    }
    case Phase::kCopy: {
      move_.offset = progress_.bytes_copied;
      move_.bytes = std::min<int64_t>(ctx_.config.serve.move_chunk_bytes,
                                      progress_.bytes_total - move_.offset);
      move_.last = move_.offset + move_.bytes == progress_.bytes_total ? 1 : 0;
      const int64_t ok = move_step(StepOp::kMoveChunk, move_, nullptr);
      progress_.bytes_copied += move_.bytes;
      if (!move_.last) break;
      if (!ok) {
        move_step(StepOp::kMoveAbort, move_, nullptr);
        finish("partition " + std::to_string(m.partition) + " arrived damaged on rank " +
               std::to_string(m.to) + " (see its log); the map is unchanged");
        return;
      }
      phase_ = Phase::kCommit;
      break;
    }
    case Phase::kCommit: {
      // The log belongs to its writing thread while a group is in flight: let that group finish
      // and start no other until the map record is in.
      updater_.set_paused(true);
      if (updater_.logging()) return;
      const PartitionMap next = ctx_.map.with_move(m.partition, m.to);
      try {
        updater_.log_partition_map(next);
        updater_.set_paused(false);
      } catch (const Error& e) {
        updater_.set_paused(false);
        move_step(StepOp::kMoveAbort, move_, nullptr);
        finish(std::string("cannot log the new partition map: ") + e.what());
        return;
      }
      std::vector<int64_t> gathered;
      move_step(StepOp::kMoveCommit, move_, &gathered);
      ARGENT_ASSERT(ctx_.map.epoch() == next.epoch(), "map epoch ", ctx_.map.epoch(), " != ",
                    next.epoch(), " after a commit");
      const PartitionLoad load = partition_load(gathered, ctx_.data.size(), ctx_.map.partitions());
      server_stats_.set_shards(load.per_rank, ctx_.map.by_rank());
      status_.set_items(load.per_partition);
      status_.set_map(ctx_.map.epoch(), ctx_.map.owners());
      progress_.bytes_moved += progress_.bytes_total;
      progress_.forwarded += ctx_.mover->last_forwarded();
      ++progress_.moves_done;
      if (meter_) meter_->moved(1);
      ARGENT_LOG(kInfo, "rebalance: partition ", m.partition, " moved from rank ", m.from,
                 " to rank ", m.to, " (", progress_.bytes_total, " bytes); map epoch ",
                 ctx_.map.epoch());
      moves_.erase(moves_.begin());
      phase_ = Phase::kBegin;
      if (moves_.empty()) {
        finish("");
        return;
      }
      break;
    }
  }
  publish();
}

void Rebalancer::finish(const std::string& error) {
  moves_.clear();
  meter_.reset();
  progress_.state = error.empty() ? "done" : "failed";
  progress_.error = error;
  progress_.partition = progress_.from = progress_.to = -1;
  progress_.bytes_copied = progress_.bytes_total = 0;
  if (!error.empty()) ARGENT_LOG(kError, "rebalance ", progress_.plan, " failed: ", error);
  else
    ARGENT_LOG(kInfo, "rebalance ", progress_.plan, " done: ", progress_.moves_done, " moves, ",
               progress_.bytes_moved, " bytes in ", seconds_since(started_), " s; map epoch ",
               ctx_.map.epoch());
  publish();
}

void Rebalancer::publish() {
  progress_.seconds = seconds_since(started_);
  status_.set_progress(progress_);
}

}  // namespace argent
