// Which rank serves which partitions. The default map deals partitions round-robin over the
// serving ranks (every rank, or every rank but 0 when the coordinator does not serve), so each
// rank's share differs by at most one partition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace argent {

class PartitionMap {
 public:
  // Throws Error(kInvalidArgument) when no rank would serve.
  static PartitionMap round_robin(int32_t partitions, int ranks, bool coordinator_serves);

  int ranks() const { return int(by_rank_.size()); }
  int32_t partitions() const { return partitions_; }
  const std::vector<int32_t>& partitions_of(int rank) const { return by_rank_[size_t(rank)]; }
  int rank_of(int32_t partition) const { return owner_[size_t(partition)]; }

 private:
  int32_t partitions_ = 0;
  std::vector<std::vector<int32_t>> by_rank_;
  std::vector<int> owner_;
};

}  // namespace argent
