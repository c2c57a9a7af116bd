// ServerStats and UpdateStats: the percentiles of an interval against a sort of the latencies it
// recorded, and an idle interval, which reports no rate but keeps the latencies of the last
// interval with answers (or writes).
#include "coordinator/server_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "coordinator/update_queue.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

// Nearest rank, computed apart from ServerStats: the smallest latency with at least p of them
// at or below it.
double nearest_rank(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  for (size_t i = 0; i < v.size(); ++i)
    if (double(i + 1) >= p * double(v.size())) return v[i];
  return v.back();
}

TEST(ServerStatsTest, IntervalsReportTheirPercentilesAndIdleOnesKeepTheLast) {
  test::Rng rng(test::test_seed(41));
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  ServerStats stats;
  const std::chrono::duration<double> now(0);
  int64_t answered = 0;
  for (int interval = 0; interval < 3; ++interval) {
    std::vector<double> latencies;
    for (int i = 0; i < 500 + 300 * interval; ++i)
      latencies.push_back(0.1 + 20.0 * uniform(rng) * uniform(rng));
    for (double ms : latencies) stats.record_answer(ms);
    answered += int64_t(latencies.size());
    ASSERT_TRUE(stats.roll(now));
    StatsSnapshot s = stats.snapshot();
    EXPECT_EQ(s.requests, answered);
    EXPECT_GT(s.qps, 0.0);
    EXPECT_EQ(s.p50_ms, nearest_rank(latencies, 0.50)) << "interval " << interval;
    EXPECT_EQ(s.p90_ms, nearest_rank(latencies, 0.90)) << "interval " << interval;
    EXPECT_EQ(s.p99_ms, nearest_rank(latencies, 0.99)) << "interval " << interval;

    // An idle interval: no QPS, the same percentiles.
    ASSERT_TRUE(stats.roll(now));
    const StatsSnapshot idle = stats.snapshot();
    EXPECT_EQ(idle.qps, 0.0);
    EXPECT_EQ(idle.requests, answered);
    EXPECT_EQ(idle.p50_ms, s.p50_ms);
    EXPECT_EQ(idle.p90_ms, s.p90_ms);
    EXPECT_EQ(idle.p99_ms, s.p99_ms);
  }
}

TEST(ServerStatsTest, RanksWithoutStepsKeepTheirLastMeanStepTime) {
  ServerStats stats;
  const std::chrono::duration<double> now(0);
  stats.record_rank_step(0, 2.0);
  stats.record_rank_step(0, 4.0);
  stats.record_rank_step(1, 5.0);
  ASSERT_TRUE(stats.roll(now));
  EXPECT_EQ(stats.snapshot().step_ms_per_rank, (std::vector<double>{3.0, 5.0}));
  stats.record_rank_step(1, 7.0);  // rank 0 idle
  ASSERT_TRUE(stats.roll(now));
  const StatsSnapshot s = stats.snapshot();
  EXPECT_EQ(s.steps_per_rank, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(s.step_ms_per_rank, (std::vector<double>{3.0, 7.0}));
}

TEST(ServerStatsTest, AnIntervalClosesOnlyOnceItHasPassed) {
  ServerStats stats;
  stats.record_answer(3.0);
  EXPECT_FALSE(stats.roll(std::chrono::hours(1)));
  EXPECT_EQ(stats.snapshot().p50_ms, 0.0);  // nothing closed yet
  EXPECT_EQ(stats.snapshot().requests, 1);
  EXPECT_TRUE(stats.roll(std::chrono::duration<double>(0)));
  EXPECT_EQ(stats.snapshot().p50_ms, 3.0);
}

TEST(UpdateStatsTest, VisibilityOfAnIntervalWithoutWritesIsTheLastOnes) {
  test::Rng rng(test::test_seed(42));
  std::uniform_real_distribution<double> uniform(0.0, 50.0);
  UpdateStats stats;
  const std::chrono::duration<double> now(0);
  std::vector<double> visible;
  for (int step = 0; step < 40; ++step) {
    std::vector<double> ms(size_t(1 + step % 5));
    for (double& v : ms) v = uniform(rng);
    stats.record_step(int64_t(ms.size()), step % 3, ms);
    visible.insert(visible.end(), ms.begin(), ms.end());
  }
  ASSERT_TRUE(stats.roll(now));
  const UpdateStatsSnapshot s = stats.snapshot();
  EXPECT_GT(s.upserts_per_s, 0.0);
  EXPECT_EQ(s.visible_p50_ms, nearest_rank(visible, 0.50));
  EXPECT_EQ(s.visible_p99_ms, nearest_rank(visible, 0.99));
  ASSERT_TRUE(stats.roll(now));
  const UpdateStatsSnapshot idle = stats.snapshot();
  EXPECT_EQ(idle.upserts_per_s, 0.0);
  EXPECT_EQ(idle.deletes_per_s, 0.0);
  EXPECT_EQ(idle.upserts, s.upserts);
  EXPECT_EQ(idle.visible_p50_ms, s.visible_p50_ms);
  EXPECT_EQ(idle.visible_p99_ms, s.visible_p99_ms);
}

}  // namespace
}  // namespace argent
