// Rebalancing a live cluster (the acceptance test of docs/architecture.md, "Rebalancing"): a
// 4-rank CPU cluster whose rank 3 starts as a standby rank serves two query clients and a writer
// while `activate 3` and then `drain 2` run. Every query's answer is checked against a reference
// the writes cannot change (exact search over the built items only, in one process), every write
// is read back right after its acknowledgement, and at the end every acknowledged write must be
// there exactly once: the cluster's exact results equal a fresh build of the acknowledged item
// set. A restart then serves the same partition map (a snapshot after `activate`, the log's map
// records after it for `drain`) and the same results.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include "coordinator/client.h"
#include "serving/item_model.h"
#include "serving/mpi_job.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using std::chrono::milliseconds;
using test::Model;
using test::ModelItem;
using test::Rng;
using test::kIdFeature;
using test::kVersionFeature;
using test::delete_request;
using test::search_request;
using test::term;
using test::upsert_request;

constexpr int kDim = 12;
constexpr int64_t kBaseItems = 3000;
constexpr int32_t kBaseFeature = 97;  // (97, 0) on built items, (97, 1) on written ones
constexpr int64_t kQueryK = 10;

ModelItem item_with(Rng& rng, int64_t id, int64_t version, int64_t base) {
  ModelItem m = test::random_model_item(rng, kDim, 4, 5, id, version);
  m.features.emplace_back(kBaseFeature, base);
  std::sort(m.features.begin(), m.features.end());
  return m;
}

class RebalanceCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = test::test_seed(808);
    rng_.seed(seed_);
    for (int64_t id = 0; id < kBaseItems; ++id) model_[id] = item_with(rng_, id, 0, 0);
    build_index(test::to_item_set(model_, kDim), test::small_index_config(16, 24),
                dir_.path() + "/index");
    endpoint_ = "ipc://" + dir_.path() + "/gateway.sock";
    config_ = dir_.path() + "/serve.yaml";
    // Small chunks: every move takes several steps, with searches and writes between them.
    std::ofstream(config_) << "index:\n  dir: " << dir_.path() << "/index\n  list_slack: 0.05\n"
                           << "serve:\n  endpoint: " << endpoint_ << "\n  stats_interval_s: 0.2\n"
                           << "  standby_ranks: [3]\n  move_chunk_bytes: 4096\n"
                           << "search:\n  threads: 1\n";
  }

  void start() {
    job_ = std::make_unique<testing::MpiJob>(
        std::vector<std::string>{ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np", "4",
                                 ARGENT_BIN, "serve", "--config", config_},
        dir_.path() + "/serve.log");
    ASSERT_TRUE(job_->started());
    Client client(endpoint_);
    ASSERT_TRUE(client.wait_until_healthy(milliseconds(60000))) << job_->log();
  }

  v1::StatsResponse stats(Client& client) {
    v1::Request r;
    r.mutable_stats();
    return client.call(r).stats();
  }

  // Sends a rebalance and waits for it to finish; returns the final progress.
  v1::RebalanceProgress rebalance(Client& client, const std::string& plan, int rank) {
    v1::Request r;
    r.mutable_admin()->set_action(v1::AdminRequest::REBALANCE);
    r.mutable_admin()->set_plan(plan);
    r.mutable_admin()->set_rank(rank);
    const v1::Response reply = client.call(r);
    EXPECT_EQ(reply.admin().status().code(), v1::OK) << reply.admin().status().message();
    EXPECT_GT(reply.admin().planned_size(), 0) << plan << " " << rank;
    for (int i = 0; i < 600; ++i) {
      const v1::RebalanceProgress p = stats(client).rebalance();
      if (p.state() != "running") return p;
      std::this_thread::sleep_for(milliseconds(50));
    }
    ADD_FAILURE() << "rebalance " << plan << " did not finish in 30 s";
    return {};
  }

  // The cluster's exact results equal a fresh build of the model, searched in one process.
  void expect_equals_fresh_build(Client& client) {
    test::TempDir fresh_dir;
    IndexConfig cfg = test::small_index_config(16, 24);
    cfg.seed = 77;  // another k-means: only exact results must agree
    build_index(test::to_item_set(model_, kDim), cfg, fresh_dir.path());
    const LocalEngine fresh = LocalEngine::open(fresh_dir.path(), Config{});
    const int64_t n = 10, k = 40;
    const std::vector<float> x = test::random_normal(rng_, size_t(n) * kDim);
    for (const std::string filter : {"", "97:1", "NOT 1:2"}) {
      SearchOptions opts;
      opts.k = k;
      opts.exact = true;
      const SearchResults want = fresh.search(x.data(), n, kDim, {filter}, opts);
      for (int64_t q = 0; q < n; ++q) {
        const std::vector<float> xq(x.begin() + q * kDim, x.begin() + (q + 1) * kDim);
        const v1::SearchResponse got = client.search(search_request(xq, k, filter));
        ASSERT_EQ(got.status().code(), v1::OK) << got.status().message();
        int64_t found = 0;
        while (found < k && want.ids[size_t(q * k + found)] >= 0) ++found;
        ASSERT_EQ(got.ids_size(), found) << "query " << q << " filter '" << filter << "'";
        for (int64_t i = 0; i < found; ++i) {
          ASSERT_EQ(got.ids(int(i)), want.ids[size_t(q * k + i)]) << "query " << q << " rank " << i;
          ASSERT_EQ(got.scores(int(i)), want.scores[size_t(q * k + i)]) << "query " << q;
        }
      }
    }
  }

  test::TempDir dir_;
  uint64_t seed_ = 0;
  Rng rng_;
  Model model_;  // built items plus every acknowledged write
  std::string endpoint_, config_;
  std::unique_ptr<testing::MpiJob> job_;
};

