// `argent admin status` and `argent admin rebalance`: the partition map, per-rank load and the
// rebalance under way, from a Stats reply; and rebalance requests from the command line.
//
// ClusterStatus is the table as data (one row per rank), so a machine-readable form can be built
// from the same function as the printed one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "argent/v1/service.pb.h"

namespace argent {

struct RankStatus {
  int32_t rank = 0;
  int64_t items = 0;
  double share = 0;  // items / all items
  std::vector<int32_t> partitions;
  bool standby = false;  // holds no partition
};

struct ClusterStatus {
  uint64_t epoch = 0;
  int32_t partitions = 0;
  int64_t items = 0;
  double imbalance = 0;  // largest active rank's items / mean over active ranks (1 = even)
  std::vector<RankStatus> ranks;
  v1::RebalanceProgress rebalance;
};

ClusterStatus cluster_status(const v1::StatsResponse& stats);
// The table `argent admin status` prints: epoch, one line per rank (items, share, partitions
// as ranges), the rebalance's state and progress.
std::string format_cluster_status(const ClusterStatus& status);
// One line of rebalance progress ("running drain 3: 5/16 moves, partition 12 2->1 40% ...").
std::string format_rebalance_progress(const v1::RebalanceProgress& p);

// The AdminRequest for `argent admin rebalance ARGS...`: `even`, `drain RANK`, `activate RANK`,
// or `explicit P:RANK [P:RANK ...]`. Throws Error(kInvalidArgument) naming the bad argument.
v1::Request rebalance_request(const std::vector<std::string>& args);

}  // namespace argent
