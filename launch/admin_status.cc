#include "launch/admin_status.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/error.h"

namespace argent {
namespace {

// "0-3,8,10-11"
std::string ranges(const std::vector<int32_t>& sorted) {
  std::ostringstream out;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    out << (i ? "," : "") << sorted[i];
    if (j > i) out << "-" << sorted[j];
    i = j + 1;
  }
  return out.str();
}

int32_t parse_int(const std::string& s, const char* what) {
  size_t used = 0;
  int value = -1;
  try {
    value = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ARGENT_CHECK(used == s.size() && !s.empty(), "admin rebalance: ", what, " '", s,
               "' is not an integer");
  return value;
}

}  // namespace

ClusterStatus cluster_status(const v1::StatsResponse& stats) {
  ClusterStatus c;
  c.epoch = stats.partition_map_epoch();
  c.partitions = stats.partition_owner_size();
  c.rebalance = stats.rebalance();
  for (const v1::ShardStats& shard : stats.shards()) {
    RankStatus r;
    r.rank = shard.rank();
    r.items = shard.items();
    r.partitions.assign(shard.partitions().begin(), shard.partitions().end());
    std::sort(r.partitions.begin(), r.partitions.end());
    r.standby = r.partitions.empty();
    c.items += r.items;
    c.ranks.push_back(std::move(r));
  }
  int64_t active = 0, largest = 0;
  for (RankStatus& r : c.ranks) {
    r.share = c.items > 0 ? double(r.items) / double(c.items) : 0;
    if (!r.standby) {
      ++active;
      largest = std::max(largest, r.items);
    }
  }
  c.imbalance = active > 0 && c.items > 0 ? double(largest) * double(active) / double(c.items) : 0;
  return c;
}

std::string format_rebalance_progress(const v1::RebalanceProgress& p) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << p.state();
  if (p.state() == "idle" || p.state().empty()) return "idle";
  out << " " << p.plan();
  if (p.plan() == "drain" || p.plan() == "activate") out << " " << p.rank();
  out << ": " << p.moves_done() << "/" << p.moves_total() << " moves";
  if (p.partition() >= 0) {
    out << ", partition " << p.partition() << " " << p.from_rank() << "->" << p.to_rank();
    if (p.bytes_total() > 0) out << " " << 100.0 * double(p.bytes_copied()) / double(p.bytes_total()) << "%";
  }
  out << ", " << p.bytes_moved() << " bytes moved, " << p.forwarded()
      << " writes forwarded, " << p.seconds() << " s (from map epoch " << p.start_epoch() << ")";
  if (!p.error().empty()) out << ": " << p.error();
  return out.str();
}

std::string format_cluster_status(const ClusterStatus& c) {
  std::ostringstream out;
  out << "partition map epoch " << c.epoch << ": " << c.partitions << " partitions, " << c.items
      << " items on " << c.ranks.size() << " ranks";
  char buf[64];
  std::snprintf(buf, sizeof buf, ", imbalance %.3f\n", c.imbalance);
  out << buf;
  out << "rank        items   share  parts  partitions\n";
  for (const RankStatus& r : c.ranks) {
    std::snprintf(buf, sizeof buf, "%4d %12lld %6.1f%% %6zu  ", r.rank, (long long)r.items,
                  100.0 * r.share, r.partitions.size());
    out << buf << (r.standby ? "(standby)" : ranges(r.partitions)) << "\n";
  }
  out << "rebalance: " << format_rebalance_progress(c.rebalance) << "\n";
  return out.str();
}

v1::Request rebalance_request(const std::vector<std::string>& args) {
  ARGENT_CHECK(!args.empty(), "admin rebalance: give a plan: even | drain RANK | activate RANK | "
                              "explicit PARTITION:RANK ...");
  v1::Request request;
  v1::AdminRequest* admin = request.mutable_admin();
  admin->set_action(v1::AdminRequest::REBALANCE);
  const std::string& plan = args[0];
  admin->set_plan(plan);
  if (plan == "even") {
    ARGENT_CHECK(args.size() == 1, "admin rebalance even: takes no argument");
  } else if (plan == "drain" || plan == "activate") {
    ARGENT_CHECK(args.size() == 2, "admin rebalance ", plan, ": give one RANK");
    admin->set_rank(parse_int(args[1], "rank"));
  } else if (plan == "explicit") {
    ARGENT_CHECK(args.size() >= 2, "admin rebalance explicit: give PARTITION:RANK moves");
    for (size_t i = 1; i < args.size(); ++i) {
      const size_t colon = args[i].find(':');
      ARGENT_CHECK(colon != std::string::npos, "admin rebalance explicit: move '", args[i],
                   "' is not PARTITION:RANK");
      v1::PartitionMoveSpec* m = admin->add_moves();
      m->set_partition(parse_int(args[i].substr(0, colon), "partition"));
      m->set_to_rank(parse_int(args[i].substr(colon + 1), "rank"));
    }
  } else {
    ARGENT_CHECK(false, "admin rebalance: unknown plan '", plan,
                 "'; one of: even, drain, activate, explicit");
  }
  return request;
}

}  // namespace argent
