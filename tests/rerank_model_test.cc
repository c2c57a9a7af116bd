// The C++ reranker against the Python model it loads: python/train_reranker.py (run here with
// /usr/bin/python3 and Debian's python3-torch) exports a random model, random inputs and the
// model's own outputs (float32, and a float64 evaluation written out from the formula); the
// Reranker must reproduce them on the CPU, for every activation, several depths of MLP and
// chunk sizes that split queries. Files that disagree with the config are rejected by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/npy.h"
#include "coordinator/rerank_model.h"
#include "coordinator/reranker.h"
#include "coordinator/value_model.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

// Acceptance bound: the same LibTorch operators on the same float32 inputs; only a different
// GEMM blocking (chunks of other sizes than Python's one batch) may reorder sums.
constexpr double kFloat32Tolerance = 1e-5;
// Against the float64 evaluation: float32 rounding through a few layers of width <= 64, measured
// relative to max(|reference|, 1): a blended value is a sum of terms of order 1 that may cancel
// to near zero, where a purely relative error says nothing about the arithmetic.
constexpr double kFloat64Tolerance = 1e-5;
constexpr double kFloat64Floor = 1.0;

std::string python_script() { return std::string(ARGENT_SOURCE_DIR) + "/python/train_reranker.py"; }

// Runs `train_reranker.py ARGS`; fails the test (not skips) when Python or torch is missing.
void run_python(const std::string& args) {
  const std::string cmd = "/usr/bin/python3 " + python_script() + " " + args + " 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "failed: " << cmd << " (needs /usr/bin/python3 with python3-torch)";
}

std::vector<float> floats(const std::string& path, int64_t* rows = nullptr) {
  int64_t r = 0, c = 0;
  std::vector<float> v = npy_to_float_matrix(read_npy(path), path, &r, &c);
  if (rows) *rows = r;
  return v;
}

// A float32 or float64 array as doubles (the references are written in both).
std::vector<double> reference(const std::string& path) {
  const NpyArray a = read_npy(path);
  std::vector<double> out(static_cast<size_t>(a.element_count()));
  if (a.dtype == "<f8") {
    std::memcpy(out.data(), a.data.data(), out.size() * sizeof(double));
  } else {
    EXPECT_EQ(a.dtype, "<f4") << path;
    std::vector<float> f(out.size());
    std::memcpy(f.data(), a.data.data(), f.size() * sizeof(float));
    std::copy(f.begin(), f.end(), out.begin());
  }
  return out;
}

// max |got - want| / max(|want|, floor); floor 0 is the plain relative error.
double max_rel_error(const std::vector<float>& got, const std::vector<double>& want,
                     double floor = 0.0) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double scale = std::max(std::abs(want[i]), floor);
    worst = std::max(worst, scale > 0 ? std::abs(double(got[i]) - want[i]) / scale
                                      : std::abs(double(got[i])));
  }
  return worst;
}

struct Case {
  int dim;
  std::string hidden;  // comma separated
  std::string activation;
  int tasks;
  int64_t chunk_rows;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "dim " << c.dim << " hidden [" << c.hidden << "] " << c.activation << " tasks " << c.tasks
      << " chunk " << c.chunk_rows;
}

RerankConfig config_for(const Case& c) {
  RerankConfig r;
  r.tasks.clear();
  for (int t = 0; t < c.tasks; ++t) r.tasks.push_back("task" + std::to_string(t));
  r.hidden.clear();
  std::stringstream in(c.hidden);
  std::string h;
  while (std::getline(in, h, ',')) r.hidden.push_back(std::stoll(h));
  r.activation = c.activation;
  return r;
}

std::string python_args(const Case& c, const RerankConfig& r, uint64_t seed) {
  std::string tasks;
  for (const std::string& t : r.tasks) tasks += (tasks.empty() ? "" : ",") + t;
  return "--dim " + std::to_string(c.dim) + " --hidden " + c.hidden + " --tasks " + tasks +
         " --activation " + c.activation + " --seed " + std::to_string(seed);
}

class RerankerVsPython : public ::testing::TestWithParam<Case> {};

