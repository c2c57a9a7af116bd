#include "coordinator/rebalance_plan.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "common/error.h"

namespace argent {
namespace {

std::vector<int> active_ranks(const PartitionMap& map) {
  std::vector<int> out;
  for (int r = 0; r < map.ranks(); ++r)
    if (!map.partitions_of(r).empty()) out.push_back(r);
  return out;
}

// Moves every partition onto `targets` and evens their items: first the partitions of ranks
// outside `targets`, largest first, each onto the least loaded target; then single moves that
// narrow the spread (below). With equal partitions this ends with shares that differ by at most
// one partition.
std::vector<PartitionMove> balance_onto(const PartitionMap& map, const std::vector<int64_t>& items,
                                        const std::vector<int>& targets) {
  std::vector<int> owner = map.owners();
  std::vector<int64_t> load(size_t(map.ranks()), 0);
  const std::set<int> target_set(targets.begin(), targets.end());
  std::vector<int32_t> homeless;
  for (int32_t p = 0; p < map.partitions(); ++p) {
    if (target_set.count(owner[size_t(p)]))
      load[size_t(owner[size_t(p)])] += items[size_t(p)];
    else
      homeless.push_back(p);
  }
  // Ties by rank and by partition id: the plan is a function of its inputs.
  auto least_loaded = [&] {
    return *std::min_element(targets.begin(), targets.end(), [&](int a, int b) {
      return std::make_pair(load[size_t(a)], a) < std::make_pair(load[size_t(b)], b);
    });
  };

  std::stable_sort(homeless.begin(), homeless.end(), [&](int32_t a, int32_t b) {
    return items[size_t(a)] > items[size_t(b)];
  });
  for (int32_t p : homeless) {
    const int to = least_loaded();
    owner[size_t(p)] = to;
    load[size_t(to)] += items[size_t(p)];
  }
  // Then the move that lowers the sum of squared loads the most: partition p (s items) from
  // rank d to the least loaded rank lo lowers it by 2·s·(load[d] − load[lo] − s), a gain when
  // 0 < s < load[d] − load[lo]. Each move is a strict gain, so this ends; at the end the most
  // loaded rank holds no partition smaller than its gap to the least loaded one, which bounds
  // the spread by the largest partition. The round bound is only a safety net.
  for (int64_t round = 0; round < int64_t(map.partitions()) * map.partitions() + 16; ++round) {
    const int lo = least_loaded();
    int32_t best = -1;
    int64_t best_gain = 0;
    for (int32_t p = 0; p < map.partitions(); ++p) {
      const int d = owner[size_t(p)];
      const int64_t s = items[size_t(p)], gap = load[size_t(d)] - load[size_t(lo)];
      if (d == lo || s <= 0 || s >= gap) continue;
      const int64_t gain = s * (gap - s);
      if (gain > best_gain) {
        best_gain = gain;
        best = p;
      }
    }
    if (best < 0) break;
    const int from = owner[size_t(best)];
    owner[size_t(best)] = lo;
    load[size_t(from)] -= items[size_t(best)];
    load[size_t(lo)] += items[size_t(best)];
  }
  std::vector<PartitionMove> moves;
  for (int32_t p = 0; p < map.partitions(); ++p)
    if (owner[size_t(p)] != map.rank_of(p)) moves.push_back({p, map.rank_of(p), owner[size_t(p)]});
  return moves;
}

void check_rank(const PartitionMap& map, int rank, bool coordinator_serves, const char* plan) {
  ARGENT_CHECK(rank >= 0 && rank < map.ranks(), "rebalance ", plan, ": rank ", rank,
               " is outside [0, ", map.ranks(), ") of this job");
  ARGENT_CHECK(rank != 0 || coordinator_serves, "rebalance ", plan,
               ": rank 0 is the coordinator and serve.coordinator_serves is false");
}

}  // namespace

std::string plan_name(RebalanceRequest::Plan plan) {
  switch (plan) {
    case RebalanceRequest::Plan::kEven: return "even";
    case RebalanceRequest::Plan::kDrain: return "drain";
    case RebalanceRequest::Plan::kActivate: return "activate";
    case RebalanceRequest::Plan::kExplicit: return "explicit";
  }
  return "?";
}

RebalanceRequest::Plan parse_plan(const std::string& name) {
  for (auto plan : {RebalanceRequest::Plan::kEven, RebalanceRequest::Plan::kDrain,
                    RebalanceRequest::Plan::kActivate, RebalanceRequest::Plan::kExplicit})
    if (plan_name(plan) == name) return plan;
  ARGENT_CHECK(false, "rebalance: unknown plan '", name,
               "'; one of: even, drain, activate, explicit");
  return RebalanceRequest::Plan::kEven;
}

std::vector<PartitionMove> plan_rebalance(const PartitionMap& map,
                                          const std::vector<int64_t>& items,
                                          const RebalanceRequest& request,
                                          bool coordinator_serves) {
  ARGENT_CHECK(int64_t(items.size()) == map.partitions(), "rebalance: ", items.size(),
               " item counts for ", map.partitions(), " partitions");
  std::vector<int> active = active_ranks(map);
  switch (request.plan) {
    case RebalanceRequest::Plan::kEven:
      return balance_onto(map, items, active);
    case RebalanceRequest::Plan::kDrain: {
      check_rank(map, request.rank, true, "drain");
      active.erase(std::remove(active.begin(), active.end(), request.rank), active.end());
      ARGENT_CHECK(!active.empty(), "rebalance drain: rank ", request.rank,
                   " is the last rank holding partitions; activate another rank first");
      return balance_onto(map, items, active);
    }
    case RebalanceRequest::Plan::kActivate: {
      check_rank(map, request.rank, coordinator_serves, "activate");
      ARGENT_CHECK(map.partitions_of(request.rank).empty(), "rebalance activate: rank ",
                   request.rank, " already serves ", map.partitions_of(request.rank).size(),
                   " partitions; use 'even' to balance active ranks");
      active.push_back(request.rank);
      std::sort(active.begin(), active.end());
      return balance_onto(map, items, active);
    }
    case RebalanceRequest::Plan::kExplicit: {
      ARGENT_CHECK(!request.moves.empty(), "rebalance explicit: no moves given");
      std::set<int32_t> seen;
      std::vector<PartitionMove> moves;
      for (const auto& [p, to] : request.moves) {
        ARGENT_CHECK(p >= 0 && p < map.partitions(), "rebalance explicit: partition ", p,
                     " is outside [0, ", map.partitions(), ")");
        ARGENT_CHECK(seen.insert(p).second, "rebalance explicit: partition ", p,
                     " is moved twice");
        check_rank(map, to, coordinator_serves, "explicit");
        if (map.rank_of(p) != to) moves.push_back({p, map.rank_of(p), to});
      }
      return moves;
    }
  }
  return {};
}

}  // namespace argent
