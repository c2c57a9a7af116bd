// Streaming updates end to end on 3-rank CPU clusters (mpirun -np 3); every test starts from the
// built index (ctest runs each in its own process, with its own cluster): upserts are searchable with
// their filter features as soon as they are acknowledged, deletes are never returned, replacing an
// id replaces it, bad writes are rejected whole, and the cluster's exact results after a random mix
// equal a fresh build of the same final item set; a snapshot plus restart keeps everything; and a
// cluster killed with SIGKILL mid-stream restarts with every acknowledged write and no partial one.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>

#include "coordinator/client.h"
#include "serving/item_model.h"
#include "serving/mpi_job.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using test::FeatureList;
using test::Rng;

constexpr int kDim = 12;
constexpr int64_t kBaseItems = 3000;

using test::Model;
using test::ModelItem;
using test::kIdFeature;
using test::kVersionFeature;
using test::delete_request;
using test::search_request;
using test::term;
using test::upsert_request;

ModelItem random_item(Rng& rng, int64_t id, int64_t version) {
  return test::random_model_item(rng, kDim, 4, 5, id, version);
}

ItemSet to_item_set(const Model& model) { return test::to_item_set(model, kDim); }

IndexConfig index_config() { return test::small_index_config(12, 24); }

// A 3-rank cluster serving its own copy of an index in `dir`/index.
class ClusterProcess {
 public:
  ClusterProcess(const std::string& dir, const std::string& extra_yaml) : dir_(dir) {
    endpoint_ = "ipc://" + dir + "/gateway.sock";
    config_path_ = dir + "/serve.yaml";
    std::ofstream(config_path_) << "index:\n  dir: " << dir << "/index\n  list_slack: 0.05\n"
                                << "serve:\n  endpoint: " << endpoint_
                                << "\n  stats_interval_s: 0.2\n"
                                << "search:\n  threads: 1\n"  // 3 ranks share the CI machine's cores

                                << extra_yaml;
    config_ = load_config(config_path_);
  }
  void start() {
    job_ = std::make_unique<testing::MpiJob>(
        std::vector<std::string>{ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np", "3",
                                 ARGENT_BIN, "serve", "--config", config_path_},
        dir_ + "/serve.log");
    ASSERT_TRUE(job_->started());
    Client client(endpoint_);
    ASSERT_TRUE(client.wait_until_healthy(milliseconds(60000))) << job_->log();
  }
  const std::string& endpoint() const { return endpoint_; }
  const Config& config() const { return config_; }
  testing::MpiJob& job() { return *job_; }

 private:
  std::string dir_, endpoint_, config_path_;
  Config config_;
  std::unique_ptr<testing::MpiJob> job_;
};

