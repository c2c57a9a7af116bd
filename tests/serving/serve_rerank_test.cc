// End-to-end reranking through the gateway: a 3-rank mpirun cluster with rerank.enabled and a
// model exported by python/train_reranker.py (random weights, /usr/bin/python3). Checked against
// an in-process reference built from other parts: the single-process search's top-depth, each
// candidate's embedding dequantized by ShardIndex::dequantize_row, the Reranker run directly, and
// float64 recomputations of the blended value from the returned task scores.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>

#include "coordinator/client.h"
#include "coordinator/rerank_model.h"
#include "coordinator/reranker.h"
#include "serving/mpi_job.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "shard/synthetic.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

using std::chrono::milliseconds;

constexpr int kDim = 24;
constexpr int64_t kItems = 20000;
constexpr int64_t kDepth = 150;  // rerank.depth of the cluster
constexpr int64_t kK = 20;
// Values computed by the cluster and by the in-process Reranker run the same float32 operators
// on chunks of different sizes; GEMM blocking may reorder a few sums.
constexpr double kValueTolerance = 1e-5;

struct RerankCluster {
  test::TempDir tmp;  // removed with the cluster, after its job has stopped
  std::string dir, endpoint;
  Config config;
  std::unique_ptr<testing::MpiJob> job;
};

RerankCluster* g_cluster = nullptr;

class ServeRerank : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = std::make_unique<RerankCluster>();
    c->dir = c->tmp.path();
    c->endpoint = "ipc://" + c->dir + "/gateway.sock";
    Config build;
    build.index.partitions = 12;
    build_index(generate_synthetic_items(kItems, kDim, 5, build.synthetic), build.index,
                c->dir + "/index");
    const std::string model = c->dir + "/model.pt";
    const std::string export_cmd = "/usr/bin/python3 " + std::string(ARGENT_SOURCE_DIR) +
                                   "/python/train_reranker.py random --out " + model +
                                   " --dim 24 --hidden 32,16 --tasks click,like,share "
                                   "--activation gelu --retrieval-weight 0.5 --seed 4";
    ASSERT_EQ(std::system(export_cmd.c_str()), 0) << export_cmd;
    const std::string yaml = c->dir + "/serve.yaml";
    std::ofstream(yaml) << "index:\n  dir: " << c->dir << "/index\nserve:\n  endpoint: "
                        << c->endpoint << "\n  stats_interval_s: 0\nrerank:\n  enabled: true\n"
                        << "  model: " << model << "\n  tasks: [click, like, share]\n"
                        << "  hidden: [32, 16]\n  activation: gelu\n  depth: " << kDepth
                        << "\n  chunk_rows: 1000\n  device: cpu\n";
    c->config = load_config(yaml);
    c->job = std::make_unique<testing::MpiJob>(
        std::vector<std::string>{ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np",
                                 "3", ARGENT_BIN, "serve", "--config", yaml},
        c->dir + "/serve.log");
    ASSERT_TRUE(c->job->started());
    g_cluster = c.release();
    Client client(g_cluster->endpoint);
    ASSERT_TRUE(client.wait_until_healthy(milliseconds(60000))) << g_cluster->job->log();
  }
  static void TearDownTestSuite() {
    if (g_cluster) g_cluster->job->stop(SIGTERM, std::chrono::seconds(30));
    delete g_cluster;
    g_cluster = nullptr;
  }
};

std::vector<float> random_queries(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(size_t(n * kDim));
  for (float& v : x) v = normal(rng);
  return x;
}

v1::SearchRequest request(const float* q, int64_t k, const std::vector<float>& weights = {}) {
  v1::SearchRequest r;
  r.mutable_embedding()->Add(q, q + kDim);
  r.set_k(int32_t(k));
  r.mutable_task_weights()->Add(weights.begin(), weights.end());
  return r;
}

// The order the value implies: value descending, ties by id ascending.
std::vector<int64_t> order_by(const std::vector<double>& value, const std::vector<int64_t>& ids) {
  std::vector<size_t> idx(ids.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    return value[a] != value[b] ? value[a] > value[b] : ids[a] < ids[b];
  });
  std::vector<int64_t> out;
  for (size_t i : idx) out.push_back(ids[i]);
  return out;
}

// `got` equals `want` (ids with their values), except that two ids may trade places where their
// values are within the tolerance of each other.
void expect_same_ranking(const std::vector<int64_t>& got, const std::vector<int64_t>& want,
                         const std::map<int64_t, double>& value_of, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] == want[i]) continue;
    ASSERT_TRUE(value_of.count(got[i])) << what << ": id " << got[i] << " was not a candidate";
    EXPECT_NEAR(value_of.at(got[i]), value_of.at(want[i]), kValueTolerance)
        << what << " position " << i << ": " << got[i] << " instead of " << want[i];
  }
}

