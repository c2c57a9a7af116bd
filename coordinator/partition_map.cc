#include "coordinator/partition_map.h"

#include <algorithm>

#include "common/byte_codec.h"
#include "common/error.h"

namespace argent {

PartitionMap PartitionMap::round_robin(int32_t partitions, int ranks, bool coordinator_serves,
                                       const std::vector<int64_t>& standby_ranks) {
  ARGENT_CHECK(ranks >= 1, "partition map: ", ranks, " ranks");
  ARGENT_CHECK(coordinator_serves || ranks >= 2,
               "serve.coordinator_serves = false needs at least 2 ranks, the job has ", ranks);
  for (int64_t r : standby_ranks)
    ARGENT_CHECK(r >= 0 && r < ranks, "serve.standby_ranks: rank ", r, " is outside [0, ", ranks,
                 ") of this job");
  std::vector<int> serving;
  for (int r = coordinator_serves ? 0 : 1; r < ranks; ++r)
    if (std::find(standby_ranks.begin(), standby_ranks.end(), int64_t(r)) == standby_ranks.end())
      serving.push_back(r);
  ARGENT_CHECK(!serving.empty(), "partition map: every one of the ", ranks,
               " ranks is a standby rank (serve.standby_ranks) or the non-serving coordinator");
  std::vector<int> owners(static_cast<size_t>(partitions));
  for (int32_t p = 0; p < partitions; ++p) owners[size_t(p)] = serving[size_t(p) % serving.size()];
  return from_owners(std::move(owners), ranks, 0);
}

PartitionMap PartitionMap::from_owners(std::vector<int> owners, int ranks, uint64_t epoch) {
  PartitionMap map;
  map.partitions_ = int32_t(owners.size());
  map.epoch_ = epoch;
  map.owner_ = std::move(owners);
  for (size_t p = 0; p < map.owner_.size(); ++p)
    ARGENT_CHECK(map.owner_[p] >= 0 && map.owner_[p] < ranks, "partition map: partition ", p,
                 " on rank ", map.owner_[p], ", outside [0, ", ranks, ")");
  map.index_by_rank(ranks);
  return map;
}

void PartitionMap::index_by_rank(int ranks) {
  by_rank_.assign(size_t(ranks), {});
  for (int32_t p = 0; p < partitions_; ++p) by_rank_[size_t(owner_[size_t(p)])].push_back(p);
}

PartitionMap PartitionMap::with_move(int32_t partition, int rank) const {
  ARGENT_CHECK(partition >= 0 && partition < partitions_, "partition map: partition ", partition,
               " outside [0, ", partitions_, ")");
  std::vector<int> owners = owner_;
  owners[size_t(partition)] = rank;
  return from_owners(std::move(owners), ranks(), epoch_ + 1);
}

std::vector<uint8_t> PartitionMap::encode() const {
  ByteWriter w;
  w.put<uint64_t>(epoch_);
  w.put<int32_t>(partitions_);
  for (int owner : owner_) w.put<int32_t>(int32_t(owner));
  return w.take();
}

PartitionMap PartitionMap::decode(const uint8_t* data, size_t size, int ranks, int32_t partitions,
                                  const std::string& what) {
  ByteReader r(data, size, what);
  const uint64_t epoch = r.get<uint64_t>();
  const int32_t n = r.get<int32_t>();
  ARGENT_CHECK_DATA(n == partitions, what, ": partition map of ", n,
                    " partitions, the index has ", partitions);
  const std::vector<int32_t> owners32 = r.get_array<int32_t>(n);
  ARGENT_CHECK_DATA(r.done(), what, ": ", r.left(), " trailing bytes after the partition map");
  std::vector<int> owners(owners32.begin(), owners32.end());
  for (int32_t p = 0; p < n; ++p)
    ARGENT_CHECK_DATA(owners[size_t(p)] >= 0 && owners[size_t(p)] < ranks, what,
                      ": partition map epoch ", epoch, " places partition ", p, " on rank ",
                      owners[size_t(p)], ", but the job has ", ranks,
                      " ranks; start it with at least ", owners[size_t(p)] + 1, " ranks");
  return from_owners(std::move(owners), ranks, epoch);
}

}  // namespace argent
