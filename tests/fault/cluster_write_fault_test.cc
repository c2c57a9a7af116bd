// The coordinator (rank 0) is SIGKILLed in the middle of a stream of upserts and deletes, on a
// 3-rank CPU cluster under `argent supervise`. The client observes the failure through its own
// deadline (deadline plus one second: the coordinator can no longer answer); every process of
// the job is gone within a grace period; the supervisor restarts the cluster on the same
// endpoint, which recovers from its snapshot and log; no acknowledged upsert or delete is lost
// (checked against the client's own log of acks), and exact searches equal a single-process
// search of a fresh build of the recovered item set.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <set>

#include "fault/cluster_harness.h"
#include "serving/item_model.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "tests/util/index_util.h"

namespace argent::fault {
namespace {

constexpr int kDim = 10;
constexpr int64_t kBaseItems = 2000;
constexpr int kWindow = 4;          // writes in flight
constexpr int kAckedBeforeKill = 120;

// One write of the stream; every id is written at most once, so its presence after recovery
// tells whether the write is in the index.
struct Write {
  bool upsert = true;
  test::Model items;         // upsert: new ids
  std::vector<int64_t> ids;  // delete: built ids
  bool acked = false;
};

v1::Request to_request(const Write& w) {
  return w.upsert ? test::upsert_request(w.items) : test::delete_request(w.ids);
}

TEST(ClusterFault, CoordinatorKilledMidStreamLosesNoAcknowledgedWrite) {
  const uint64_t seed = test::test_seed(404);
  SCOPED_TRACE(test::seed_note(seed));
  test::Rng rng(seed);
  test::TempDir dir;
  test::Model base;
  for (int64_t id = 0; id < kBaseItems; ++id)
    base[id] = test::random_model_item(rng, kDim, 3, 4, id, 0);
  build_index(test::to_item_set(base, kDim), test::small_index_config(9, 16),
              dir.path() + "/index");
  const std::string endpoint = "ipc://" + dir.path() + "/gateway.sock";
  const std::string config = dir.path() + "/serve.yaml";
  // A small log limit: a snapshot is taken during the stream, so recovery loads it and then
  // replays the log after it.
  std::ofstream(config) << serve_yaml(dir.path() + "/index", endpoint)
                        << "updates:\n  snapshot_wal_bytes: 20000\n";
  testing::MpiJob supervisor(supervise_argv(endpoint, config), dir.path() + "/supervise.log");
  ASSERT_TRUE(supervisor.started());
  ASSERT_TRUE(Client(endpoint).wait_until_healthy(milliseconds(60000))) << supervisor.log();
  const std::map<int, pid_t> ranks = wait_for_ranks(supervisor.pid(), milliseconds(10000));
  ASSERT_EQ(ranks.size(), 3u) << supervisor.log();
  const std::vector<pid_t> old_job = testing::MpiJob::descendants(supervisor.pid());

  // The stream: upserts of new ids and deletes of built ids, each id once.
  std::vector<Write> writes;
  int64_t next_new = 1000000, next_deleted = 0, version = 1;
  auto make_write = [&] {
    Write w;
    w.upsert = rng() % 10 < 7;
    const int n = 1 + int(rng() % 5);
    for (int i = 0; i < n; ++i) {
      if (w.upsert) {
        const int64_t id = next_new++;
        w.items[id] = test::random_model_item(rng, kDim, 3, 4, id, version++);
      } else {
        w.ids.push_back(next_deleted++);
      }
    }
    return w;
  };
  Client client(endpoint);
  std::map<uint64_t, std::pair<size_t, Clock::time_point>> in_flight;  // id -> (write, sent)
  int acked = 0;
  Clock::time_point kill_at;
  bool killed = false;
  Clock::time_point last_reply = Clock::now();
  while (!in_flight.empty() || !killed) {
    while (!killed && in_flight.size() < size_t(kWindow)) {
      writes.push_back(make_write());
      in_flight[client.send(to_request(writes.back()))] = {writes.size() - 1, Clock::now()};
    }
    // Kill once a snapshot of the stream is in (its pointer file names one): on a busy machine
    // the first snapshot may land after kAckedBeforeKill acknowledgements.
    ASSERT_LT(acked, 20 * kAckedBeforeKill) << "no snapshot after " << acked << " writes\n"
                                             << supervisor.log();
    if (!killed && acked >= kAckedBeforeKill &&
        std::filesystem::exists(dir.path() + "/index/SNAPSHOT.argent")) {
      kill(ranks.at(0), SIGKILL);  // the coordinator, with writes in flight
      kill_at = Clock::now();
      killed = true;
    }
    const std::optional<v1::Response> reply = client.receive(milliseconds(50));
    if (!reply) {
      // The client's deadline: past it, an unanswered write counts as failed (not acked).
      for (auto it = in_flight.begin(); it != in_flight.end();) {
        if (Clock::now() - it->second.second >= kReplyBound) it = in_flight.erase(it);
        else ++it;
      }
      ASSERT_LT(Clock::now() - last_reply, std::chrono::seconds(30)) << supervisor.log();
      continue;
    }
    last_reply = Clock::now();
    ASSERT_TRUE(reply->has_mutation()) << reply->DebugString();
    const auto it = in_flight.find(reply->mutation().request_id());
    if (it == in_flight.end()) continue;
    if (reply->mutation().status().code() == v1::OK) {
      writes[it->second.first].acked = true;
      ++acked;
    } else {
      ASSERT_EQ(reply->mutation().status().code(), v1::UNAVAILABLE)
          << reply->mutation().status().message();
    }
    in_flight.erase(it);
  }
  // The client gave up on (or got an answer to) everything within the bound of the kill.
  EXPECT_LE(Clock::now() - kill_at, kReplyBound + milliseconds(100));
  EXPECT_EQ(wait_gone(old_job, kProcessesGoneWithin), std::vector<pid_t>{})
      << "left behind\n" << supervisor.log();

  Client after(endpoint);
  ASSERT_TRUE(after.wait_until_healthy(milliseconds(60000))) << supervisor.log();
  const double rto_ms = std::chrono::duration<double, std::milli>(Clock::now() - kill_at).count();

  // Presence of every written id, by filtered exact searches.
  const std::vector<float> ones(kDim, 1.0f);
  auto present = [&](int64_t id) {
    const v1::SearchResponse r = after.search(
        test::search_request(ones, 5, std::to_string(test::kIdFeature) + ":" + std::to_string(id)),
        milliseconds(30000));
    EXPECT_EQ(r.status().code(), v1::OK) << r.status().message();
    EXPECT_LE(r.ids_size(), 1) << "id " << id << " has two live copies";
    return r.ids_size() == 1;
  };
  test::Model recovered = base;
  int lost = 0, unacked_applied = 0;
  for (const Write& w : writes) {
    if (w.upsert) {
      for (const auto& [id, item] : w.items) {
        const bool in = present(id);
        if (w.acked && !in) ++lost;
        if (!w.acked && in) ++unacked_applied;
        if (in) recovered[id] = item;
      }
    } else {
      for (int64_t id : w.ids) {
        const bool in = present(id);
        if (w.acked && in) ++lost;
        if (!w.acked && !in) ++unacked_applied;
        if (!in) recovered.erase(id);
      }
    }
  }
  EXPECT_EQ(lost, 0) << "acknowledged writes lost\n" << supervisor.log();
  // The restarted run loaded a snapshot taken during the stream, then replayed the log.
  const std::string log = supervisor.log();
  const size_t recovery = log.rfind("recovery: snapshot at sequence");
  ASSERT_NE(recovery, std::string::npos) << log;
  const std::string recovery_line = log.substr(recovery, log.find('\n', recovery) - recovery);
  EXPECT_EQ(recovery_line.find("(the build)"), std::string::npos) << recovery_line;
  std::printf("%s\n", recovery_line.c_str());

  // Every item: exact results equal a single-process search of a fresh build of that set.
  v1::Request health;
  health.mutable_health();
  EXPECT_EQ(after.call(health).health().items(), int64_t(recovered.size()));
  test::TempDir fresh_dir;
  build_index(test::to_item_set(recovered, kDim), test::small_index_config(9, 20),
              fresh_dir.path());
  const LocalEngine fresh = LocalEngine::open(fresh_dir.path(), Config{});
  const int64_t n = 12, k = 15;
  const std::vector<float> x = test::random_normal(rng, size_t(n) * kDim);
  SearchOptions opts;
  opts.k = k;
  opts.exact = true;
  const SearchResults want = fresh.search(x.data(), n, kDim, {}, opts);
  for (int64_t q = 0; q < n; ++q) {
    const v1::SearchResponse got = after.search(
        test::search_request(std::vector<float>(x.begin() + q * kDim, x.begin() + (q + 1) * kDim), k, ""));
    ASSERT_EQ(got.ids_size(), k);
    for (int64_t i = 0; i < k; ++i) {
      EXPECT_EQ(got.ids(int(i)), want.ids[size_t(q * k + i)]) << "query " << q << " rank " << i;
      EXPECT_EQ(got.scores(int(i)), want.scores[size_t(q * k + i)]);
    }
  }
  std::printf("coordinator kill: %d writes acknowledged of %zu sent, %d unacknowledged applied by "
              "recovery, 0 lost; first Health OK %.0f ms after the kill\n",
              acked, writes.size(), unacked_applied, rto_ms);
  const std::vector<pid_t> job = testing::MpiJob::descendants(supervisor.pid());
  EXPECT_TRUE(supervisor.stop(SIGTERM, std::chrono::seconds(30))) << supervisor.log();
  EXPECT_EQ(wait_gone(job, kProcessesGoneWithin), std::vector<pid_t>{});
}

}  // namespace
}  // namespace argent::fault
