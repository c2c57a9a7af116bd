// Cluster faults on a real 3-rank CPU cluster (mpirun -np 3 argent serve) under `argent
// supervise`, with a 1 s step deadline, while a client keeps searches in flight:
//   - SIGKILL of a shard rank during the search steps (their all-gathers),
//   - SIGSTOP of a shard rank for twice the deadline, then SIGCONT,
//   - a rank that answers with a different k (fault injection, coordinator/fault_injection.h).
// In each case every request gets its reply — a result equal to the single-process search, or
// UNAVAILABLE naming the rank — within the deadline plus one second; every process of the
// failed job is gone within a grace period; and (kill, stop) the supervisor brings the cluster
// back on the same endpoint, where it answers exactly as the single-process search again.
#include <gtest/gtest.h>

#include <future>

#include "fault/cluster_harness.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "tests/util/index_util.h"

namespace argent::fault {
namespace {

constexpr int kDim = 16;
constexpr int64_t kItems = 3000;
constexpr int64_t kK = 10;
constexpr int kQueries = 48;
constexpr int kWindow = 4;  // searches in flight

struct Reference {
  std::vector<v1::SearchRequest> requests;
  SearchResults want;  // [kQueries, kK] of the single-process exact search
};

// An index in `dir`/index, and random exact queries with their single-process answers.
Reference build(const test::TempDir& dir, uint64_t seed) {
  test::Rng rng(seed);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < kItems; ++i) ids.push_back(i * 7 + 3);
  const ItemSet items = test::random_items(rng, kItems, kDim, ids, 3, 4, 0.3);
  build_index(items, test::small_index_config(9, 16), dir.path() + "/index");
  Reference ref;
  const std::vector<float> x = test::random_normal(rng, size_t(kQueries) * kDim);
  const LocalEngine engine = LocalEngine::open(dir.path() + "/index", Config{});
  SearchOptions opts;
  opts.k = kK;
  opts.exact = true;
  ref.want = engine.search(x.data(), kQueries, kDim, {}, opts);
  for (int q = 0; q < kQueries; ++q) {
    v1::SearchRequest r;
    r.mutable_embedding()->Add(x.begin() + q * kDim, x.begin() + (q + 1) * kDim);
    r.set_k(int32_t(kK));
    r.set_exact(true);
    ref.requests.push_back(r);
  }
  return ref;
}

::testing::AssertionResult matches(const Reference& ref, size_t q, const v1::SearchResponse& got) {
  if (got.ids_size() != kK)
    return ::testing::AssertionFailure() << "query " << q << ": " << got.ids_size() << " ids";
  for (int64_t i = 0; i < kK; ++i) {
    if (got.ids(int(i)) != ref.want.ids[q * kK + size_t(i)] ||
        got.scores(int(i)) != ref.want.scores[q * kK + size_t(i)])
      return ::testing::AssertionFailure()
             << "query " << q << " rank " << i << ": id " << got.ids(int(i)) << " score "
             << got.scores(int(i)) << ", single-process id " << ref.want.ids[q * kK + size_t(i)];
  }
  return ::testing::AssertionSuccess();
}

// Every request of a load answered within the bound, OK ones correct; returns the UNAVAILABLE
// messages.
std::vector<std::string> check_load(const Reference& ref, const std::vector<TimedReply>& load) {
  std::vector<std::string> unavailable;
  for (const TimedReply& t : load) {
    EXPECT_TRUE(t.reply.has_value()) << "request " << t.request_id << " got no reply within "
                                     << kReplyBound.count() << " ms";
    if (!t.reply) continue;
    EXPECT_LE(t.received - t.sent, kReplyBound) << "request " << t.request_id;
    EXPECT_TRUE(t.reply->has_search()) << t.reply->DebugString();
    if (!t.reply->has_search()) continue;
    const v1::SearchResponse& s = t.reply->search();
    if (s.status().code() == v1::OK) {
      EXPECT_TRUE(matches(ref, t.query, s));
    } else {
      EXPECT_EQ(s.status().code(), v1::UNAVAILABLE) << s.status().message();
      unavailable.push_back(s.status().message());
    }
  }
  return unavailable;
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

enum class Fault { kKill, kStop };

void run_rank_fault(Fault fault) {
  const uint64_t seed = test::test_seed(fault == Fault::kKill ? 101 : 202);
  SCOPED_TRACE(test::seed_note(seed));
  test::TempDir dir;
  const Reference ref = build(dir, seed);
  const std::string endpoint = "ipc://" + dir.path() + "/gateway.sock";
  const std::string config = dir.path() + "/serve.yaml";
  std::ofstream(config) << serve_yaml(dir.path() + "/index", endpoint);
  testing::MpiJob supervisor(supervise_argv(endpoint, config), dir.path() + "/supervise.log");
  ASSERT_TRUE(supervisor.started());
  ASSERT_TRUE(Client(endpoint).wait_until_healthy(milliseconds(60000))) << supervisor.log();
  const std::map<int, pid_t> ranks = wait_for_ranks(supervisor.pid(), milliseconds(10000));
  ASSERT_EQ(ranks.size(), 3u) << supervisor.log();
  std::vector<pid_t> old_job = testing::MpiJob::descendants(supervisor.pid());
  const pid_t victim = ranks.at(2);

  // Load, then the fault while searches are in flight.
  Client client(endpoint);
  const auto load_start = Clock::now();
  auto load = std::async(std::launch::async, [&] {
    // Bounded, so that a fault that goes unnoticed fails the test instead of hanging it.
    return run_search_load(client, ref.requests, kWindow, [&] {
      return Clock::now() - load_start > std::chrono::seconds(60);
    });
  });
  std::this_thread::sleep_for(milliseconds(800));
  const auto fault_at = Clock::now();
  kill(victim, fault == Fault::kKill ? SIGKILL : SIGSTOP);
  const std::vector<TimedReply> replies = load.get();
  const std::vector<std::string> unavailable = check_load(ref, replies);
  ASSERT_FALSE(unavailable.empty()) << "the fault went unnoticed\n" << supervisor.log();
  // The failure names the rank.
  bool named = false;
  for (const std::string& m : unavailable) named |= m.find("rank 2 ") != std::string::npos;
  EXPECT_TRUE(named) << unavailable.front();
  Clock::time_point detected = Clock::time_point::max();
  for (const TimedReply& t : replies)
    if (t.reply && t.reply->search().status().code() == v1::UNAVAILABLE)
      detected = std::min(detected, t.received);
  if (fault == Fault::kStop) {
    std::this_thread::sleep_for(milliseconds(2 * kStepTimeoutMs) - (Clock::now() - fault_at));
    kill(victim, SIGCONT);
  }
  // No process of the failed job outlives the grace period.
  EXPECT_EQ(wait_gone(old_job, kProcessesGoneWithin), std::vector<pid_t>{})
      << "left behind\n" << supervisor.log();

  // The supervisor restarts it on the same endpoint: correct answers again.
  Client after(endpoint);
  ASSERT_TRUE(after.wait_until_healthy(milliseconds(60000))) << supervisor.log();
  Clock::time_point recovered;
  for (size_t q = 0; q < ref.requests.size(); ++q) {
    const v1::SearchResponse got = after.search(ref.requests[q], milliseconds(30000));
    if (q == 0) recovered = Clock::now();
    ASSERT_EQ(got.status().code(), v1::OK) << got.status().message();
    EXPECT_TRUE(matches(ref, q, got));
  }
  EXPECT_NE(supervisor.log().find("restart 1 in"), std::string::npos) << supervisor.log();
  std::printf("%s: detection %.0f ms (first UNAVAILABLE), time to first answer after the fault "
              "%.0f ms; %zu requests, %zu UNAVAILABLE; first: %s\n",
              fault == Fault::kKill ? "SIGKILL rank 2" : "SIGSTOP rank 2",
              ms_between(fault_at, detected), ms_between(fault_at, recovered), replies.size(),
              unavailable.size(), unavailable.front().c_str());

  // A clean stop leaves nothing behind either.
  const std::vector<pid_t> job = testing::MpiJob::descendants(supervisor.pid());
  EXPECT_TRUE(supervisor.stop(SIGTERM, std::chrono::seconds(30))) << supervisor.log();
  EXPECT_EQ(wait_gone(job, kProcessesGoneWithin), std::vector<pid_t>{});
}

TEST(ClusterFault, ShardKilledDuringSearchStepsIsReportedAndRestarted) {
  run_rank_fault(Fault::kKill);
}

TEST(ClusterFault, ShardStoppedForTwiceTheDeadlineIsReportedAndRestarted) {
  run_rank_fault(Fault::kStop);
}

// Rank 2 answers with k + 1 in its block: the coordinator's check names it and both values,
// every request is answered UNAVAILABLE, and the job ends (no process left).
TEST(ClusterFault, RankAnsweringADifferentKIsCaught) {
  const uint64_t seed = test::test_seed(303);
  SCOPED_TRACE(test::seed_note(seed));
  test::TempDir dir;
  const Reference ref = build(dir, seed);
  const std::string endpoint = "ipc://" + dir.path() + "/gateway.sock";
  const std::string config = dir.path() + "/serve.yaml";
  std::ofstream(config) << serve_yaml(dir.path() + "/index", endpoint);
  setenv("ARGENT_FAULT_INJECT", "wrong_k:2", 1);
  testing::MpiJob job(serve_argv(config), dir.path() + "/serve.log");
  unsetenv("ARGENT_FAULT_INJECT");
  ASSERT_TRUE(job.started());
  ASSERT_TRUE(Client(endpoint).wait_until_healthy(milliseconds(60000))) << job.log();
  const std::vector<pid_t> processes = testing::MpiJob::descendants(job.pid());
  Client client(endpoint);
  const std::vector<TimedReply> replies =
      run_search_load(client, ref.requests, kWindow, [] { return false; });
  const std::vector<std::string> unavailable = check_load(ref, replies);
  ASSERT_FALSE(unavailable.empty()) << job.log();
  for (const TimedReply& t : replies)
    EXPECT_NE(t.reply->search().status().code(), v1::OK) << "a diverged rank's block was merged";
  const std::string want = "with k = " + std::to_string(kK + 1) + ", expected k = " +
                           std::to_string(kK);
  EXPECT_NE(unavailable.front().find("rank 2 answered step"), std::string::npos)
      << unavailable.front();
  EXPECT_NE(unavailable.front().find(want), std::string::npos) << unavailable.front();
  EXPECT_TRUE(job.stop(0, std::chrono::seconds(10))) << "the job did not end\n" << job.log();
  EXPECT_EQ(wait_gone(processes, kProcessesGoneWithin), std::vector<pid_t>{});
  std::printf("diverged rank: %s\n", unavailable.front().c_str());
}

}  // namespace
}  // namespace argent::fault