TEST_F(RebalanceCluster, ActivateThenDrainUnderLoadLosesNothing) {
  SCOPED_TRACE(test::seed_note(seed_));
  // The query reference: exact top-k over built items only ("97:0"), which writes never touch.
  constexpr int kQueries = 32;
  const std::vector<float> qx = test::random_normal(rng_, size_t(kQueries) * kDim);
  SearchResults reference;
  {
    const LocalEngine engine = LocalEngine::open(dir_.path() + "/index", Config{});
    SearchOptions opts;
    opts.k = kQueryK;
    opts.exact = true;
    reference = engine.search(qx.data(), kQueries, kDim, {term(kBaseFeature, 0)}, opts);
  }
  start();
  Client admin(endpoint_);
  {
    const v1::StatsResponse s = stats(admin);
    EXPECT_EQ(s.partition_map_epoch(), 0u);
    ASSERT_EQ(s.shards_size(), 4);
    EXPECT_EQ(s.shards(3).partitions_size(), 0) << "rank 3 is a standby rank";
    EXPECT_EQ(s.shards(3).items(), 0);
  }

  std::atomic<bool> stop{false};
  std::atomic<int64_t> answered{0}, wrong{0}, failed{0};
  std::mutex error_mu;
  std::string first_error;
  auto report = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (first_error.empty()) first_error = what;
  };
  auto query_client = [&](uint64_t seed) {
    Client client(endpoint_);
    Rng rng(seed);
    while (!stop) {
      const int64_t q = int64_t(rng() % kQueries);
      const std::vector<float> x(qx.begin() + q * kDim, qx.begin() + (q + 1) * kDim);
      const v1::SearchResponse r = client.search(search_request(x, kQueryK, term(kBaseFeature, 0)));
      if (r.status().code() != v1::OK) {
        ++failed;
        report("query status " + r.status().message());
        continue;
      }
      bool same = r.ids_size() == kQueryK;
      for (int i = 0; same && i < kQueryK; ++i)
        same = r.ids(i) == reference.ids[size_t(q * kQueryK + i)] &&
               r.scores(i) == reference.scores[size_t(q * kQueryK + i)];
      if (!same) {
        ++wrong;
        report("query " + std::to_string(q) + ": " + r.ShortDebugString());
      }
      ++answered;
    }
  };
  // The writer: requests of 8 items (new ids, replacements of earlier ones) and deletes, each
  // read back right after its acknowledgement; the model holds exactly the acknowledged state.
  std::atomic<int64_t> writes{0}, unread{0};
  std::mutex model_mu;
  auto writer = [&] {
    Client client(endpoint_);
    Rng rng(seed_ + 1);
    int64_t next_id = 1000000, version = 1;
    std::vector<int64_t> written;
    while (!stop) {
      v1::Request r;
      Model batch;
      const bool remove = written.size() > 20 && rng() % 5 == 0;
      if (remove) {
        for (int i = 0; i < 3; ++i) {
          const size_t at = size_t(rng() % written.size());
          r.mutable_delete_()->add_ids(written[at]);
          written.erase(written.begin() + long(at));
        }
      } else {
        for (int i = 0; i < 8; ++i) {
          const bool replace = !written.empty() && rng() % 3 == 0;
          const int64_t id = replace ? written[size_t(rng() % written.size())] : next_id++;
          if (batch.count(id)) continue;
          batch[id] = item_with(rng, id, version++, 1);
          if (!replace) written.push_back(id);
        }
        r = upsert_request(batch);
      }
      const v1::Response reply = client.call(r);
      if (reply.mutation().status().code() != v1::OK) {
        ++failed;
        report("write: " + reply.ShortDebugString());
        continue;
      }
      ++writes;
      {
        std::lock_guard<std::mutex> lock(model_mu);
        if (remove)
          for (int64_t id : r.delete_().ids()) model_.erase(id);
        else
          for (auto& [id, m] : batch) model_[id] = m;
      }
      // Read-your-writes, through whatever map the cluster has now.
      if (remove) {
        for (int64_t id : r.delete_().ids()) {
          const v1::SearchResponse s = client.search(search_request(std::vector<float>(kDim, 1.0f), 2,
                                                            term(kIdFeature, id)));
          if (s.ids_size() != 0) {
            ++unread;
            report("deleted id " + std::to_string(id) + " still found");
          }
        }
      } else {
        for (const auto& [id, m] : batch) {
          const v1::SearchResponse s = client.search(search_request(
              m.embedding, 2, term(kIdFeature, id) + " AND " + term(kVersionFeature, m.version)));
          if (s.ids_size() != 1 || s.ids(0) != id) {
            ++unread;
            report("upserted id " + std::to_string(id) + " read back as " + s.ShortDebugString());
          }
        }
      }
    }
  };

  std::vector<std::thread> threads;
  threads.emplace_back(query_client, seed_ + 2);
  threads.emplace_back(query_client, seed_ + 3);
  threads.emplace_back(writer);
  std::this_thread::sleep_for(milliseconds(700));
  const int64_t answered_before = answered, writes_before = writes;

  const v1::RebalanceProgress activated = rebalance(admin, "activate", 3);
  EXPECT_EQ(activated.state(), "done") << activated.error();
  EXPECT_GT(activated.moves_done(), 0);
  v1::Request snapshot;
  snapshot.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
  ASSERT_EQ(admin.call(snapshot).admin().status().code(), v1::OK);
  const v1::RebalanceProgress drained = rebalance(admin, "drain", 2);
  EXPECT_EQ(drained.state(), "done") << drained.error();
  const int64_t answered_during = answered - answered_before, writes_during = writes - writes_before;
  std::this_thread::sleep_for(milliseconds(300));
  stop = true;
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(wrong.load(), 0) << first_error;
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_EQ(unread.load(), 0) << first_error;
  // The rebalances ran while the clients were busy, not between their requests.
  EXPECT_GT(answered_during, 10);
  EXPECT_GT(writes_during, 0);
  std::printf("rebalance under load: %lld queries (%lld during the rebalances), %lld writes "
              "(%lld during), %lld + %lld writes forwarded to moving partitions\n",
              (long long)answered.load(), (long long)answered_during, (long long)writes.load(),
              (long long)writes_during, (long long)activated.forwarded(),
              (long long)drained.forwarded());

  const v1::StatsResponse after = stats(admin);
  const uint64_t epoch = after.partition_map_epoch();
  EXPECT_EQ(epoch, uint64_t(activated.moves_done() + drained.moves_done()));
  EXPECT_GT(after.shards(3).partitions_size(), 0) << "rank 3 was activated";
  EXPECT_EQ(after.shards(2).partitions_size(), 0) << "rank 2 was drained";
  EXPECT_EQ(after.shards(2).items(), 0);
  int64_t items = 0;
  for (const v1::ShardStats& s : after.shards()) items += s.items();
  EXPECT_EQ(items, int64_t(model_.size()));
  ASSERT_NO_FATAL_FAILURE(expect_equals_fresh_build(admin));

  // `argent admin status` prints the map.
  const std::string status_path = dir_.path() + "/status.txt";
  const std::string cmd = std::string(ARGENT_BIN) + " admin status --endpoint " + endpoint_ +
                          " > " + status_path + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
  std::stringstream printed;
  printed << std::ifstream(status_path).rdbuf();
  EXPECT_NE(printed.str().find("partition map epoch " + std::to_string(epoch)), std::string::npos)
      << printed.str();
  EXPECT_NE(printed.str().find("(standby)"), std::string::npos) << printed.str();

  // A clean restart serves the same map (the snapshot's, then the log's map records of the
  // drain) and the same items.
  const std::vector<int32_t> owners(after.partition_owner().begin(), after.partition_owner().end());
  ASSERT_TRUE(job_->stop(SIGTERM, std::chrono::seconds(30)));
  start();
  Client again(endpoint_);
  const v1::StatsResponse restarted = stats(again);
  EXPECT_EQ(restarted.partition_map_epoch(), epoch);
  EXPECT_EQ(std::vector<int32_t>(restarted.partition_owner().begin(),
                                 restarted.partition_owner().end()),
            owners);
  EXPECT_EQ(restarted.shards(2).partitions_size(), 0);
  ASSERT_NO_FATAL_FAILURE(expect_equals_fresh_build(again));
  job_->stop(SIGTERM, std::chrono::seconds(30));
}

}  // namespace
}  // namespace argent
