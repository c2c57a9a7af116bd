// End-to-end tests of `argent serve`: a 3-rank CPU cluster started with mpirun answers random
// queries through the ZeroMQ gateway exactly as a single-process search of the same index does,
// survives malformed input, and shuts down cleanly on SIGTERM; a 2-rank cluster with a tiny
// queue and long batching window shows DEADLINE_EXCEEDED and OVERLOADED.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "coordinator/client.h"
#include "serving/mpi_job.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "shard/synthetic.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

using std::chrono::milliseconds;

constexpr int kDim = 40;  // not a multiple of 16: exercises padding
constexpr int64_t kItems = 30000;

struct Cluster {
  test::TempDir tmp;  // removed with the cluster, after its job has stopped
  std::string dir, config_path, endpoint;
  Config config;
  std::unique_ptr<testing::MpiJob> job;
};

// Builds an index of synthetic items once per process (both clusters share it), in a directory
// removed when the process exits.
const std::string& shared_index() {
  static const test::TempDir dir;
  static const std::string index = [] {
    Config cfg;
    cfg.index.partitions = 16;
    const ItemSet items = generate_synthetic_items(kItems, kDim, 11, cfg.synthetic);
    build_index(items, cfg.index, dir.file("index"));
    return dir.file("index");
  }();
  return index;
}

std::unique_ptr<Cluster> start_cluster(int ranks, const std::string& serve_yaml) {
  auto c = std::make_unique<Cluster>();
  c->dir = c->tmp.path();
  c->endpoint = "ipc://" + c->dir + "/gateway.sock";
  c->config_path = c->dir + "/serve.yaml";
  std::ofstream(c->config_path) << "index:\n  dir: " << shared_index()
                                << "\nserve:\n  endpoint: " << c->endpoint << "\n"
                                << serve_yaml;
  c->config = load_config(c->config_path);
  c->job = std::make_unique<testing::MpiJob>(
      std::vector<std::string>{ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np",
                               std::to_string(ranks), ARGENT_BIN, "serve", "--config",
                               c->config_path},
      c->dir + "/serve.log");
  return c;
}

std::vector<float> random_queries(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(size_t(n * kDim));
  for (float& v : x) v = normal(rng);
  return x;
}

v1::SearchRequest search_request(const float* q, int64_t k, const std::string& filter) {
  v1::SearchRequest r;
  r.mutable_embedding()->Add(q, q + kDim);
  r.set_k(int32_t(k));
  r.set_filter(filter);
  return r;
}

// A test suite's cluster: started once before its tests (healthy), stopped after the last.
void start_shared(Cluster** cluster, int ranks, const std::string& serve_yaml) {
  *cluster = start_cluster(ranks, serve_yaml).release();
  ASSERT_TRUE((*cluster)->job->started());
  Client client((*cluster)->endpoint);
  ASSERT_TRUE(client.wait_until_healthy(milliseconds(60000))) << (*cluster)->job->log();
}

void stop_shared(Cluster** cluster) {
  if (*cluster) (*cluster)->job->stop(SIGTERM, std::chrono::seconds(30));
  delete *cluster;
  *cluster = nullptr;
}

class ServeCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    start_shared(&cluster_, 3, "  stats_interval_s: 0.5\n  max_message_bytes: 65536\n");
  }
  static void TearDownTestSuite() { stop_shared(&cluster_); }
  static Cluster* cluster_;
};
Cluster* ServeCluster::cluster_ = nullptr;

TEST_F(ServeCluster, HealthAndStatsDescribeTheCluster) {
  Client client(cluster_->endpoint);
  v1::Request health;
  health.mutable_health();
  const v1::Response h = client.call(health);
  ASSERT_TRUE(h.has_health());
  EXPECT_EQ(h.health().ranks(), 3);
  EXPECT_EQ(h.health().items(), kItems);
  EXPECT_EQ(h.health().dim(), kDim);
  EXPECT_EQ(h.health().backend(), "mpi");

  v1::Request stats;
  stats.mutable_stats();
  const v1::Response s = client.call(stats);
  ASSERT_TRUE(s.has_stats());
  ASSERT_EQ(s.stats().shards_size(), 3);
  int64_t items = 0, partitions = 0;
  for (const v1::ShardStats& shard : s.stats().shards()) {
    EXPECT_GT(shard.items(), 0);
    items += shard.items();
    partitions += shard.partitions_size();
  }
  EXPECT_EQ(items, kItems);
  EXPECT_EQ(partitions, 16);
}

