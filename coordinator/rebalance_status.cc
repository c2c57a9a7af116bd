#include "coordinator/rebalance_status.h"

#include "common/error.h"

namespace argent {

bool RebalanceQueue::push(PendingRebalance r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!closed_.empty()) return false;
  queue_.push_back(std::move(r));
  return true;
}

std::optional<PendingRebalance> RebalanceQueue::pop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_.empty()) return std::nullopt;
  PendingRebalance r = std::move(queue_.front());
  queue_.pop_front();
  return r;
}

std::vector<PendingRebalance> RebalanceQueue::close(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_.empty()) closed_ = reason.empty() ? "closed" : reason;
  std::vector<PendingRebalance> out(std::make_move_iterator(queue_.begin()),
                                    std::make_move_iterator(queue_.end()));
  queue_.clear();
  return out;
}

std::string RebalanceQueue::closed_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

void RebalanceStatus::set_map(uint64_t epoch, std::vector<int> owners) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.epoch = epoch;
  s_.owners = std::move(owners);
}

void RebalanceStatus::set_items(std::vector<int64_t> items_per_partition) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.items_per_partition = std::move(items_per_partition);
}

void RebalanceStatus::set_progress(const RebalanceProgress& progress) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.progress = progress;
}

RebalanceSnapshot RebalanceStatus::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return s_;
}

void fill_rebalance_stats(const RebalanceSnapshot& s, v1::StatsResponse* out) {
  out->set_partition_map_epoch(s.epoch);
  for (int owner : s.owners) out->add_partition_owner(owner);
  for (int64_t n : s.items_per_partition) out->add_partition_items(n);
  v1::RebalanceProgress* p = out->mutable_rebalance();
  const RebalanceProgress& g = s.progress;
  p->set_state(g.state);
  p->set_plan(g.plan);
  p->set_rank(g.rank);
  p->set_moves_total(g.moves_total);
  p->set_moves_done(g.moves_done);
  p->set_partition(g.partition);
  p->set_from_rank(g.from);
  p->set_to_rank(g.to);
  p->set_bytes_copied(g.bytes_copied);
  p->set_bytes_total(g.bytes_total);
  p->set_bytes_moved(g.bytes_moved);
  p->set_forwarded(g.forwarded);
  p->set_seconds(g.seconds);
  p->set_start_epoch(g.start_epoch);
  p->set_error(g.error);
}

std::string parse_rebalance_request(const v1::AdminRequest& admin, RebalanceRequest* out) {
  try {
    out->plan = parse_plan(admin.plan());
  } catch (const Error& e) {
    return e.what();
  }
  out->rank = admin.rank();
  if (out->plan == RebalanceRequest::Plan::kExplicit) {
    if (admin.moves_size() == 0) return "rebalance explicit: no moves given";
    for (const v1::PartitionMoveSpec& m : admin.moves())
      out->moves.emplace_back(m.partition(), m.to_rank());
  } else if (admin.moves_size() > 0) {
    return "rebalance " + admin.plan() + ": moves are only for the explicit plan";
  }
  return "";
}

}  // namespace argent
