// Which rank serves which partitions, and since when: a versioned partition map.
//
// The map of a fresh job deals the partitions round-robin over its serving ranks (every rank, or
// every rank but 0 when the coordinator does not serve, minus the standby ranks `mpirun` started
// to take load later), so each rank's share differs by at most one partition. A rebalance
// (coordinator/rebalancer.h) changes it one partition move at a time; every change makes a new
// map with the next epoch. The map travels as bytes (encode/decode): in the write-ahead log, in
// the snapshot pointer and in the start-up broadcast from rank 0 (docs/architecture.md,
// "Rebalancing").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace argent {

class PartitionMap {
 public:
  // Throws Error(kInvalidArgument) when no rank would serve (every rank standby, or only rank 0
  // left with coordinator_serves false) or a standby rank is outside [0, ranks).
  static PartitionMap round_robin(int32_t partitions, int ranks, bool coordinator_serves,
                                  const std::vector<int64_t>& standby_ranks = {});
  // A map with the given owner of each partition. Throws Error(kInvalidArgument) when an owner
  // is outside [0, ranks).
  static PartitionMap from_owners(std::vector<int> owners, int ranks, uint64_t epoch);

  int ranks() const { return int(by_rank_.size()); }
  int32_t partitions() const { return partitions_; }
  uint64_t epoch() const { return epoch_; }
  const std::vector<int32_t>& partitions_of(int rank) const { return by_rank_[size_t(rank)]; }
  int rank_of(int32_t partition) const { return owner_[size_t(partition)]; }
  const std::vector<int>& owners() const { return owner_; }
  std::vector<std::vector<int32_t>> by_rank() const { return by_rank_; }

  // The map after moving `partition` to `rank`, with the next epoch.
  PartitionMap with_move(int32_t partition, int rank) const;

  // epoch | partitions | owner of each partition (int32). decode checks every owner against
  // `ranks` and the partition count against `partitions`; throws Error(kDataLoss) naming `what`.
  std::vector<uint8_t> encode() const;
  static PartitionMap decode(const uint8_t* data, size_t size, int ranks, int32_t partitions,
                             const std::string& what);

 private:
  void index_by_rank(int ranks);

  int32_t partitions_ = 0;
  uint64_t epoch_ = 0;
  std::vector<std::vector<int32_t>> by_rank_;
  std::vector<int> owner_;
};

}  // namespace argent