// The acceptance check: for random queries with and without filters, the cluster's ids and
// scores equal a single-process search over the same index, bit for bit.
TEST_F(ServeCluster, ResultsEqualSingleProcessSearch) {
  const LocalEngine local = LocalEngine::open(shared_index(), cluster_->config);
  Client client(cluster_->endpoint);
  const int64_t n = 48;
  const std::vector<float> x = random_queries(n, 5);
  const std::vector<std::string> filters = {"", "1:3 OR 2:5", "NOT 1:1", "(1:2 | 3:4) & !5:1",
                                            "4:7"};
  for (const std::string& filter : filters) {
    for (const int64_t k : {int64_t(1), int64_t(10), int64_t(100)}) {
      SearchOptions opts;
      opts.k = k;
      opts.nprobe = cluster_->config.search.nprobe;
      const SearchResults expected = local.search(x.data(), n, kDim, {filter}, opts);
      // Pipeline all n requests so the server batches them.
      std::map<uint64_t, int64_t> query_of;
      for (int64_t q = 0; q < n; ++q) {
        v1::Request r;
        *r.mutable_search() = search_request(x.data() + q * kDim, k, filter);
        query_of[client.send(r)] = q;
      }
      for (int64_t answered = 0; answered < n; ++answered) {
        const std::optional<v1::Response> reply = client.receive(milliseconds(30000));
        ASSERT_TRUE(reply && reply->has_search()) << "filter '" << filter << "' k " << k;
        const v1::SearchResponse& got = reply->search();
        ASSERT_EQ(got.status().code(), v1::OK) << got.status().message();
        const int64_t q = query_of.at(got.request_id());
        int64_t found = 0;
        while (found < k && expected.ids[size_t(q * k + found)] >= 0) ++found;
        ASSERT_EQ(got.ids_size(), found) << "query " << q << " filter '" << filter << "'";
        for (int64_t i = 0; i < found; ++i) {
          EXPECT_EQ(got.ids(int(i)), expected.ids[size_t(q * k + i)]) << "query " << q << " rank " << i;
          EXPECT_EQ(got.scores(int(i)), expected.scores[size_t(q * k + i)]);
        }
        EXPECT_EQ(got.shard_timings_size(), 3);
      }
    }
  }
}

TEST_F(ServeCluster, ExactSearchAndExcludedIdsMatchSingleProcess) {
  const LocalEngine local = LocalEngine::open(shared_index(), cluster_->config);
  Client client(cluster_->endpoint);
  const std::vector<float> x = random_queries(8, 9);
  SearchOptions opts;
  opts.k = 20;
  opts.exact = true;
  const SearchResults expected = local.search(x.data(), 8, kDim, {}, opts);
  for (int64_t q = 0; q < 8; ++q) {
    v1::SearchRequest r = search_request(x.data() + q * kDim, 10, "");
    r.set_exact(true);
    // Exclude the 2nd and 5th best: the answer is the exact top 12 without them.
    r.add_exclude_ids(expected.ids[size_t(q * 20 + 1)]);
    r.add_exclude_ids(expected.ids[size_t(q * 20 + 4)]);
    const v1::SearchResponse got = client.search(r);
    ASSERT_EQ(got.status().code(), v1::OK) << got.status().message();
    std::vector<int64_t> want;
    for (int64_t i = 0; i < 20 && want.size() < 10; ++i)
      if (i != 1 && i != 4) want.push_back(expected.ids[size_t(q * 20 + i)]);
    EXPECT_EQ(std::vector<int64_t>(got.ids().begin(), got.ids().end()), want);
  }
}

// Sends `bytes` raw and expects an error reply whose message contains `needle`.
void expect_error_reply(Client& client, const std::string& bytes, const std::string& needle) {
  client.send_raw(bytes);
  const std::optional<v1::Response> reply = client.receive(milliseconds(10000));
  ASSERT_TRUE(reply.has_value()) << "no reply to a malformed message (" << needle << ")";
  std::string message;
  v1::StatusCode code = v1::OK;
  if (reply->has_error()) {
    code = reply->error().code();
    message = reply->error().message();
  } else if (reply->has_search()) {
    code = reply->search().status().code();
    message = reply->search().status().message();
  }
  EXPECT_EQ(code, v1::INVALID_ARGUMENT) << message;
  EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message;
}