// The acceptance check: the cluster returns the reranked top-k of the retrieval top-depth, by
// the blended value of the model, with per-task scores, equal to the in-process reference.
TEST_F(ServeRerank, ResultsAreTheReferenceRerankOfTheRetrievalTopDepth) {
  const Config& cfg = g_cluster->config;
  const LocalEngine local = LocalEngine::open(cfg.index.dir, cfg);
  const RerankModel model = load_rerank_model(cfg.rerank.model, cfg.rerank, kDim);
  const Reranker reranker(model, "cpu", 7);
  const int64_t n = 12;
  const std::vector<float> x = random_queries(n, 31);
  SearchOptions opts;
  opts.k = kDepth;
  opts.nprobe = cfg.search.nprobe;
  const SearchResults retrieved = local.search(x.data(), n, kDim, {""}, opts);

  Client client(g_cluster->endpoint);
  std::map<uint64_t, int64_t> query_of;
  for (int64_t q = 0; q < n; ++q) {  // pipelined, so the server batches them
    v1::Request r;
    *r.mutable_search() = request(x.data() + q * kDim, kK);
    query_of[client.send(r)] = q;
  }
  for (int64_t answered = 0; answered < n; ++answered) {
    const std::optional<v1::Response> reply = client.receive(milliseconds(60000));
    ASSERT_TRUE(reply && reply->has_search());
    const v1::SearchResponse& got = reply->search();
    ASSERT_EQ(got.status().code(), v1::OK) << got.status().message();
    const int64_t q = query_of.at(got.request_id());
    SCOPED_TRACE("query " + std::to_string(q));

    // Reference: the query's retrieval top-depth, reranked in this process.
    std::vector<int64_t> ids;
    std::vector<float> items, scores;
    std::vector<float> item(kDim);
    for (int64_t j = 0; j < kDepth && retrieved.ids[size_t(q * kDepth + j)] >= 0; ++j) {
      ids.push_back(retrieved.ids[size_t(q * kDepth + j)]);
      scores.push_back(retrieved.scores[size_t(q * kDepth + j)]);
      local.shard().dequantize_row(local.shard().row_of(ids.back()), item.data());
      items.insert(items.end(), item.begin(), item.end());
    }
    const int64_t m = int64_t(ids.size());
    std::vector<float> user(x.begin() + q * kDim, x.begin() + (q + 1) * kDim);
    double norm = 0;
    for (float v : user) norm += double(v) * v;
    for (float& v : user) v = float(v / std::sqrt(norm));  // index.normalize
    std::vector<int64_t> zero(static_cast<size_t>(m), 0);
    RerankBatch b;
    b.n_queries = 1;
    b.users = user.data();
    b.task_weights = model.task_weights.data();
    b.m = m;
    b.query_of = zero.data();
    b.retrieval = scores.data();
    b.retrieval_weight = model.retrieval_weight;
    b.items = [&](int64_t begin, int64_t count, float* out) {
      std::copy(items.begin() + begin * kDim, items.begin() + (begin + count) * kDim, out);
    };
    std::vector<float> probs(size_t(m * 3)), values(static_cast<size_t>(m));
    reranker.score(b, probs.data(), values.data());
    std::map<int64_t, double> value_of;
    std::map<int64_t, size_t> index_of;
    for (int64_t j = 0; j < m; ++j) {
      value_of[ids[size_t(j)]] = values[size_t(j)];
      index_of[ids[size_t(j)]] = size_t(j);
    }
    std::vector<int64_t> want = order_by(std::vector<double>(values.begin(), values.end()), ids);
    want.resize(size_t(std::min<int64_t>(kK, m)));

    const std::vector<int64_t> got_ids(got.ids().begin(), got.ids().end());
    expect_same_ranking(got_ids, want, value_of, "reranked ids");
    ASSERT_EQ(got.values_size(), got.ids_size());
    ASSERT_EQ(got.scores_size(), got.ids_size());
    ASSERT_EQ(got.task_scores_size(), 3);
    EXPECT_EQ(got.task_scores(0).task(), "click");
    EXPECT_EQ(got.task_scores(2).task(), "share");
    for (int i = 0; i < got.ids_size(); ++i) {
      const size_t j = index_of.at(got.ids(i));
      EXPECT_EQ(got.scores(i), scores[j]) << "retrieval score of " << got.ids(i);
      EXPECT_NEAR(got.values(i), values[j], kValueTolerance);
      double blended = model.retrieval_weight * double(got.scores(i));
      for (int t = 0; t < 3; ++t) {
        EXPECT_NEAR(got.task_scores(t).scores(i), probs[j * 3 + size_t(t)], kValueTolerance);
        blended += double(model.task_weights[size_t(t)]) * got.task_scores(t).scores(i);
      }
      EXPECT_NEAR(got.values(i), blended, kValueTolerance) << "value != the blend of its scores";
      if (i > 0) {  // ordered by the blended value, ties by id
        EXPECT_TRUE(got.values(i - 1) > got.values(i) ||
                    (got.values(i - 1) == got.values(i) && got.ids(i - 1) < got.ids(i)));
      }
    }
  }
}

