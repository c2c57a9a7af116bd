// A retrieval module assembled and scripted in Python (tests/python/torch_ops_test.py saves it,
// with the index it was built from, in $ARGENT_TORCH_WORK: ctest runs that test first as this
// one's fixture) loaded in C++ with torch::jit::load gives the ids and scores of the built-in
// single-process search (LocalEngine); served as search.module it gives them too, also after
// streaming upserts and deletes, which reach the module through its buffers.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "common/error.h"
#include "common/npy.h"
#include "shard/local_engine.h"

namespace argent {
namespace {

constexpr int64_t kK = 10;
constexpr int32_t kNprobe = 4;  // the IVF module's nprobe (torch_ops_test.py NPROBE)

std::string work_dir() {
  const char* w = std::getenv("ARGENT_TORCH_WORK");
  return w ? w : "";
}

struct Queries {
  std::vector<float> x;
  int64_t n = 0, dim = 0;
};
Queries read_queries() {
  Queries q;
  q.x = npy_to_float_matrix(read_npy(work_dir() + "/data/queries.npy"), "queries", &q.n, &q.dim);
  return q;
}

std::vector<std::string> filters() {
  std::vector<std::string> f = {""};
  std::ifstream in(work_dir() + "/filters.txt");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) f.push_back(line);
  return f;
}

class TorchModule : public ::testing::Test {
 protected:
  void SetUp() override {
    if (work_dir().empty()) GTEST_FAIL() << "ARGENT_TORCH_WORK is not set (run through ctest)";
    ASSERT_GE(filters().size(), 3u) << "the Python fixture (torch_ops_python) did not run";
  }
};

void expect_same(const SearchResults& a, const SearchResults& b, const std::string& what) {
  ASSERT_EQ(a.ids.size(), b.ids.size()) << what;
  for (size_t i = 0; i < a.ids.size(); ++i) {
    ASSERT_EQ(a.ids[i], b.ids[i]) << what << " at " << i;
    ASSERT_EQ(a.scores[i], b.scores[i]) << what << " at " << i;
  }
}

TEST_F(TorchModule, ScriptedModuleLoadedInCppMatchesTheBuiltInSearch) {
  const Queries q = read_queries();
  const LocalEngine engine = LocalEngine::open(work_dir() + "/index", Config{});
  for (const std::string name : {"ivf", "exact"}) {
    torch::jit::Module module = torch::jit::load(work_dir() + "/retrieval_" + name + ".pt");
    const at::Tensor x =
        at::from_blob(const_cast<float*>(q.x.data()), {q.n, q.dim}, at::kFloat).clone();
    for (const std::string& f : filters()) {
      const at::Tensor plan = module.run_method("compile_filter", f).toTensor();
      const auto out = module.forward({x, plan, kK}).toTuple()->elements();
      SearchOptions o;
      o.k = kK;
      o.nprobe = kNprobe;
      o.exact = name == "exact";
      const SearchResults want = engine.search(q.x.data(), q.n, int(q.dim), {f}, o);
      SearchResults got;
      const at::Tensor ids = out[0].toTensor(), scores = out[1].toTensor();
      got.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
      got.scores.assign(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
      expect_same(got, want, name + " filter '" + f + "'");
      EXPECT_EQ(out[2].toTensor().sizes(), at::IntArrayRef({q.n, kK, 0}));
    }
  }
}

TEST_F(TorchModule, SearchModuleConfigGivesTheBuiltInResultsAlsoAfterUpdates) {
  const Queries q = read_queries();
  Config plain_cfg, module_cfg;
  module_cfg.search.module = work_dir() + "/retrieval_ivf.pt";
  LocalEngine plain = LocalEngine::open(work_dir() + "/index", plain_cfg);
  LocalEngine served = LocalEngine::open(work_dir() + "/index", module_cfg);
  auto check = [&](const std::string& when) {
    for (const bool exact : {false, true}) {
      for (const std::string& f : filters()) {
        SearchOptions o;
        o.k = kK;
        o.nprobe = kNprobe;
        o.exact = exact;
        expect_same(served.search(q.x.data(), q.n, int(q.dim), {f}, o),
                    plain.search(q.x.data(), q.n, int(q.dim), {f}, o),
                    when + (exact ? " exact" : " ivf") + " filter '" + f + "'");
      }
    }
  };
  check("as loaded");

  // Upserts (new ids and replacements, some equal to queries so they surface) and deletes,
  // applied to both engines; the module's scan reads the shard's updated tensors.
  const uint64_t seed = 12;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  ItemSet items;
  items.dim = int32_t(q.dim);
  for (int64_t i = 0; i < 600; ++i) {  // enough to make some lists grow (reallocation)
    items.ids.push_back(i < 100 ? i : 50000000 + i);
    for (int64_t j = 0; j < q.dim; ++j)
      items.embeddings.push_back(i < 8 ? q.x[size_t(i * q.dim + j)] : normal(rng));
    items.push_features({{1, int64_t(i % 3)}, {5, 8}});
  }
  const std::vector<int64_t> deletes = {100, 101, 102, 50000000 + 150};
  const void* codes_before = served.shard().tensors().codes.data_ptr();
  plain.upsert(items);
  served.upsert(items);
  // Some list overflowed its spare rows: the shard reallocated, and the module must have been
  // rebound to the new tensors (its old buffers would still hold the old rows).
  EXPECT_NE(served.shard().tensors().codes.data_ptr(), codes_before);
  EXPECT_EQ(served.remove(deletes), plain.remove(deletes));
  check("after updates (seed " + std::to_string(seed) + ")");
}

TEST_F(TorchModule, SearchModuleThatIsNotARetrievalModuleIsRejected) {
  Config cfg;
  cfg.search.module = work_dir() + "/reranker.pt";  // a TorchScript file, not an ArgentRetrieval
  try {
    LocalEngine::open(work_dir() + "/index", cfg);
    FAIL() << "a reranker file was accepted as search.module";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an ArgentRetrieval module"), std::string::npos)
        << e.what();
  }
  cfg.search.module = work_dir() + "/missing.pt";
  EXPECT_THROW(LocalEngine::open(work_dir() + "/index", cfg), Error);
}

}  // namespace
}  // namespace argent