TEST_F(ServeCluster, MalformedMessagesGetErrorsAndServingContinues) {
  Client client(cluster_->endpoint);
  std::mt19937_64 rng(3);
  std::string random_bytes(512, '\0');
  for (char& c : random_bytes) c = char(rng());
  random_bytes[0] = char(0xFF);  // an invalid tag byte: cannot parse as any message
  expect_error_reply(client, random_bytes, "argent.v1.Request");

  const std::vector<float> x = random_queries(1, 2);
  v1::Request valid;
  *valid.mutable_search() = search_request(x.data(), 10, "");
  valid.mutable_search()->set_request_id(77);
  const std::string whole = valid.SerializeAsString();
  expect_error_reply(client, whole.substr(0, whole.size() / 2), "argent.v1.Request");  // truncated
  expect_error_reply(client, "", "empty Request");                                      // no body
  v1::SearchResponse wrong_type;  // a message of another type
  wrong_type.add_ids(5);
  wrong_type.add_scores(1.0f);
  expect_error_reply(client, wrong_type.SerializeAsString(), "");
  expect_error_reply(client, std::string(70000, 'x'), "max_message_bytes");  // oversize

  v1::Request bad_dim = valid;
  bad_dim.mutable_search()->mutable_embedding()->RemoveLast();
  expect_error_reply(client, bad_dim.SerializeAsString(), "dimension");
  v1::Request nan = valid;
  nan.mutable_search()->set_embedding(3, std::nanf(""));
  expect_error_reply(client, nan.SerializeAsString(), "embedding[3]");
  v1::Request bad_filter = valid;
  bad_filter.mutable_search()->set_filter("1:2 AND (3:4");
  expect_error_reply(client, bad_filter.SerializeAsString(), "filter");
  v1::Request big_k = valid;
  big_k.mutable_search()->set_k(int32_t(cluster_->config.search.max_k + 1));
  expect_error_reply(client, big_k.SerializeAsString(), "max_k");

  // Still serving, and correctly.
  const v1::Response after = client.call(valid);
  ASSERT_TRUE(after.has_search());
  EXPECT_EQ(after.search().status().code(), v1::OK);
  EXPECT_EQ(after.search().ids_size(), 10);
  v1::Request stats;
  stats.mutable_stats();
  EXPECT_GE(client.call(stats).stats().rejected_invalid(), 8);
}

TEST_F(ServeCluster, ZzShutsDownCleanlyOnSigterm) {  // "Zz": runs last in this suite
  ASSERT_TRUE(cluster_->job->stop(SIGTERM, std::chrono::seconds(30))) << "mpirun did not exit";
  const std::string log = cluster_->job->log();
  EXPECT_NE(log.find("coordinator: shutting down"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1: shutting down"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 2: shutting down"), std::string::npos) << log;
  EXPECT_EQ(log.find("critical"), std::string::npos) << log;
}

// A cluster whose batches wait 400 ms and whose queue holds 4 requests.
class SlowCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    start_shared(&cluster_, 2, "  max_wait_us: 400000\n  max_batch: 2\n  max_queue: 4\n");
  }
  static void TearDownTestSuite() { stop_shared(&cluster_); }
  static Cluster* cluster_;
};
Cluster* SlowCluster::cluster_ = nullptr;

TEST_F(SlowCluster, RequestPastItsDeadlineGetsDeadlineExceeded) {
  Client client(cluster_->endpoint);
  const std::vector<float> x = random_queries(1, 4);
  v1::SearchRequest r = search_request(x.data(), 5, "");
  r.set_timeout_ms(50);  // the batch closes after 400 ms
  const auto start = std::chrono::steady_clock::now();
  const v1::SearchResponse got = client.search(r, milliseconds(10000));
  EXPECT_EQ(got.status().code(), v1::DEADLINE_EXCEEDED) << got.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(SlowCluster, FloodBeyondTheQueueGetsOverloaded) {
  Client client(cluster_->endpoint);
  const std::vector<float> x = random_queries(1, 6);
  const int flood = 200;
  for (int i = 0; i < flood; ++i) {
    v1::Request r;
    *r.mutable_search() = search_request(x.data(), 5, "");
    client.send(r);
  }
  int ok = 0, overloaded = 0;
  for (int i = 0; i < flood; ++i) {
    const std::optional<v1::Response> reply = client.receive(milliseconds(60000));
    ASSERT_TRUE(reply && reply->has_search()) << "reply " << i << " of " << flood << " missing";
    const v1::StatusCode code = reply->search().status().code();
    if (code == v1::OK) ++ok;
    if (code == v1::OVERLOADED) ++overloaded;
  }
  // At most one batch in flight (2) plus the queue (4) can be accepted at a time.
  EXPECT_GT(overloaded, flood / 2);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(ok + overloaded, flood);
}

}  // namespace
}  // namespace argent
