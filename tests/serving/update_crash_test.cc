// The crash test: a 3-rank CPU cluster (mpirun -np 3) takes a stream of upserts and deletes with
// several requests in flight, taking automatic snapshots as its log grows, and is killed with
// SIGKILL (every process of the job at once) mid-stream. A torn record is then appended to its
// log, as a write cut short by the crash would leave. Restarted from its directory, the cluster
// must hold exactly the writes of some prefix of the stream that contains every acknowledged
// request (the log is applied in arrival order, and a request is atomic): no acknowledged write
// lost, no unacknowledged request half-applied. The check compares every touched id's live
// version, then the exact search results against a fresh build of that prefix's item set.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "coordinator/client.h"
#include "serving/item_model.h"
#include "serving/mpi_job.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using std::chrono::milliseconds;
using test::FeatureList;
using test::Rng;

constexpr int kDim = 10;
constexpr int64_t kBaseItems = 2000;
constexpr int kWindow = 8;          // requests in flight
constexpr int kAckedBeforeKill = 300;

using test::Model;
using test::ModelItem;
using test::kIdFeature;
using test::kVersionFeature;

struct Write {
  bool upsert = true;
  Model items;               // upsert
  std::vector<int64_t> ids;  // delete
};

void apply_write(const Write& w, Model* m) {
  if (w.upsert) {
    for (const auto& [id, item] : w.items) (*m)[id] = item;
  } else {
    for (int64_t id : w.ids) m->erase(id);
  }
}

ModelItem random_item(Rng& rng, int64_t id, int64_t version) {
  return test::random_model_item(rng, kDim, 3, 4, id, version);
}

ItemSet to_item_set(const Model& model) { return test::to_item_set(model, kDim); }

v1::Request to_request(const Write& w) {
  return w.upsert ? test::upsert_request(w.items) : test::delete_request(w.ids);
}

