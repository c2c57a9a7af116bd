// The versioned partition map and the rebalance planner, against their contracts on random maps:
// every plan is a list of moves from each partition's current owner with no partition twice;
// after it, drained ranks are empty, an activated rank serves, and the active ranks' items differ
// by at most the largest partition's. Encoding round-trips, and corrupt maps fail by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "common/error.h"
#include "coordinator/partition_map.h"
#include "coordinator/rebalance_plan.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

using test::Rng;

// Applies `moves` one by one as the rebalancer does, checking each starts at the current owner.
PartitionMap apply_moves(PartitionMap map, const std::vector<PartitionMove>& moves) {
  std::set<int32_t> seen;
  for (const PartitionMove& m : moves) {
    EXPECT_TRUE(seen.insert(m.partition).second) << "partition " << m.partition << " twice";
    EXPECT_EQ(map.rank_of(m.partition), m.from) << "partition " << m.partition;
    EXPECT_NE(m.from, m.to);
    const uint64_t epoch = map.epoch();
    map = map.with_move(m.partition, m.to);
    EXPECT_EQ(map.epoch(), epoch + 1);
  }
  return map;
}

std::vector<int64_t> loads(const PartitionMap& map, const std::vector<int64_t>& items) {
  std::vector<int64_t> out(size_t(map.ranks()), 0);
  for (int32_t p = 0; p < map.partitions(); ++p) out[size_t(map.rank_of(p))] += items[size_t(p)];
  return out;
}

// Active ranks' loads differ by at most the largest partition (the planner's guarantee).
void expect_balanced(const PartitionMap& map, const std::vector<int64_t>& items) {
  const std::vector<int64_t> load = loads(map, items);
  int64_t lo = INT64_MAX, hi = 0;
  for (int r = 0; r < map.ranks(); ++r) {
    if (map.partitions_of(r).empty()) continue;
    lo = std::min(lo, load[size_t(r)]);
    hi = std::max(hi, load[size_t(r)]);
  }
  const int64_t largest = *std::max_element(items.begin(), items.end());
  EXPECT_LE(hi - lo, largest) << "loads spread " << lo << ".." << hi;
}

TEST(PartitionMap, RoundRobinSkipsStandbyRanksAndCoordinator) {
  const PartitionMap map = PartitionMap::round_robin(10, 4, false, {3});
  EXPECT_EQ(map.epoch(), 0u);
  EXPECT_TRUE(map.partitions_of(0).empty());
  EXPECT_TRUE(map.partitions_of(3).empty());
  EXPECT_EQ(map.partitions_of(1).size(), 5u);
  EXPECT_EQ(map.partitions_of(2).size(), 5u);
  EXPECT_THROW(PartitionMap::round_robin(10, 2, false, {1}), Error);
  EXPECT_THROW(PartitionMap::round_robin(10, 3, true, {0, 1, 2}), Error);
  EXPECT_THROW(PartitionMap::round_robin(10, 3, true, {5}), Error);
}

TEST(PartitionMap, EncodeRoundTripsAndCorruptionFailsByName) {
  PartitionMap map = PartitionMap::round_robin(16, 3, true).with_move(4, 2).with_move(5, 0);
  const std::vector<uint8_t> bytes = map.encode();
  const PartitionMap back = PartitionMap::decode(bytes.data(), bytes.size(), 3, 16, "test map");
  EXPECT_EQ(back.epoch(), 2u);
  EXPECT_EQ(back.owners(), map.owners());
  // Truncated, wrong partition count, an owner this job does not have.
  EXPECT_THROW(PartitionMap::decode(bytes.data(), bytes.size() - 1, 3, 16, "t"), Error);
  EXPECT_THROW(PartitionMap::decode(bytes.data(), bytes.size(), 3, 17, "t"), Error);
  try {
    PartitionMap::decode(bytes.data(), bytes.size(), 2, 16, "test map");
    ADD_FAILURE() << "a map placing partitions on rank 2 decoded for a 2-rank job";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("start it with at least 3 ranks"), std::string::npos)
        << e.what();
  }
}

