// Rebalance plans: which partitions to move where (docs/architecture.md, "Rebalancing").
//
//   even          equal items per active rank (a rank is active when it holds a partition)
//   drain R       empty rank R onto the other active ranks, evenly, before taking it away
//   activate R    start using rank R (a standby rank, holding nothing) and even out the load
//   explicit      a list of (partition, destination rank)
//
// Every plan is a list of moves, each from the partition's current owner, with no partition
// twice; the rebalancer carries them out one at a time. The planner balances by items, which the
// coordinator knows per partition from the stats steps.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/partition_map.h"

namespace argent {

struct PartitionMove {
  int32_t partition = 0;
  int from = 0;
  int to = 0;
};

struct RebalanceRequest {
  enum class Plan { kEven, kDrain, kActivate, kExplicit };
  Plan plan = Plan::kEven;
  int rank = -1;                                  // kDrain, kActivate
  std::vector<std::pair<int32_t, int>> moves;     // kExplicit: (partition, destination)
};

// "even", "drain", "activate", "explicit"; and back. Throws Error(kInvalidArgument).
std::string plan_name(RebalanceRequest::Plan plan);
RebalanceRequest::Plan parse_plan(const std::string& name);

// The moves that carry out `request` on `map`, given the live items of each partition
// ([map.partitions()]). `coordinator_serves` false keeps partitions off rank 0. Throws
// Error(kInvalidArgument) naming the problem (a rank outside the job, draining the last active
// rank, activating a rank that already serves, a partition moved twice...). An empty result
// means the map already satisfies the plan.
std::vector<PartitionMove> plan_rebalance(const PartitionMap& map,
                                          const std::vector<int64_t>& items_per_partition,
                                          const RebalanceRequest& request,
                                          bool coordinator_serves);

}  // namespace argent
