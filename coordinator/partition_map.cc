#include "coordinator/partition_map.h"

#include "common/error.h"

namespace argent {

PartitionMap PartitionMap::round_robin(int32_t partitions, int ranks, bool coordinator_serves) {
  ARGENT_CHECK(ranks >= 1, "partition map: ", ranks, " ranks");
  ARGENT_CHECK(coordinator_serves || ranks >= 2,
               "serve.coordinator_serves = false needs at least 2 ranks, the job has ", ranks);
  const int first = coordinator_serves ? 0 : 1;
  const int serving = ranks - first;
  PartitionMap map;
  map.partitions_ = partitions;
  map.by_rank_.resize(size_t(ranks));
  map.owner_.resize(size_t(partitions));
  for (int32_t p = 0; p < partitions; ++p) {
    const int rank = first + int(p % serving);
    map.by_rank_[size_t(rank)].push_back(p);
    map.owner_[size_t(p)] = rank;
  }
  return map;
}

}  // namespace argent