TEST_F(ServeRerank, RequestTaskWeightsChangeTheOrderAsExpected) {
  Client client(g_cluster->endpoint);
  const float w_r = load_rerank_model(g_cluster->config.rerank.model, g_cluster->config.rerank,
                                      kDim).retrieval_weight;
  const std::vector<float> x = random_queries(4, 77);
  for (int64_t q = 0; q < 4; ++q) {
    SCOPED_TRACE("query " + std::to_string(q));
    // Every candidate with its task scores, under the server's default weights.
    const v1::SearchResponse all = client.search(request(x.data() + q * kDim, kDepth));
    ASSERT_EQ(all.status().code(), v1::OK) << all.status().message();
    const std::vector<int64_t> ids(all.ids().begin(), all.ids().end());
    std::vector<std::vector<int64_t>> orders;
    for (const std::vector<float>& w :
         {std::vector<float>{1, 0, 0}, std::vector<float>{0, 1, 0}, std::vector<float>{0.2f, -1, 3}}) {
      // The expected order, recomputed in float64 from the default reply's scores.
      std::vector<double> value(ids.size());
      std::map<int64_t, double> value_of;
      for (size_t i = 0; i < ids.size(); ++i) {
        value[i] = double(w_r) * all.scores(int(i));
        for (int t = 0; t < 3; ++t) value[i] += double(w[size_t(t)]) * all.task_scores(t).scores(int(i));
        value_of[ids[i]] = value[i];
      }
      std::vector<int64_t> want = order_by(value, ids);
      want.resize(kK);
      const v1::SearchResponse got = client.search(request(x.data() + q * kDim, kK, w));
      ASSERT_EQ(got.status().code(), v1::OK) << got.status().message();
      const std::vector<int64_t> got_ids(got.ids().begin(), got.ids().end());
      expect_same_ranking(got_ids, want, value_of, "weights " + std::to_string(w[0]) + "," +
                                                       std::to_string(w[1]) + "," + std::to_string(w[2]));
      for (int i = 0; i < got.ids_size(); ++i)
        EXPECT_NEAR(got.values(i), value_of.at(got.ids(i)), kValueTolerance);
      orders.push_back(got_ids);
    }
    EXPECT_NE(orders[0], orders[1]) << "click-only and like-only weights gave the same order";
    EXPECT_NE(orders[0], orders[2]);
  }
}

TEST_F(ServeRerank, BadTaskWeightsAndDepthAreRejected) {
  Client client(g_cluster->endpoint);
  const std::vector<float> x = random_queries(1, 5);
  auto expect_invalid = [&](const v1::SearchRequest& r, const std::string& needle) {
    const v1::SearchResponse got = client.search(r);
    EXPECT_EQ(got.status().code(), v1::INVALID_ARGUMENT) << got.status().message();
    EXPECT_NE(got.status().message().find(needle), std::string::npos) << got.status().message();
  };
  expect_invalid(request(x.data(), 5, {1, 2}), "task_weights has 2 values; the reranker has 3");
  expect_invalid(request(x.data(), 5, {1, std::nanf(""), 0}), "task_weights[1] is nan");
  v1::SearchRequest deep = request(x.data(), 5);
  deep.set_rerank_depth(100001);
  expect_invalid(deep, "rerank_depth = 100001");
  // A deeper rerank than the default reaches further down the retrieval list.
  v1::SearchRequest ok = request(x.data(), 5);
  ok.set_rerank_depth(400);
  const v1::SearchResponse got = client.search(ok);
  EXPECT_EQ(got.status().code(), v1::OK) << got.status().message();
  EXPECT_EQ(got.ids_size(), 5);
}

}  // namespace
}  // namespace argent