TEST(RebalancePlan, RandomMapsMeetEveryPlansContract) {
  const uint64_t seed = test::test_seed(8);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  for (int trial = 0; trial < 300; ++trial) {
    const int ranks = 2 + int(rng() % 6);
    const int32_t partitions = 1 + int32_t(rng() % 64);
    std::vector<int64_t> standby;
    for (int r = 1; r < ranks; ++r)
      if (rng() % 4 == 0) standby.push_back(r);
    PartitionMap map = PartitionMap::round_robin(partitions, ranks, true, standby);
    std::vector<int64_t> items(static_cast<size_t>(partitions));
    for (int64_t& n : items) n = int64_t(rng() % 1000) * (rng() % 8 == 0 ? 0 : 1);
    SCOPED_TRACE("trial " + std::to_string(trial));

    map = apply_moves(map, plan_rebalance(map, items, {RebalanceRequest::Plan::kEven, -1, {}}, true));
    expect_balanced(map, items);
    // Balanced already: planning again moves nothing.
    EXPECT_TRUE(plan_rebalance(map, items, {RebalanceRequest::Plan::kEven, -1, {}}, true).empty());

    if (!standby.empty()) {
      const int r = int(standby[0]);
      ASSERT_TRUE(map.partitions_of(r).empty());
      int active_before = 0;
      for (int q = 0; q < ranks; ++q) active_before += map.partitions_of(q).empty() ? 0 : 1;
      map = apply_moves(map, plan_rebalance(map, items, {RebalanceRequest::Plan::kActivate, r, {}}, true));
      // With non-empty partitions, some rank holds two, and either narrows its gap to the new
      // rank.
      const bool all_positive = std::all_of(items.begin(), items.end(), [](int64_t n) { return n > 0; });
      if (all_positive && partitions > active_before)
        EXPECT_FALSE(map.partitions_of(r).empty()) << "activated rank " << r << " got nothing";
      expect_balanced(map, items);
    }
    std::vector<int> active;
    for (int r = 0; r < ranks; ++r)
      if (!map.partitions_of(r).empty()) active.push_back(r);
    const int drained = active[size_t(rng() % active.size())];
    const RebalanceRequest drain{RebalanceRequest::Plan::kDrain, drained, {}};
    if (active.size() == 1) {
      EXPECT_THROW(plan_rebalance(map, items, drain, true), Error);
      continue;
    }
    map = apply_moves(map, plan_rebalance(map, items, drain, true));
    EXPECT_TRUE(map.partitions_of(drained).empty());
    expect_balanced(map, items);
    int32_t total = 0;
    for (int r = 0; r < ranks; ++r) total += int32_t(map.partitions_of(r).size());
    EXPECT_EQ(total, partitions);  // each partition exactly once
  }
}

TEST(RebalancePlan, ExplicitMovesAndBadRequestsAreNamed) {
  const PartitionMap map = PartitionMap::round_robin(8, 3, false);  // ranks 1 and 2 serve
  const std::vector<int64_t> items(8, 10);
  const std::vector<PartitionMove> moves =
      plan_rebalance(map, items, {RebalanceRequest::Plan::kExplicit, -1, {{1, 2}, {2, 2}}}, false);
  // Round-robin over ranks 1, 2: partition 1 is on rank 2 already, partition 2 on rank 1.
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].partition, 2);
  EXPECT_EQ(moves[0].from, 1);
  EXPECT_EQ(moves[0].to, 2);
  auto message = [&](const RebalanceRequest& r) {
    try {
      plan_rebalance(map, items, r, false);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  using P = RebalanceRequest::Plan;
  EXPECT_NE(message({P::kExplicit, -1, {{1, 2}, {1, 1}}}).find("moved twice"), std::string::npos);
  EXPECT_NE(message({P::kExplicit, -1, {{9, 1}}}).find("partition 9"), std::string::npos);
  EXPECT_NE(message({P::kExplicit, -1, {{1, 0}}}).find("coordinator_serves"), std::string::npos);
  EXPECT_NE(message({P::kActivate, 0, {}}).find("coordinator_serves"), std::string::npos);
  EXPECT_NE(message({P::kActivate, 1, {}}).find("already serves"), std::string::npos);
  EXPECT_NE(message({P::kDrain, 7, {}}).find("outside [0, 3)"), std::string::npos);
  EXPECT_NE(message({P::kExplicit, -1, {}}).find("no moves"), std::string::npos);
  EXPECT_EQ(parse_plan("drain"), P::kDrain);
  EXPECT_THROW(parse_plan("shuffle"), Error);
}

}  // namespace
}  // namespace argent