TEST_P(RerankerVsPython, OutputsEqualThePythonModel) {
  const Case& c = GetParam();
  const uint64_t seed = test::test_seed(17);
  SCOPED_TRACE(test::seed_note(seed));
  test::TempDir dir;
  const RerankConfig config = config_for(c);
  ASSERT_NO_FATAL_FAILURE(run_python("reference --out " + dir.path() + " " +
                                     python_args(c, config, seed) +
                                     " --queries 6 --candidates 157"));
  const RerankModel model = load_rerank_model(dir.file("model.pt"), config, c.dim);
  int64_t n = 0, m = 0;
  const std::vector<float> users = floats(dir.file("users.npy"), &n);
  const std::vector<float> items = floats(dir.file("items.npy"), &m);
  const std::vector<int64_t> query_of =
      npy_to_int64_vector(read_npy(dir.file("query_of.npy")), "query_of");
  const std::vector<float> retrieval = floats(dir.file("retrieval.npy"));
  const std::vector<float> weights = floats(dir.file("weights.npy"));
  ASSERT_EQ(int64_t(query_of.size()), m);

  const Reranker reranker(model, "cpu", c.chunk_rows);
  RerankBatch b;
  b.n_queries = n;
  b.users = users.data();
  b.task_weights = weights.data();
  b.m = m;
  b.query_of = query_of.data();
  b.retrieval = retrieval.data();
  b.retrieval_weight = model.retrieval_weight;
  int64_t next = 0;
  b.items = [&](int64_t begin, int64_t count, float* out) {
    EXPECT_EQ(begin, next) << "chunks must come in order";
    EXPECT_LE(count, c.chunk_rows);
    next = begin + count;
    std::copy(items.begin() + begin * c.dim, items.begin() + (begin + count) * c.dim, out);
  };
  std::vector<float> probs(size_t(m * c.tasks)), values(static_cast<size_t>(m));
  reranker.score(b, probs.data(), values.data());
  EXPECT_EQ(next, m);

  EXPECT_LE(max_rel_error(probs, reference(dir.file("probs.npy"))), kFloat32Tolerance);
  EXPECT_LE(max_rel_error(values, reference(dir.file("values.npy"))), kFloat32Tolerance);
  EXPECT_LE(max_rel_error(probs, reference(dir.file("probs64.npy")), kFloat64Floor),
            kFloat64Tolerance);
  EXPECT_LE(max_rel_error(values, reference(dir.file("values64.npy")), kFloat64Floor),
            kFloat64Tolerance);

  // The stored value weights (what the module's own forward uses) through default_value_weights.
  const ValueWeights stored = default_value_weights(RerankConfig{}, model.task_weights,
                                                    model.retrieval_weight);
  std::vector<float> stored_weights;
  for (int64_t q = 0; q < n; ++q)
    stored_weights.insert(stored_weights.end(), stored.task.begin(), stored.task.end());
  b.task_weights = stored_weights.data();
  b.retrieval_weight = stored.retrieval;
  next = 0;
  reranker.score(b, probs.data(), values.data());
  EXPECT_LE(max_rel_error(values, reference(dir.file("values_model.npy"))), kFloat32Tolerance);
}

INSTANTIATE_TEST_SUITE_P(
    Models, RerankerVsPython,
    ::testing::Values(Case{40, "32,16", "relu", 4, 13},    // chunks split queries
                      Case{7, "8", "gelu", 1, 1},          // one candidate per chunk
                      Case{33, "64,32,16", "tanh", 3, 100000},
                      Case{16, "24,24", "silu", 2, 64}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

// Loads a reference model under a config that differs in one way; expects the error to say so.
void expect_load_error(const std::string& model, const RerankConfig& config, int64_t dim,
                       const std::vector<std::string>& fragments) {
  try {
    load_rerank_model(model, config, dim);
    FAIL() << "loaded despite the mismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    for (const std::string& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << f << "\"";
  }
}

TEST(RerankModelFile, MismatchesWithTheConfigAreNamed) {
  test::TempDir dir;
  const Case c{12, "16,8", "relu", 3, 64};
  const RerankConfig config = config_for(c);
  ASSERT_NO_FATAL_FAILURE(run_python("random --out " + dir.file("model.pt") + " " +
                                     python_args(c, config, 3)));
  EXPECT_NO_THROW(load_rerank_model(dir.file("model.pt"), config, 12));

  expect_load_error(dir.file("model.pt"), config, 13, {"model dim 12 != index dim 13"});
  RerankConfig hidden = config;
  hidden.hidden = {16, 9};
  expect_load_error(dir.file("model.pt"), hidden, 12, {"hidden sizes [16, 8] != rerank.hidden [16, 9]"});
  RerankConfig tasks = config;
  tasks.tasks.back() = "share";
  expect_load_error(dir.file("model.pt"), tasks, 12, {"tasks [task0, task1, task2]", "share"});
  RerankConfig act = config;
  act.activation = "gelu";
  expect_load_error(dir.file("model.pt"), act, 12, {"activation 'relu' != rerank.activation 'gelu'"});

  // A file whose layer 1 has 9 outputs although its attributes say 8.
  ASSERT_NO_FATAL_FAILURE(run_python("reference --out " + dir.file("bad") + " " +
                                     python_args(c, config, 3) + " --bad-layer 1"));
  expect_load_error(dir.file("bad/model.pt"), config, 12,
                    {"overarch.layers.1.weight is [9, 16], expected [8, 16]", "rerank.hidden[1]"});

  expect_load_error(dir.file("missing.pt"), config, 12, {"no such file"});
  std::ofstream(dir.file("garbage.pt")) << "not a zip archive at all";
  expect_load_error(dir.file("garbage.pt"), config, 12, {"not a TorchScript file"});
}

TEST(ValueModel, OrderIsValueDescendingThenIdAndNaNLast) {
  const std::vector<float> values = {0.5f, 2.0f, std::nanf(""), 2.0f, -1.0f, 0.5f};
  const std::vector<int64_t> ids = {10, 7, 1, 3, 2, 9};
  EXPECT_EQ(order_by_value(values.data(), ids.data(), 6, 6),
            (std::vector<int64_t>{3, 1, 5, 0, 4, 2}));
  EXPECT_EQ(order_by_value(values.data(), ids.data(), 6, 2), (std::vector<int64_t>{3, 1}));
  EXPECT_TRUE(order_by_value(values.data(), ids.data(), 6, 0).empty());
}

TEST(ValueModel, RequestWeightsAreChecked) {
  const float ok[] = {1.0f, 0.0f, -2.0f};
  EXPECT_EQ(task_weights_problem(ok, 3, 3), "");
  EXPECT_EQ(task_weights_problem(ok, 0, 3), "");
  EXPECT_NE(task_weights_problem(ok, 2, 3).find("task_weights has 2 values; the reranker has 3"),
            std::string::npos);
  const float bad[] = {1.0f, std::nanf("")};
  EXPECT_NE(task_weights_problem(bad, 2, 2).find("task_weights[1] is nan"), std::string::npos);
}

}  // namespace
}  // namespace argent
