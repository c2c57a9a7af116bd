// The partition map a restarted job serves (recover_partition_map): the last map record of the
// log after the snapshot wins, and only that map has to fit the job's ranks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "coordinator/partition_map.h"
#include "coordinator/updater.h"

namespace argent {
namespace {

constexpr int32_t kPartitions = 8;

WalRecord map_record(uint64_t sequence, const PartitionMap& map) {
  return WalRecord{sequence, encode_map_record(map)};
}

class MapRecovery : public ::testing::Test {
 protected:
  MapRecovery() { meta_.partitions = kPartitions; }
  // A 4-rank job's history: round-robin over ranks 0..3, then rank 3 drained onto ranks 0..2.
  void drained_history() {
    const PartitionMap four = PartitionMap::round_robin(kPartitions, 4, true);
    PartitionMap drained = four;
    for (int p : four.partitions_of(3)) drained = drained.with_move(p, p % 3);
    snapshot_.sequence = 5;
    snapshot_.dir = "snapshot-5";
    snapshot_.map_owners = four.owners();
    snapshot_.map_epoch = four.epoch();
    // Record 7 is the drain half done: partition 7 is still on rank 3.
    recovery_.records = {map_record(3, four), map_record(7, four.with_move(3, 0)),
                         map_record(9, drained)};
    drained_ = drained;
  }
  Config config_;
  IndexMeta meta_;
  SnapshotPointer snapshot_;
  WalRecovery recovery_;
  PartitionMap drained_ = PartitionMap::round_robin(kPartitions, 3, true);
};

TEST_F(MapRecovery, AJobShrunkByADrainRestartsOnFewerRanks) {
  drained_history();
  // The snapshot and records 3 and 7 place partitions on rank 3; the last record, 9, does not.
  const PartitionMap map = recover_partition_map(config_, meta_, 3, snapshot_, recovery_);
  EXPECT_EQ(map.owners(), drained_.owners());
  EXPECT_EQ(map.epoch(), drained_.epoch());
  EXPECT_TRUE(map.partitions_of(2).size() > 0);
}

TEST_F(MapRecovery, TheMapInForceMustFitTheRanks) {
  drained_history();
  try {
    recover_partition_map(config_, meta_, 2, snapshot_, recovery_);
    ADD_FAILURE() << "a map placing partitions on rank 2 was served by a 2-rank job";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("write-ahead log record 9"), std::string::npos) << what;
    EXPECT_NE(what.find("start it with at least 3 ranks"), std::string::npos) << what;
  }
  // Without log records after it, the snapshot's own map is the one in force.
  recovery_.records.resize(1);  // record 3 is older than the snapshot
  try {
    recover_partition_map(config_, meta_, 3, snapshot_, recovery_);
    ADD_FAILURE() << "the snapshot's map on 4 ranks was served by a 3-rank job";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("snapshot snapshot-5"), std::string::npos) << e.what();
  }
  EXPECT_EQ(recover_partition_map(config_, meta_, 4, snapshot_, recovery_).owners(),
            snapshot_.map_owners);
}

}  // namespace
}  // namespace argent