// The cluster's exact results (ids and scores) on random queries and filters equal those of a
// fresh build of `model` searched in one process.
void expect_cluster_equals_fresh_build(Client& client, const Model& model, Rng& rng) {
  test::TempDir fresh_dir;
  IndexConfig fresh_cfg = index_config();
  fresh_cfg.seed = 1234;  // another k-means: only the exact results must agree
  build_index(to_item_set(model), fresh_cfg, fresh_dir.path());
  const LocalEngine fresh = LocalEngine::open(fresh_dir.path(), Config{});
  const int64_t n = 12, k = 25;
  const std::vector<float> x = test::random_normal(rng, size_t(n) * kDim);
  for (const std::string filter : {"", "0:1", "NOT 1:2 AND 2:0"}) {
    SearchOptions opts;
    opts.k = k;
    opts.exact = true;
    const SearchResults want = fresh.search(x.data(), n, kDim, {filter}, opts);
    for (int64_t q = 0; q < n; ++q) {
      const std::vector<float> xq(x.begin() + q * kDim, x.begin() + (q + 1) * kDim);
      const v1::SearchResponse got = client.search(search_request(xq, k, filter, true));
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

class UpdateCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    seed_ = test::test_seed(21);
    rng_ = new Rng(seed_);
    dir_ = new test::TempDir;
    model_ = new Model;
    for (int64_t id = 0; id < kBaseItems; ++id) (*model_)[id] = random_item(*rng_, id, 0);
    build_index(to_item_set(*model_), index_config(), dir_->path() + "/index");
    cluster_ = new ClusterProcess(dir_->path(), "updates:\n  max_request_items: 50\n");
    cluster_->start();
  }
  static void TearDownTestSuite() {
    if (cluster_) cluster_->job().stop(SIGTERM, std::chrono::seconds(30));
    delete cluster_;
    delete model_;
    delete dir_;
    delete rng_;
  }

  // Sends a write, expects OK, and mirrors it in the model.
  static v1::MutationResponse write(Client& client, const v1::Request& r) {
    const v1::Response reply = client.call(r);
    EXPECT_TRUE(reply.has_mutation()) << reply.DebugString();
    EXPECT_EQ(reply.mutation().status().code(), v1::OK) << reply.mutation().status().message();
    if (r.has_upsert()) {
      for (const v1::Item& item : r.upsert().items()) {
        ModelItem m;
        m.embedding.assign(item.embedding().begin(), item.embedding().end());
        for (const auto& [f, values] : item.features())
          for (int64_t v : values.values()) m.features.emplace_back(f, v);
        std::sort(m.features.begin(), m.features.end());
        (*model_)[item.id()] = m;
      }
    } else {
      for (int64_t id : r.delete_().ids()) model_->erase(id);
    }
    return reply.mutation();
  }

  static uint64_t seed_;
  static Rng* rng_;
  static test::TempDir* dir_;
  static Model* model_;
  static ClusterProcess* cluster_;
  static int64_t next_version_;
};
uint64_t UpdateCluster::seed_ = 0;
Rng* UpdateCluster::rng_ = nullptr;
test::TempDir* UpdateCluster::dir_ = nullptr;
Model* UpdateCluster::model_ = nullptr;
ClusterProcess* UpdateCluster::cluster_ = nullptr;
int64_t UpdateCluster::next_version_ = 1;

TEST_F(UpdateCluster, UpsertIsSearchableWithItsFiltersOnceAcknowledged) {
  SCOPED_TRACE(test::seed_note(seed_));
  Client client(cluster_->endpoint());
  // Read-your-writes: each search right after its ack must see the item, exact or probed.
  for (int i = 0; i < 20; ++i) {
    const int64_t id = 1000000 + i, version = next_version_++;
    const Model one = {{id, random_item(*rng_, id, version)}};
    const v1::MutationResponse ack = write(client, upsert_request(one));
    EXPECT_EQ(ack.applied(), 1);
    EXPECT_GT(ack.sequence(), 0u);
    const auto& x = one.begin()->second.embedding;
    const v1::SearchResponse exact = client.search(search_request(x, 3, term(kVersionFeature, version), true));
    ASSERT_EQ(exact.ids_size(), 1) << "upsert " << i << " not visible after its ack";
    EXPECT_EQ(exact.ids(0), id);
    const v1::SearchResponse probed = client.search(search_request(x, 1, term(kIdFeature, id), false));
    ASSERT_EQ(probed.ids_size(), 1) << "the probed lists missed upsert " << i;
    EXPECT_EQ(probed.ids(0), id);
  }
  // A batch: all items of one request.
  Model batch;
  for (int i = 0; i < 40; ++i) batch[2000000 + i] = random_item(*rng_, 2000000 + i, next_version_++);
  EXPECT_EQ(write(client, upsert_request(batch)).applied(), 40);
  for (const auto& [id, m] : batch) {
    const v1::SearchResponse r = client.search(search_request(m.embedding, 2, term(kIdFeature, id), true));
    ASSERT_EQ(r.ids_size(), 1);
    EXPECT_EQ(r.ids(0), id);
  }
}

TEST_F(UpdateCluster, DeletedItemsAreNeverReturned) {
  SCOPED_TRACE(test::seed_note(seed_));
  Client client(cluster_->endpoint());
  // Built items and items upserted here (each test runs alone under ctest).
  Model fresh = {{7000001, random_item(*rng_, 7000001, next_version_++)},
                 {7000002, random_item(*rng_, 7000002, next_version_++)}};
  write(client, upsert_request(fresh));
  const std::vector<int64_t> victims = {0, 1, 2, 17, 2999, 7000001, 7000002};
  std::vector<std::vector<float>> embeddings;
  for (int64_t id : victims) embeddings.push_back(model_->at(id).embedding);
  EXPECT_EQ(write(client, delete_request(victims)).applied(), int64_t(victims.size()));
  EXPECT_EQ(write(client, delete_request({0, 424242424})).applied(), 0) << "absent ids";
  for (size_t i = 0; i < victims.size(); ++i) {
    const v1::SearchResponse r = client.search(search_request(embeddings[i], 200, "", true));
    ASSERT_EQ(r.status().code(), v1::OK);
    for (int64_t id : r.ids())
      EXPECT_EQ(std::count(victims.begin(), victims.end(), id), 0) << "deleted id " << id;
    EXPECT_EQ(client.search(search_request(embeddings[i], 5, term(kIdFeature, victims[i]), true)).ids_size(), 0);
  }
}

TEST_F(UpdateCluster, ReplacingAnIdReplacesItsEmbeddingAndFeatures) {
  SCOPED_TRACE(test::seed_note(seed_));
  Client client(cluster_->endpoint());
  const int64_t id = 42;
  const ModelItem before = model_->at(id);
  const int64_t version = next_version_++;
  const Model after = {{id, random_item(*rng_, id, version)}};
  write(client, upsert_request(after));
  EXPECT_EQ(client.search(search_request(before.embedding, 5, term(kVersionFeature, 0) + " AND " +
                                                          term(kIdFeature, id), true)).ids_size(), 0)
      << "the old version's features still match";
  const v1::SearchResponse r = client.search(search_request(after.at(id).embedding, 5, term(kIdFeature, id), true));
  ASSERT_EQ(r.ids_size(), 1) << "two live copies, or none";
  EXPECT_EQ(client.search(search_request(after.at(id).embedding, 5, term(kVersionFeature, version), true)).ids(0), id);
  v1::Request health;
  health.mutable_health();
  EXPECT_EQ(client.call(health).health().items(), int64_t(model_->size()));
}

TEST_F(UpdateCluster, BadWritesAreRejectedWholeAndServingContinues) {
  Client client(cluster_->endpoint());
  // Writes are answered in `mutation`, admin requests in `admin`.
  auto expect_invalid = [&](const v1::Request& r, const std::string& needle) {
    const v1::Response reply = client.call(r);
    ASSERT_TRUE(r.has_admin() ? reply.has_admin() : reply.has_mutation()) << reply.DebugString();
    const v1::Status& status = r.has_admin() ? reply.admin().status() : reply.mutation().status();
    EXPECT_EQ(status.code(), v1::INVALID_ARGUMENT) << needle;
    EXPECT_NE(status.message().find(needle), std::string::npos) << status.message();
  };
  const int64_t good_id = 3000001;
  Model two = {{good_id, random_item(*rng_, good_id, 7)}, {3000002, random_item(*rng_, 3000002, 8)}};
  v1::Request nan = upsert_request(two);
  nan.mutable_upsert()->mutable_items(1)->set_embedding(5, std::nanf(""));
  expect_invalid(nan, "embedding[5]");
  v1::Request dim = upsert_request(two);
  dim.mutable_upsert()->mutable_items(1)->mutable_embedding()->RemoveLast();
  expect_invalid(dim, "dimension");
  v1::Request reserved = upsert_request(two);
  reserved.mutable_upsert()->mutable_items(0)->set_id(-1);
  expect_invalid(reserved, "reserved");
  v1::Request twice = upsert_request(two);
  twice.mutable_upsert()->mutable_items(1)->set_id(good_id);
  expect_invalid(twice, "appears twice");
  v1::Request negative = upsert_request(two);
  (*negative.mutable_upsert()->mutable_items(0)->mutable_features())[-3].add_values(1);
  expect_invalid(negative, "negative");
  Model many;
  for (int i = 0; i < 51; ++i) many[4000000 + i] = random_item(*rng_, 4000000 + i, 9);
  expect_invalid(upsert_request(many), "max_request_items");
  expect_invalid(delete_request({5, -1}), "reserved");
  v1::Request empty;
  empty.mutable_upsert();
  expect_invalid(empty, "no items");
  // Admin requests: an unknown action is refused, never run as a snapshot; so are stray fields.
  v1::Request unknown;
  unknown.mutable_admin()->set_action(static_cast<v1::AdminRequest::Action>(77));
  expect_invalid(unknown, "unknown action 77");
  v1::Request stray;
  stray.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
  stray.mutable_admin()->set_plan("even");
  expect_invalid(stray, "SNAPSHOT takes no plan");
  v1::Request stats;
  stats.mutable_stats();
  EXPECT_EQ(client.call(stats).stats().snapshot_sequence(), 0u) << "a refused admin request snapshotted";
  // Nothing of a rejected request was applied; the good item of the NaN batch is absent.
  const v1::SearchResponse r =
      client.search(search_request(two.at(good_id).embedding, 3, term(kIdFeature, good_id), true));
  EXPECT_EQ(r.status().code(), v1::OK);
  EXPECT_EQ(r.ids_size(), 0);
  EXPECT_EQ(client.search(search_request(two.at(good_id).embedding, 3, term(kIdFeature, 5), true)).ids_size(), 1)
      << "the delete with a bad id removed id 5";
}

// The command line: argent upsert --items / delete --ids / admin snapshot exit 0 only once
// every write is acknowledged, and non-zero when the server rejects one.
TEST_F(UpdateCluster, CommandLineWritesExitZeroOnlyWhenAcknowledged) {
  const std::string items = dir_->path() + "/items.jsonl", bad = dir_->path() + "/bad.jsonl";
  Model fresh;
  for (int i = 0; i < 7; ++i) fresh[8000000 + i] = random_item(*rng_, 8000000 + i, next_version_++);
  {
    std::ofstream out(items), out_bad(bad);
    for (const auto& [id, m] : fresh) {
      out << "{\"id\": " << id << ", \"embedding\": [";
      for (int j = 0; j < kDim; ++j) out << (j ? ", " : "") << std::setprecision(9) << m.embedding[size_t(j)];
      out << "], \"features\": {";
      for (size_t f = 0; f < m.features.size(); ++f)
        out << (f ? ", " : "") << "\"" << m.features[f].first << "\": [" << m.features[f].second << "]";
      out << "}}\n";
    }
    out_bad << "{\"id\": 9, \"embedding\": [1, 2, 3]}\n";  // wrong dimension
  }
  auto run = [&](const std::string& args) {
    const std::string cmd = std::string(ARGENT_BIN) + " " + args + " --endpoint " +
                            cluster_->endpoint() + " >> " + dir_->path() + "/cli.log 2>&1";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run("upsert --batch 3 --items " + items), 0);
  Client client(cluster_->endpoint());
  for (const auto& [id, m] : fresh) {
    const v1::SearchResponse r = client.search(search_request(m.embedding, 2, term(kIdFeature, id), true));
    ASSERT_EQ(r.ids_size(), 1) << "id " << id;
    EXPECT_EQ(r.ids(0), id);
    EXPECT_EQ(client.search(search_request(m.embedding, 1, "", true)).ids(0), id) << "embedding of " << id;
  }
  EXPECT_NE(run("upsert --items " + bad), 0);
  EXPECT_EQ(run("delete --ids 8000000,8000001,8000002"), 0);
  EXPECT_EQ(client.search(search_request(fresh.begin()->second.embedding, 2, term(kIdFeature, 8000000), true)).ids_size(), 0);
  { std::ofstream(dir_->path() + "/ids.txt") << "8000003\n8000004, 8000005\n"; }
  EXPECT_EQ(run("delete --ids-file " + dir_->path() + "/ids.txt"), 0);
  EXPECT_NE(run("delete --ids 5,-1"), 0);
  EXPECT_EQ(run("admin snapshot"), 0);
  v1::Request health;
  health.mutable_health();
  EXPECT_EQ(client.call(health).health().items(), kBaseItems + 1);
}

// The acceptance check: a long random mix through the gateway equals a fresh build.
TEST_F(UpdateCluster, RandomMixEqualsFreshBuildAndStatsReportIt) {
  SCOPED_TRACE(test::seed_note(seed_));
  Client client(cluster_->endpoint());
  std::vector<int64_t> pool;
  for (int64_t id = 0; id < 600; ++id) pool.push_back(id);
  for (int64_t id = 0; id < 300; ++id) pool.push_back(5000000 + id);
  for (int op = 0; op < 250; ++op) {
    const int n = 1 + int((*rng_)() % 8);
    std::set<int64_t> ids;
    while (int(ids.size()) < n) ids.insert(pool[size_t((*rng_)() % pool.size())]);
    if ((*rng_)() % 3 == 0) {
      write(client, delete_request(std::vector<int64_t>(ids.begin(), ids.end())));
    } else {
      Model batch;
      for (int64_t id : ids) batch[id] = random_item(*rng_, id, next_version_++);
      write(client, upsert_request(batch));
    }
  }
  expect_cluster_equals_fresh_build(client, *model_, *rng_);
  std::this_thread::sleep_for(milliseconds(500));  // one stats interval
  v1::Request stats;
  stats.mutable_stats();
  const v1::StatsResponse s = client.call(stats).stats();
  EXPECT_GT(s.upserts(), 60);
  EXPECT_GT(s.deletes(), 7);
  EXPECT_GT(s.tombstone_ratio(), 0.0);
  EXPECT_LT(s.tombstone_ratio(), 1.0);
  EXPECT_GE(s.wal_sequence(), 250u);  // one record per request
  EXPECT_GT(s.wal_bytes(), 32);
}

// Snapshot, more writes, a clean restart: the snapshot plus the log's tail give the same items.
TEST_F(UpdateCluster, ZzSnapshotAndRestartKeepEverything) {
  SCOPED_TRACE(test::seed_note(seed_));
  {
    Client client(cluster_->endpoint());
    v1::Request snap;
    snap.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
    const v1::Response r = client.call(snap, milliseconds(120000));
    ASSERT_TRUE(r.has_admin());
    ASSERT_EQ(r.admin().status().code(), v1::OK) << r.admin().status().message();
    EXPECT_EQ(r.admin().items(), int64_t(model_->size()));
    EXPECT_TRUE(fs::exists(r.admin().path() + "/MANIFEST.argent")) << r.admin().path();
    v1::Request stats;
    stats.mutable_stats();
    const v1::StatsResponse s = client.call(stats).stats();
    EXPECT_EQ(s.snapshot_sequence(), r.admin().sequence());
    EXPECT_EQ(s.wal_bytes(), 32) << "the log was not truncated to its header";
    Model more;
    for (int i = 0; i < 30; ++i) more[6000000 + i] = random_item(*rng_, 6000000 + i, next_version_++);
    write(client, upsert_request(more));
    write(client, delete_request({100, 101, 6000003}));
  }
  ASSERT_TRUE(cluster_->job().stop(SIGTERM, std::chrono::seconds(30)));
  cluster_->start();
  Client client(cluster_->endpoint());
  expect_cluster_equals_fresh_build(client, *model_, *rng_);
  EXPECT_NE(cluster_->job().log().find("replayed 2 log records"), std::string::npos)
      << cluster_->job().log();
}

}  // namespace
}  // namespace argent
