// A served cluster whose shards run a retrieval module scripted in Python (search.module; the
// module and its index come from tests/python/torch_ops_test.py, this test's ctest fixture)
// answers exactly as the built-in single-process search does, before and after streaming
// upserts and deletes through the gateway (which change each rank's shard tensors, the module's
// bound buffers).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/npy.h"
#include "coordinator/client.h"
#include "serving/mpi_job.h"
#include "shard/local_engine.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int64_t kK = 10;
constexpr int kRanks = 3;

std::string work_dir() {
  const char* w = std::getenv("ARGENT_TORCH_WORK");
  return w ? w : "";
}

class ServeModule : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(work_dir().empty()) << "ARGENT_TORCH_WORK is not set (run through ctest)";
    ASSERT_TRUE(fs::exists(work_dir() + "/retrieval_ivf.pt"))
        << "the Python fixture (torch_ops_python) did not run";
    // The cluster writes its log into the index directory: serve a copy.
    index_ = dir_.path() + "/index";
    fs::copy(work_dir() + "/index", index_, fs::copy_options::recursive);
    endpoint_ = "ipc://" + dir_.path() + "/gateway.sock";
    const std::string config_path = dir_.path() + "/serve.yaml";
    std::ofstream(config_path) << "index:\n  dir: " << index_ << "\nsearch:\n  nprobe: 4\n"
                               << "  module: " << work_dir() << "/retrieval_ivf.pt\n"
                               << "serve:\n  endpoint: " << endpoint_ << "\n";
    config_ = load_config(config_path);
    job_ = std::make_unique<testing::MpiJob>(
        std::vector<std::string>{ARGENT_MPIEXEC, "--oversubscribe", "--bind-to", "none", "-np",
                                 std::to_string(kRanks), ARGENT_BIN, "serve", "--config",
                                 config_path},
        dir_.path() + "/serve.log");
    ASSERT_TRUE(job_->started());
    Client client(endpoint_);
    ASSERT_TRUE(client.wait_until_healthy(milliseconds(60000))) << job_->log();
  }
  void TearDown() override {
    if (job_) job_->stop(SIGTERM, std::chrono::seconds(30));
  }

  // Every query's answer from the cluster equals `local`'s, bit for bit.
  void expect_cluster_equals(const LocalEngine& local, const std::vector<float>& x, int64_t n,
                             int dim, const std::string& when) {
    Client client(endpoint_);
    for (const bool exact : {false, true}) {
      for (const std::string filter : {"", "1:1 OR 5:8", "NOT 2:1"}) {
        SearchOptions opts;
        opts.k = kK;
        opts.nprobe = config_.search.nprobe;
        opts.exact = exact;
        const SearchResults want = local.search(x.data(), n, dim, {filter}, opts);
        for (int64_t q = 0; q < n; ++q) {
          v1::SearchRequest r;
          r.mutable_embedding()->Add(x.begin() + q * dim, x.begin() + (q + 1) * dim);
          r.set_k(int32_t(kK));
          r.set_filter(filter);
          r.set_exact(exact);
          const v1::SearchResponse got = client.search(r);
          ASSERT_EQ(got.status().code(), v1::OK) << got.status().message();
          int64_t found = 0;
          while (found < kK && want.ids[size_t(q * kK + found)] >= 0) ++found;
          ASSERT_EQ(got.ids_size(), found) << when << " query " << q << " '" << filter << "'";
          for (int64_t i = 0; i < found; ++i) {
            ASSERT_EQ(got.ids(int(i)), want.ids[size_t(q * kK + i)])
                << when << (exact ? " exact" : " ivf") << " query " << q << " '" << filter
                << "' rank " << i;
            ASSERT_EQ(got.scores(int(i)), want.scores[size_t(q * kK + i)]);
          }
        }
      }
    }
  }

  test::TempDir dir_;
  std::string index_, endpoint_;
  Config config_;
  std::unique_ptr<testing::MpiJob> job_;
};

TEST_F(ServeModule, ModuleClusterEqualsBuiltInSearchBeforeAndAfterUpdates) {
  int64_t n = 0, dim = 0;
  std::vector<float> x =
      npy_to_float_matrix(read_npy(work_dir() + "/data/queries.npy"), "queries", &n, &dim);
  n = std::min<int64_t>(n, 16);
  x.resize(size_t(n * dim));
  Config plain;
  plain.search.nprobe = config_.search.nprobe;
  LocalEngine local = LocalEngine::open(work_dir() + "/index", plain);
  expect_cluster_equals(local, x, n, int(dim), "as loaded");

  // Upserts (a few equal to queries, so they surface) and deletes through the gateway.
  const uint64_t seed = 77;
  test::Rng rng(seed);
  ItemSet items;
  items.dim = int32_t(dim);
  v1::Request upsert;
  for (int64_t i = 0; i < 60; ++i) {
    const int64_t id = 70000000 + i;
    std::vector<float> e = i < 6 ? std::vector<float>(x.begin() + i * dim, x.begin() + (i + 1) * dim)
                                 : test::random_normal(rng, size_t(dim));
    items.ids.push_back(id);
    items.embeddings.insert(items.embeddings.end(), e.begin(), e.end());
    items.push_features({{1, 1}, {5, 8}});
    v1::Item* item = upsert.mutable_upsert()->add_items();
    item->set_id(id);
    item->mutable_embedding()->Add(e.begin(), e.end());
    (*item->mutable_features())[1].add_values(1);
    (*item->mutable_features())[5].add_values(8);
  }
  v1::Request del;
  for (int64_t id : {70000000 + 10, 70000000 + 11}) del.mutable_delete_()->add_ids(id);
  Client client(endpoint_);
  for (const v1::Request& r : {upsert, del}) {
    const v1::Response reply = client.call(r);
    ASSERT_TRUE(reply.has_mutation()) << reply.DebugString();
    ASSERT_EQ(reply.mutation().status().code(), v1::OK) << reply.mutation().status().message();
  }
  local.upsert(items);
  local.remove({70000000 + 10, 70000000 + 11});
  expect_cluster_equals(local, x, n, int(dim), "after updates (seed " + std::to_string(seed) + ")");
}

}  // namespace
}  // namespace argent