TEST(UpdateCrash, AcknowledgedWritesSurviveSigkillAndNoneIsHalfApplied) {
  const uint64_t seed = test::test_seed(31);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  test::TempDir dir;
  Model base;
  for (int64_t id = 0; id < kBaseItems; ++id) base[id] = random_item(rng, id, 0);
  build_index(to_item_set(base), test::small_index_config(9, 16), dir.path() + "/index");
  const std::string endpoint = "ipc://" + dir.path() + "/gateway.sock";
  const std::string config = dir.path() + "/serve.yaml";
  // A small log limit: snapshots happen during the stream, so the crash lands between them.
  std::ofstream(config) << "index:\n  dir: " << dir.path() << "/index\n  list_slack: 0.05\n"
                        << "serve:\n  endpoint: " << endpoint << "\n"
                        << "search:\n  threads: 1\n"  // 3 ranks share the CI machine's cores
                        << "updates:\n  snapshot_wal_bytes: 60000\n";
  const std::vector<std::string> argv = {ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none",
                                         "-np", "3", ARGENT_BIN, "serve", "--config", config};
  auto job = std::make_unique<testing::MpiJob>(argv, dir.path() + "/serve.log");
  ASSERT_TRUE(job->started());
  ASSERT_TRUE(Client(endpoint).wait_until_healthy(milliseconds(60000))) << job->log();

  // The stream: ids from a pool of built and new ids, so writes replace and delete each other;
  // the pool is large enough that most writes stay visible (a lost one would show).
  std::vector<int64_t> pool;
  for (int64_t id = 0; id < 1500; ++id) pool.push_back(id);
  for (int64_t id = 0; id < 1000; ++id) pool.push_back(1000000 + id);
  std::vector<Write> writes;
  int64_t version = 1;
  auto make_write = [&] {
    Write w;
    const int n = 1 + int(rng() % 6);
    std::set<int64_t> ids;
    while (int(ids.size()) < n) ids.insert(pool[size_t(rng() % pool.size())]);
    w.upsert = rng() % 10 < 7;
    for (int64_t id : ids) {
      if (w.upsert) w.items[id] = random_item(rng, id, version++);
      else w.ids.push_back(id);
    }
    return w;
  };

  Client client(endpoint);
  std::map<uint64_t, size_t> in_flight;  // request id -> index in writes
  int64_t last_acked = -1;              // acks come in stream order (one socket, one step loop)
  int acked = 0;
  while (acked < kAckedBeforeKill) {
    while (in_flight.size() < size_t(kWindow)) {
      writes.push_back(make_write());
      in_flight[client.send(to_request(writes.back()))] = writes.size() - 1;
    }
    const std::optional<v1::Response> reply = client.receive(milliseconds(30000));
    ASSERT_TRUE(reply && reply->has_mutation()) << job->log();
    ASSERT_EQ(reply->mutation().status().code(), v1::OK) << reply->mutation().status().message();
    const size_t index = in_flight.at(reply->mutation().request_id());
    in_flight.erase(reply->mutation().request_id());
    ASSERT_EQ(int64_t(index), last_acked + 1) << "acknowledgements out of stream order";
    last_acked = int64_t(index);
    ++acked;
  }
  // Crash with requests in flight: some may be logged (and so applied at restart), none acked.
  ASSERT_TRUE(job->kill_tree()) << "the job did not die";
  ASSERT_FALSE(in_flight.empty());
  EXPECT_NE(job->log().find("snapshot at sequence"), std::string::npos)
      << "no snapshot was taken during the stream\n" << job->log();
  // A record cut short by the crash: a header promising more bytes than follow.
  {
    std::ofstream wal(dir.path() + "/index/wal.log", std::ios::binary | std::ios::app);
    const uint32_t length = 4096, crc = 0x12345678;
    const uint64_t sequence = 1u << 30;
    wal.write(reinterpret_cast<const char*>(&length), 4);
    wal.write(reinterpret_cast<const char*>(&crc), 4);
    wal.write(reinterpret_cast<const char*>(&sequence), 8);
    wal.write("partial", 7);
  }

  job = std::make_unique<testing::MpiJob>(argv, dir.path() + "/serve-restart.log");
  ASSERT_TRUE(Client(endpoint).wait_until_healthy(milliseconds(60000))) << job->log();
  const std::string restart_log = job->log();
  EXPECT_NE(restart_log.find("discarded a torn tail"), std::string::npos) << restart_log;
  const size_t recovery = restart_log.find("recovery:");
  ASSERT_NE(recovery, std::string::npos) << restart_log;
  std::printf("%s\n", restart_log.substr(recovery, restart_log.find('\n', recovery) - recovery).c_str());
  Client after(endpoint);

  // Which prefix of the stream is in the index? Candidates: everything acknowledged, plus any
  // number of the requests that were in flight, in order.
  std::vector<Model> candidates;
  Model m = base;
  for (int64_t i = 0; i <= last_acked; ++i) apply_write(writes[size_t(i)], &m);
  candidates.push_back(m);
  for (size_t i = size_t(last_acked + 1); i < writes.size(); ++i) {
    apply_write(writes[i], &m);
    candidates.push_back(m);
  }
  // The live version of every id the stream touched, read through filtered exact searches
  // (pipelined, so the server batches them).
  auto search_all = [&](const std::vector<v1::SearchRequest>& requests) {
    std::vector<v1::SearchResponse> out(requests.size());
    std::map<uint64_t, size_t> pending;
    size_t sent = 0, received = 0;
    while (received < requests.size()) {
      while (sent < requests.size() && pending.size() < 64) {
        v1::Request r;
        *r.mutable_search() = requests[sent];
        pending[after.send(r)] = sent++;
      }
      const std::optional<v1::Response> reply = after.receive(milliseconds(30000));
      EXPECT_TRUE(reply && reply->has_search());
      if (!reply || !reply->has_search()) break;
      out[pending.at(reply->search().request_id())] = reply->search();
      pending.erase(reply->search().request_id());
      ++received;
    }
    return out;
  };
  const std::vector<float> ones(kDim, 1.0f);
  auto id_term = [](int64_t id) { return std::to_string(kIdFeature) + ":" + std::to_string(id); };
  std::vector<v1::SearchRequest> presence;
  for (int64_t id : pool) presence.push_back(test::search_request(ones, 5, id_term(id)));
  const std::vector<v1::SearchResponse> present = search_all(presence);
  std::vector<v1::SearchRequest> by_version;
  std::vector<std::pair<int64_t, int64_t>> asked;  // (id, version)
  std::map<int64_t, std::optional<int64_t>> live;  // id -> version, nullopt: absent
  for (size_t i = 0; i < pool.size(); ++i) {
    const int64_t id = pool[i];
    ASSERT_EQ(present[i].status().code(), v1::OK) << present[i].status().message();
    ASSERT_LE(present[i].ids_size(), 1) << "id " << id << " has two live copies";
    live[id] = std::nullopt;
    if (present[i].ids_size() == 0) continue;
    std::set<int64_t> versions;
    for (const Model& c : candidates)
      if (c.count(id)) versions.insert(c.at(id).version);
    for (int64_t v : versions) {
      by_version.push_back(test::search_request(
          ones, 5, id_term(id) + " AND " + std::to_string(kVersionFeature) + ":" + std::to_string(v)));
      asked.emplace_back(id, v);
    }
  }
  const std::vector<v1::SearchResponse> versioned = search_all(by_version);
  for (size_t i = 0; i < asked.size(); ++i)
    if (versioned[i].ids_size() == 1) live[asked[i].first] = asked[i].second;
  for (size_t i = 0; i < pool.size(); ++i)
    ASSERT_TRUE(present[i].ids_size() == 0 || live[pool[i]].has_value())
        << "id " << pool[i] << " holds a version no prefix explains";
  int matched = -1;
  for (size_t c = 0; c < candidates.size() && matched < 0; ++c) {
    bool same = true;
    for (const auto& [id, v] : live) {
      const auto it = candidates[c].find(id);
      const std::optional<int64_t> want =
          it == candidates[c].end() ? std::nullopt : std::optional<int64_t>(it->second.version);
      if (want != v) {
        same = false;
        break;
      }
    }
    if (same) matched = int(c);
  }
  ASSERT_GE(matched, 0) << "the recovered items are not the state after any prefix of the stream "
                           "that holds every acknowledged write ("
                        << last_acked + 1 << " acknowledged, " << writes.size() << " sent)";
  std::printf("crash test: %lld acknowledged, %zu sent, recovered state = %d of the %zu "
              "unacknowledged requests applied\n",
              (long long)(last_acked + 1), writes.size(), matched, writes.size() - size_t(last_acked + 1));

  // Every item (not only the touched ids) and its embedding: exact results equal a fresh build.
  const Model& expected = candidates[size_t(matched)];
  v1::Request health;
  health.mutable_health();
  EXPECT_EQ(after.call(health).health().items(), int64_t(expected.size()));
  test::TempDir fresh_dir;
  build_index(to_item_set(expected), test::small_index_config(9, 20), fresh_dir.path());
  const LocalEngine fresh = LocalEngine::open(fresh_dir.path(), Config{});
  const int64_t n = 16, k = 20;
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
  EXPECT_TRUE(job->stop(SIGTERM, std::chrono::seconds(30)));
}

}  // namespace
}  // namespace argent
