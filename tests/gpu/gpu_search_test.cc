// The CUDA search equals the CPU fused scan (kernels/cpu/fused_scan.h) on the same shard and
// queries: identical ids, scores and order, exact and IVF, with and without random filters
// (NOT included), for k from 1 to past the number of eligible items, and through the rescue
// path. The GPU probe picks the CPU prober's lists. Skipped, saying so, without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "shard/gpu_shard.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using test::Rng;

constexpr int kFeatures = 4, kValues = 5;

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<LocalEngine> engine;
  std::unique_ptr<GpuShard> gpu;
  std::unordered_map<int64_t, test::FeatureList> features;
};

// An index of n random items of dimension `dim` with nlist lists. tied: every coordinate is
// -1, 0 or 1 (few distinct embeddings, so long runs of items score exactly the same).
// edit: changes the items before the index is built.
std::unique_ptr<Fixture> make_fixture(uint64_t seed, int64_t n, int dim, int64_t nlist,
                                      bool tied = false,
                                      const std::function<void(ItemSet&)>& edit = {}) {
  auto f = std::make_unique<Fixture>();
  Rng rng(seed);
  ItemSet items =
      test::random_items(rng, n, dim, test::random_ids(rng, n), kFeatures, kValues, 0.3);
  if (tied) {
    for (int64_t i = 0; i < n; ++i) {
      float* e = items.embeddings.data() + i * dim;
      for (int j = 0; j < dim; ++j) e[j] = e[j] > 0.4f ? 1.f : e[j] < -0.4f ? -1.f : 0.f;
      e[i % dim] = 1.f;  // never the zero vector
    }
  }
  if (edit) edit(items);
  for (int64_t i = 0; i < n; ++i) f->features[items.ids[size_t(i)]] = test::features_of(items, i);
  build_index(items, test::small_index_config(2, nlist), f->dir.path());
  f->engine = std::make_unique<LocalEngine>(LocalEngine::open(f->dir.path(), Config{}));
  Prober prober(f->engine->meta());
  f->gpu = std::make_unique<GpuShard>(f->engine->shard(), prober.centroids(), 0);
  // Every batch takes the per-batch pre-passes and exact checks; the filter cache, which would
  // serve repeated filters, has tests of its own.
  f->gpu->set_filter_cache_bytes(0);
  return f;
}

struct Outputs {
  std::vector<float> scores;
  std::vector<int64_t> ids;
};

Outputs cpu_search(const Fixture& f, const QueryBatch& q, const int32_t* lists, int nprobe,
                   int64_t k) {
  Outputs o{std::vector<float>(static_cast<size_t>(q.n * k)),
            std::vector<int64_t>(static_cast<size_t>(q.n * k))};
  search_shard(f.engine->shard(), q, lists, nprobe, k, 0, o.scores.data(), o.ids.data(), nullptr,
               nullptr);
  return o;
}

// The rows of `all` (one query's every row, best first, -inf past the eligible ones) scoring at
// least its k-th: the candidates an exact threshold (a sample of every row) keeps.
int64_t rows_at_or_above_kth(const Outputs& all, int64_t k) {
  int64_t n = 0;
  while (n < int64_t(all.scores.size()) && all.scores[size_t(n)] > -1e30f &&
         all.scores[size_t(n)] >= all.scores[size_t(k - 1)])
    ++n;
  return n;
}

// The one-query sample tests' tally of their cases. At stride 1 the threshold is the exact k-th
// eligible score, so the candidates are the rows at or above it and no query is rescued; and
// enough cases must have a threshold that left rows out (a sample too small for its rank gives
// no threshold, and such a case compares nothing).
class ThresholdCases {
 public:
  void add(const GpuSearchStats& s, int64_t at_or_above_kth, int64_t eligible,
           const std::string& what) {
    if (s.sample_stride == 1) {
      EXPECT_EQ(s.candidates, at_or_above_kth) << "an exact threshold: " << what;
      EXPECT_EQ(s.rescued_queries, 0) << "an exact threshold: " << what;
    }
    ++cases_;
    above_all_ += s.candidates < eligible;
  }
  void expect_enough(uint64_t seed) const {
    EXPECT_GT(above_all_, cases_ / 4) << "of " << cases_ << " cases; seed " << seed;
  }

 private:
  int64_t cases_ = 0, above_all_ = 0;  // above_all_: cases whose threshold left out some rows
};

Outputs gpu_search(Fixture& f, const QueryBatch& q, bool exact, const int32_t* lists, int nprobe,
                   int64_t k, int stride, GpuSearchStats* stats = nullptr, int64_t cap = 0) {
  Outputs o{std::vector<float>(static_cast<size_t>(q.n * k)),
            std::vector<int64_t>(static_cast<size_t>(q.n * k))};
  f.gpu->search(q, exact, lists, nprobe, k, o.scores.data(), o.ids.data(), nullptr, stats,
                GpuShard::Tuning{stride, cap});
  return o;
}

::testing::AssertionResult same(const Outputs& cpu, const Outputs& gpu, int64_t k) {
  for (size_t i = 0; i < cpu.ids.size(); ++i) {
    if (cpu.ids[i] != gpu.ids[i] || !(cpu.scores[i] == gpu.scores[i] ||
                                      (cpu.scores[i] < -1e30f && gpu.scores[i] < -1e30f)))
      return ::testing::AssertionFailure()
             << "query " << i / size_t(k) << " slot " << i % size_t(k) << ": cpu (" << cpu.ids[i]
             << ", " << cpu.scores[i] << ") gpu (" << gpu.ids[i] << ", " << gpu.scores[i] << ")";
  }
  return ::testing::AssertionSuccess();
}

class GpuSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device here: GPU search tests skipped";
  }
};

TEST_F(GpuSearchTest, ExactAndIvfEqualCpuForManyShapes) {
  const uint64_t seed = test::test_seed(901);
  Rng rng(seed);
  for (const int dim : {7, 64, 128, 200}) {
    auto f = make_fixture(seed + dim, 6000, dim, 24);
    const int64_t nq = 37;
    std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * dim));
    // Filter modes: 0 none; 1 a random expression for most queries (more distinct plans than
    // the row pre-pass takes); 2 three expressions shared by every query (the pre-pass, and
    // blocks skipped before their codes are read); 3 two shared expressions and unfiltered
    // queries (the pre-pass without skipping); 4 one selective expression (about 12 % of rows)
    // for every query (only the rows it can pass are gathered and multiplied); 5 a selective
    // expression of its own for each query (IVF: the per-pair pre-pass, and lists probed by one
    // query gather its rows).
    std::vector<std::vector<std::string>> filter_modes(6);
    std::vector<std::string> shared;
    for (int j = 0; j < 3; ++j) {
      Rng style(seed + 100 + j);
      shared.push_back(test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style));
    }
    for (int64_t i = 0; i < nq; ++i) {
      Rng style(seed + i);
      filter_modes[1].push_back(
          i % 3 == 0 ? ""
                     : test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style));
      filter_modes[2].push_back(shared[size_t(i % 3)]);
      filter_modes[3].push_back(i % 3 == 0 ? "" : shared[size_t(i % 2)]);
      filter_modes[4].push_back("1:2 AND NOT 2:3");
      filter_modes[5].push_back("1:" + std::to_string(i % kValues + 1) + " AND NOT 2:" +
                                std::to_string(i / kValues % kValues + 1));
    }
    for (int filtered = 0; filtered < 6; ++filtered) {
      const QueryBatch q =
          prepare_queries(x.data(), nq, dim, f->engine->meta(), filter_modes[size_t(filtered)]);
      Prober prober(f->engine->meta());
      const ScanIndexView v = f->engine->shard().view();
      for (const int nprobe : {1, 5}) {
        const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
        std::vector<int32_t> gpu_lists(lists.size());
        f->gpu->probe(q, nprobe, gpu_lists.data());
        ASSERT_EQ(lists, gpu_lists) << "probe, dim " << dim << " nprobe " << nprobe << " seed "
                                    << seed;
        // Stride 16: a sparse sample (only the sampled blocks of each chunk are read).
        for (const int64_t k : {int64_t(1), int64_t(10), int64_t(300)}) {
          for (const int stride : {0, 16}) {
            EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), nprobe, k),
                             gpu_search(*f, q, false, nullptr, nprobe, k, stride), k))
                << "IVF dim " << dim << " nprobe " << nprobe << " k " << k << " stride " << stride
                << " filtered " << filtered << " seed " << seed;
          }
        }
      }
      for (const int64_t k : {int64_t(1), int64_t(100), int64_t(2500), int64_t(7000)}) {
        for (const int stride : {0, 1, 64}) {
          GpuSearchStats stats;
          EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                           gpu_search(*f, q, true, nullptr, 0, k, stride, &stats), k))
              << "exact dim " << dim << " k " << k << " stride " << stride << " filtered "
              << filtered << " seed " << seed << " rescued " << stats.rescued_queries;
        }
      }
    }
  }
}

TEST_F(GpuSearchTest, RecurringFiltersFromTheCacheEqualCpu) {
  // A filter met in a second batch is evaluated exactly over every row once (GpuFilterCache)
  // and later batches read its words instead of a pre-pass: the CPU's results, exact and IVF,
  // one plan or several (with unfiltered queries), dense, selective and with NOT. A cache too
  // small for a batch's plans leaves that batch to the pre-pass; of filters that take turns in
  // a cache of one, one stays.
  const uint64_t seed = test::test_seed(907);
  Rng rng(seed);
  const int dim = 64;
  auto f = make_fixture(seed, 6000, dim, 24);
  f->gpu->set_filter_cache_bytes(size_t(256) << 20);
  const int64_t nq = 29;
  std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * dim));
  std::vector<std::vector<std::string>> filter_sets(4);
  std::vector<std::string> shared;
  for (int j = 0; j < 3; ++j) {
    Rng style(seed + 100 + j);
    shared.push_back(test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style));
  }
  for (int64_t i = 0; i < nq; ++i) {
    filter_sets[0].push_back(shared[0]);
    filter_sets[1].push_back(i % 4 == 0 ? "" : shared[size_t(i % 3)]);
    filter_sets[2].push_back("1:2 AND NOT 2:3");  // about 12 % of the rows: gathered rows
    filter_sets[3].push_back("NOT 1:1");
  }
  Prober prober(f->engine->meta());
  const ScanIndexView v = f->engine->shard().view();
  auto check_set = [&](const std::vector<std::string>& filters, const char* what,
                       int64_t* cached_calls) {
    const QueryBatch q = prepare_queries(x.data(), nq, dim, f->engine->meta(), filters);
    const int nprobe = 5;
    const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
    for (const int64_t k : {int64_t(10), int64_t(300)}) {
      for (const int stride : {0, 1, 16}) {
        GpuSearchStats stats;
        EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                         gpu_search(*f, q, true, nullptr, 0, k, stride, &stats), k))
            << what << " exact k " << k << " stride " << stride << " seed " << seed;
        *cached_calls += stats.cached_filters;
        EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), nprobe, k),
                         gpu_search(*f, q, false, nullptr, nprobe, k, stride, &stats), k))
            << what << " IVF k " << k << " stride " << stride << " seed " << seed;
        *cached_calls += stats.cached_filters;
      }
    }
  };
  // 12 calls per set: the first meets its filters, the second computes their words, every
  // later call reads them.
  for (size_t s = 0; s < filter_sets.size(); ++s) {
    int64_t cached = 0;
    check_set(filter_sets[s], ("set " + std::to_string(s)).c_str(), &cached);
    EXPECT_EQ(cached, 11) << "set " << s << ": every call after the first from the cache";
  }
  // Room for one filter's words: the three-plan set never fits (the pre-pass serves it). Of two
  // single filters taking turns, set 2's (met more often than set 3's, which the smaller
  // capacity kept) takes the place on its first call and keeps it: set 3's is never used more
  // often, so the two do not evict each other on every call (CachedFilterSet's policy).
  f->gpu->set_filter_cache_bytes(size_t(v.n_rows / 16) * sizeof(uint32_t));
  int64_t cached = 0;
  check_set(filter_sets[1], "set 1, small cache", &cached);
  EXPECT_EQ(cached, 0) << "three plans in a cache of one";
  for (int turn = 0; turn < 3; ++turn) {
    check_set(filter_sets[2], "set 2, taking turns", &cached);
    check_set(filter_sets[3], "set 3, taking turns", &cached);
  }
  EXPECT_EQ(cached, 36) << "every call of set 2 from the cache, none of set 3";
}

TEST_F(GpuSearchTest, CoarseSamplesAreRescuedExactly) {
  // Candidate buffers barely larger than k overflow for most queries (and a coarse sample
  // leaves some thresholds too high): the rescue path must still return the CPU's answer,
  // after a sort per query (16 queries) and one of the whole batch (8).
  const uint64_t seed = test::test_seed(902);
  auto f = make_fixture(seed, 20000, 32, 16);
  Rng rng(seed);
  const int64_t k = 2000;
  for (const int64_t nq : {16, 8}) {
    std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * 32));
    const QueryBatch q = prepare_queries(x.data(), nq, 32, f->engine->meta(), {"NOT 1:2"});
    GpuSearchStats stats;
    EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                     gpu_search(*f, q, true, nullptr, 0, k, 8, &stats, k + 16), k))
        << "queries " << nq << " seed " << seed;
    EXPECT_GT(stats.rescued_queries, 0) << "the test meant to exercise the rescue path";
  }
}

TEST_F(GpuSearchTest, ThresholdsFromLargeSamplesAreExact) {
  // Samples of at least 8,192 scores a query with a rank of at most 256 take the two-stage
  // select (select_thresholds_kernel), and unfiltered exact samples are written densely, a slot
  // per sampled row. With every block sampled (stride 1) the threshold must be the exact k-th
  // eligible score: the candidates (rows at or above it; liveness and the filter are checked
  // in the collect at stride 1) are then exactly the eligible rows scoring at least the CPU's
  // k-th score, none rescued; a threshold too high or too low changes that count. A zero query
  // (every score equal) overflows the select's pool and takes the radix select. With and
  // without a filter (whose samples are appended, not dense).
  const uint64_t seed = test::test_seed(907);
  const int64_t n_items = 60000;
  auto f = make_fixture(seed, n_items, 32, 8);
  Rng rng(seed);
  const int64_t nq = 6;
  std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * 32));
  for (const std::string filter : {"", "NOT 1:2"}) {
    const QueryBatch q = prepare_queries(x.data(), nq, 32, f->engine->meta(),
                                         std::vector<std::string>(size_t(nq), filter));
    // Every eligible row of every query, best first (-inf past the eligible ones).
    const Outputs all = cpu_search(*f, q, nullptr, 0, n_items);
    for (const int64_t k : {int64_t(10), int64_t(200)}) {
      int64_t at_or_above_kth = 0;
      for (int64_t i = 0; i < nq; ++i) {
        const float* scores = all.scores.data() + i * n_items;
        for (int64_t j = 0; j < n_items && scores[j] > -1e30f && scores[j] >= scores[k - 1]; ++j)
          ++at_or_above_kth;
      }
      for (const int stride : {1, 4}) {
        GpuSearchStats stats;
        EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                         gpu_search(*f, q, true, nullptr, 0, k, stride, &stats), k))
            << "k " << k << " stride " << stride << " filter '" << filter << "' seed " << seed;
        if (stride != 1) continue;
        EXPECT_EQ(stats.rescued_queries, 0)
            << "an exact threshold: k " << k << " filter '" << filter << "' seed " << seed;
        EXPECT_EQ(stats.candidates, at_or_above_kth)
            << "an exact threshold: k " << k << " filter '" << filter << "' seed " << seed;
      }
    }
  }
  std::vector<float> zero(32, 0.f);
  const QueryBatch z = prepare_queries(zero.data(), 1, 32, f->engine->meta(), {});
  for (const int stride : {1, 4}) {
    EXPECT_TRUE(same(cpu_search(*f, z, nullptr, 0, 50),
                     gpu_search(*f, z, true, nullptr, 0, 50, stride), 50))
        << "zero query, stride " << stride << " seed " << seed;
  }
}

TEST_F(GpuSearchTest, LargeKSharesOnePoolOfCandidates) {
  // A k whose per-query buffers would pass 2^17 slots puts the batch's candidates in one pool
  // (flat candidates), and unfiltered batches defer their hits to a per-warp queue. 1.1M items
  // of dimension 16, 4 queries, k = 130,000: a sampled threshold, so the pool is smaller than
  // a buffer per query and the warps reserve runs of several slots. 300,000 items, 20 queries
  // (one a zero vector: it ties every row, so it is re-run or re-sorted), k = 140,000.
  // 150,000 items of dimension 200 (the kernel without a ring), 2 queries, k = 135,000. Exact
  // and IVF, with and without a filter; then a pool too small (a coarse sample, k + 16 slots
  // per query), whose queries that lost candidates are re-run.
  struct Case {
    int64_t items;
    int dim;
    int64_t queries, k;
  };
  const uint64_t seed = test::test_seed(906);
  for (const Case& c : {Case{1100000, 16, 4, 130000}, Case{300000, 16, 20, 140000},
                        Case{150000, 200, 2, 135000}}) {
    auto f = make_fixture(seed + c.items, c.items, c.dim, 32);
    Rng rng(seed + c.items);
    Prober prober(f->engine->meta());
    const int64_t nq = c.queries, k = c.k;
    std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * c.dim));
    if (nq == 20) std::fill(x.begin() + 5 * c.dim, x.begin() + 6 * c.dim, 0.f);
    for (const std::string filter : {"", "NOT 1:2"}) {
      const QueryBatch q = prepare_queries(x.data(), nq, c.dim, f->engine->meta(),
                                           std::vector<std::string>(size_t(nq), filter));
      const std::string what = "dim " + std::to_string(c.dim) + " queries " +
                               std::to_string(nq) + " k " + std::to_string(k) + " filter '" +
                               filter + "' seed " + std::to_string(seed);
      GpuSearchStats stats;
      EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                       gpu_search(*f, q, true, nullptr, 0, k, 0, &stats), k))
          << "exact " << what;
      EXPECT_TRUE(stats.flat_candidates) << "meant flat candidates: " << what;
      if (c.items == 1100000) EXPECT_GT(stats.sample_stride, 1) << "meant a sampled threshold";
      if (nq == 20)
        EXPECT_GE(stats.rescued_queries + stats.resorted_queries, 1) << "meant the zero query";
      if (filter.empty() && nq != 20) EXPECT_GE(stats.candidates, nq * k) << what;
      const ScanIndexView v = f->engine->shard().view();
      const int nprobe = 24;
      const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
      EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), nprobe, k),
                       gpu_search(*f, q, false, lists.data(), nprobe, k, 0), k))
          << "IVF " << what;
      if (c.queries != 20) continue;
      EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                       gpu_search(*f, q, true, nullptr, 0, k, 8, &stats, k + 16), k))
          << "overflow " << what;
      EXPECT_GT(stats.rescued_queries, 0) << "the pool meant to overflow";
    }
  }
}

TEST_F(GpuSearchTest, LargeIvfBatchesWithSparseSamples) {
  // 256 queries x 20 probed lists, lists scanned by many queries each, with a sparse sample
  // (strides 16 and 64: sampled blocks enumerated per chunk), with and without filters (some
  // unfiltered). Unfiltered, the collect defers its hits and stages the queries of a list in
  // two passes (resident_query_cap).
  const uint64_t seed = test::test_seed(903);
  auto f = make_fixture(seed, 20000, 128, 24);
  Rng rng(seed);
  const int64_t nq = 256, k = 50;
  const int nprobe = 20;
  std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * 128));
  std::vector<std::string> filters;
  for (int64_t i = 0; i < nq; ++i) {
    Rng style(seed + i);
    filters.push_back(i % 4 == 0 ? ""
                                 : test::render_expr(test::random_expr(rng, 3, kFeatures, kValues),
                                                     style));
  }
  for (const bool filtered : {false, true}) {
    const QueryBatch q = prepare_queries(x.data(), nq, 128, f->engine->meta(),
                                         filtered ? filters : std::vector<std::string>{});
    Prober prober(f->engine->meta());
    const ScanIndexView v = f->engine->shard().view();
    const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
    for (const int stride : {16, 64}) {
      GpuSearchStats stats;
      EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), nprobe, k),
                       gpu_search(*f, q, false, nullptr, nprobe, k, stride, &stats), k))
          << "stride " << stride << " filtered " << filtered << " seed " << seed;
    }
  }
}

TEST_F(GpuSearchTest, BadCallerProbesAreRefusedAndTheShardKeepsServing) {
  // Probes from a caller are checked on the device (kernels/cuda/probe_invert.cu): a list out of
  // range or named twice in a row (which would return an item twice) fails the batch with an
  // error naming the problem; the next batch is served normally.
  const uint64_t seed = test::test_seed(904);
  auto f = make_fixture(seed, 4000, 32, 12);
  Rng rng(seed);
  const int64_t nq = 4, k = 20;
  const int nprobe = 3;
  std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * 32));
  const QueryBatch q = prepare_queries(x.data(), nq, 32, f->engine->meta(), {});
  std::vector<int32_t> lists = {0, 1, 2, 3, 4, -1, 5, 5, 6, 7, 8, 9};  // row 2 repeats list 5
  try {
    gpu_search(*f, q, false, lists.data(), nprobe, k, 16);
    ADD_FAILURE() << "a repeated probe was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("repeat a list"), std::string::npos) << e.what();
  }
  lists[7] = 12;  // out of range (12 lists)
  EXPECT_THROW(gpu_search(*f, q, false, lists.data(), nprobe, k, 16), Error);
  lists[7] = 11;
  EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), nprobe, k),
                   gpu_search(*f, q, false, lists.data(), nprobe, k, 16), k))
      << "seed " << seed;
}

TEST_F(GpuSearchTest, LongRunsOfEqualScoresFollowIdOrder) {
  // A zero query scores every item 0: every eligible row ties with the k-th score. The GPU must
  // return the CPU's answer (the k smallest ids among the eligible, in id order) without a
  // quadratic tie sort or a candidate buffer overflow error, exact and IVF, with and without a
  // filter, for k below and above the candidate buffer's usual size.
  const uint64_t seed = test::test_seed(905);
  auto f = make_fixture(seed, 30000, 32, 16);
  const int64_t nq = 3;
  std::vector<float> x(static_cast<size_t>(nq * 32), 0.0f);
  Rng rng(seed);
  const std::vector<float> random = test::random_normal(rng, 32);
  std::copy(random.begin(), random.end(), x.begin() + 32);  // query 1 is not degenerate
  Prober prober(f->engine->meta());
  for (const std::string filter : {"", "1:2 OR NOT 3:1"}) {
    const QueryBatch q = prepare_queries(x.data(), nq, 32, f->engine->meta(),
                                         std::vector<std::string>(size_t(nq), filter));
    const ScanIndexView v = f->engine->shard().view();
    const int nprobe = 6;
    const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
    for (const int64_t k : {10, 100, 3000}) {
      GpuSearchStats stats;
      EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                       gpu_search(*f, q, true, nullptr, 0, k, 0, &stats), k))
          << "exact k " << k << " filter '" << filter << "' seed " << seed;
      EXPECT_GT(stats.rescued_queries + stats.resorted_queries, 0)
          << "the zero queries meant to exercise the tie rescue";
      EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), nprobe, k),
                       gpu_search(*f, q, false, lists.data(), nprobe, k, 0), k))
          << "IVF k " << k << " filter '" << filter << "' seed " << seed;
    }
  }
}

TEST_F(GpuSearchTest, LongTieRunsAreOrderedById) {
  // Items of few distinct embeddings: many items share each score. In 4 dimensions (81
  // embeddings, ~250 items each) the results of a large k cross runs longer than the in-place
  // tie sort takes, which one warp per run ranks. In 2 dimensions (~5,000 items each) a run is
  // longer than a warp ranks: the query's candidates are sorted again, ties by id. Each with a
  // buffer per query and with flat candidates (140,000 slots per query asked for).
  const uint64_t seed = test::test_seed(905);
  for (const int dim : {4, 2}) {
    const int64_t n = dim == 4 ? 20000 : 40000;
    auto f = make_fixture(seed + dim, n, dim, 16, /*tied=*/true);
    Rng rng(seed + dim);
    const int64_t nq = 8;
    std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * dim));
    Prober prober(f->engine->meta());
    for (const std::string filter : {"", "NOT 1:2"}) {
      const QueryBatch q = prepare_queries(x.data(), nq, dim, f->engine->meta(),
                                           std::vector<std::string>(size_t(nq), filter));
      const ScanIndexView v = f->engine->shard().view();
      const std::vector<int32_t> lists = prober.probe(q, 4, v.list_sizes, v.list_summaries);
      for (const int64_t k : {100, 3000}) {
        for (const bool flat : {false, true}) {
          // dim 4: sparse samples (one block in 2 or 4). dim 2: every row sampled and a slot
          // for each, so no buffer overflows and the only way to the right order is the re-sort.
          const int stride = dim == 2 ? 1 : k == 100 ? 2 : 4;
          const int64_t cap = flat ? 140000 : dim == 2 ? n : 0;
          const std::string what = "dim " + std::to_string(dim) + " k " + std::to_string(k) +
                                   (flat ? " flat" : "") + " filter '" + filter + "' seed " +
                                   std::to_string(seed);
          GpuSearchStats stats;
          EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                           gpu_search(*f, q, true, nullptr, 0, k, stride, &stats, cap), k))
              << "exact " << what;
          EXPECT_EQ(stats.flat_candidates, flat) << what;
          if (dim == 2)
            EXPECT_GT(stats.resorted_queries, 0) << "the runs meant to exercise the re-sort";
          EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), 4, k),
                           gpu_search(*f, q, false, lists.data(), 4, k, stride, nullptr, cap), k))
              << "IVF " << what;
        }
      }
    }
  }
}

TEST_F(GpuSearchTest, OneKernelTopKEqualsCpuAtItsLimits) {
  // Batches with a buffer per query and k <= 2048 take their top k from one kernel per query
  // (launch_fused_top_k): the bound of the first k valid candidates, the exact checks of the
  // flagged ones under it in rounds (a check that fails moves the bound), and a sort by
  // (score, id) in shared memory. Items of few distinct embeddings (dim 4: runs of ~250 equal
  // scores, put in id order by that sort) and of random ones, under filters whose Bloom words
  // pass false positives (NOT, random expressions), batches of 1 and 20, exact and IVF, for k
  // at 1, 700, 2048 (the largest it takes) and 2049 (the general path).
  const uint64_t seed = test::test_seed(909);
  for (const int dim : {4, 32}) {
    auto f = make_fixture(seed + dim, 20000, dim, 16, /*tied=*/dim == 4);
    Rng rng(seed + dim);
    Prober prober(f->engine->meta());
    const ScanIndexView v = f->engine->shard().view();
    for (const int64_t nq : {1, 20}) {
      std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * dim));
      for (int mode = 0; mode < 4; ++mode) {
        // 0: none; 1: NOT; 2: a random expression per query; 3: one selective expression.
        std::vector<std::string> filters;
        for (int64_t i = 0; i < nq; ++i) {
          Rng style(seed + i);
          filters.push_back(
              mode == 0   ? ""
              : mode == 1 ? "NOT 1:2"
              : mode == 2 ? test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style)
                          : "1:2 AND NOT 2:3");
        }
        const QueryBatch q = prepare_queries(x.data(), nq, dim, f->engine->meta(), filters);
        const std::vector<int32_t> lists = prober.probe(q, 4, v.list_sizes, v.list_summaries);
        for (const int64_t k : {int64_t(1), int64_t(700), int64_t(2048), int64_t(2049)}) {
          const std::string what = "dim " + std::to_string(dim) + " B " + std::to_string(nq) +
                                   " mode " + std::to_string(mode) + " k " + std::to_string(k) +
                                   " seed " + std::to_string(seed);
          for (const int stride : {0, 2}) {
            GpuSearchStats stats;
            EXPECT_TRUE(same(cpu_search(*f, q, nullptr, 0, k),
                             gpu_search(*f, q, true, nullptr, 0, k, stride, &stats), k))
                << "exact stride " << stride << " " << what;
            EXPECT_EQ(stats.fused_top_k, k <= 2048) << what;
          }
          EXPECT_TRUE(same(cpu_search(*f, q, lists.data(), 4, k),
                           gpu_search(*f, q, false, lists.data(), 4, k, 0), k))
              << "IVF " << what;
        }
      }
    }
  }
}

TEST_F(GpuSearchTest, SmallFilteredIvfBatchesEqualCpu) {
  // A one-query IVF batch under a filter the cache does not hold takes its rows' words, exact
  // (liveness and the feature check included), from a pass over its probed lists beside the
  // inversion, and its collect and emit check nothing; batches of 3 and 8 queries take the
  // Bloom pre-pass after the inversion. On a shard with deleted and replaced items and one list
  // many times the mean size (the pass takes it in several rounds), with shared expressions
  // (NOT included) and unfiltered queries among them, each batch equals the CPU. Candidate
  // buffers of k slots force re-runs of single queries, which take the one-query pass with the
  // batch's plans (several, in modes 1 and 2; in mode 3 more than four, so per-pair words, found
  // by the one-query inversion's place of each pair).
  const uint64_t seed = test::test_seed(908);
  test::TempDir dir;
  Rng rng(seed);
  const int dim = 32;
  const int64_t n = 8000;
  const std::vector<int64_t> ids = test::random_ids(rng, n);
  ItemSet items = test::random_items(rng, n, dim, ids, kFeatures, kValues, 0.3);
  // Three quarters of the items near one point: one list holds most of them.
  const std::vector<float> centre = test::random_normal(rng, size_t(dim));
  for (int64_t i = 0; i < 6000; ++i)
    for (int j = 0; j < dim; ++j)
      items.embeddings[size_t(i * dim + j)] =
          centre[size_t(j)] + 0.05f * items.embeddings[size_t(i * dim + j)];
  build_index(items, test::small_index_config(2, 16), dir.path());
  Config cfg;
  cfg.index.list_slack = 0.5;
  LocalEngine engine = LocalEngine::open(dir.path(), cfg);
  Prober prober(engine.meta());
  engine.upsert(test::random_items(rng, 200, dim,
                                   std::vector<int64_t>(ids.begin(), ids.begin() + 200), kFeatures,
                                   kValues, 0.3));
  ASSERT_EQ(engine.remove(std::vector<int64_t>(ids.begin() + 1000, ids.begin() + 1600)), 600);
  const ScanIndexView v = engine.shard().view();
  const int64_t longest = *std::max_element(v.list_sizes, v.list_sizes + v.n_lists);
  ASSERT_GT(longest * v.n_lists, 4 * v.n_rows) << "one list many times the mean size";
  GpuShard gpu(engine.shard(), prober.centroids(), 0);
  gpu.set_filter_cache_bytes(0);  // every batch takes a pre-pass
  std::vector<std::string> shared;
  for (int j = 0; j < 3; ++j) {
    Rng style(seed + 10 + j);
    shared.push_back(test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style));
  }
  shared.push_back("1:2 AND NOT 2:3");
  for (int j = 0; j < 2; ++j) {
    Rng style(seed + 20 + j);
    shared.push_back(test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style));
  }
  int64_t rescued = 0, rescued_of_many_plans = 0;
  for (const int64_t nq : {1, 3, 8}) {
    std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * dim));
    // Most queries near the crowded point, so they probe its list.
    for (int64_t i = 0; i < nq; ++i)
      for (int j = 0; j < dim; ++j)
        x[size_t(i * dim + j)] = centre[size_t(j)] + 0.1f * x[size_t(i * dim + j)];
    for (int mode = 0; mode < 4; ++mode) {
      // 0: one expression for the batch; 1: two, and unfiltered queries; 2: a different one of
      // the first four per query (up to kMaxBlockPlans plans); 3: of all six (more: per-pair
      // words, also in a re-run query's search of its own).
      std::vector<std::string> filters;
      for (int64_t i = 0; i < nq; ++i)
        filters.push_back(mode == 0   ? shared[3]
                          : mode == 1 ? (i % 3 == 2 ? "" : shared[size_t(i % 2)])
                          : mode == 2 ? shared[size_t(i % 4)]
                                      : shared[size_t(i % 6)]);
      const QueryBatch q = prepare_queries(x.data(), nq, dim, engine.meta(), filters);
      for (const int nprobe : {1, 4}) {
        const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
        for (const int64_t k : {int64_t(1), int64_t(10), int64_t(200)}) {
          Outputs cpu{std::vector<float>(size_t(nq * k)), std::vector<int64_t>(size_t(nq * k))};
          search_shard(engine.shard(), q, lists.data(), nprobe, k, 0, cpu.scores.data(),
                       cpu.ids.data(), nullptr, nullptr);
          for (const int stride : {0, 16}) {
            for (const int64_t cap : {int64_t(0), k}) {
              Outputs got{std::vector<float>(size_t(nq * k)), std::vector<int64_t>(size_t(nq * k))};
              GpuSearchStats stats;
              gpu.search(q, false, nullptr, nprobe, k, got.scores.data(), got.ids.data(), nullptr,
                         &stats, GpuShard::Tuning{stride, cap});
              EXPECT_TRUE(same(cpu, got, k))
                  << "B " << nq << " mode " << mode << " nprobe " << nprobe << " k " << k
                  << " stride " << stride << " cap " << cap << " seed " << seed;
              EXPECT_EQ(stats.probed_list_words, nq == 1) << "B " << nq << " mode " << mode;
              EXPECT_FALSE(stats.cached_filters);
              if (nq > 1) rescued += stats.rescued_queries;
              if (nq > 4 && mode == 3) rescued_of_many_plans += stats.rescued_queries;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(rescued, 0) << "no re-run of a single query from a batch; seed " << seed;
  EXPECT_GT(rescued_of_many_plans, 0)
      << "no re-run of a single query from a batch of more than 4 plans; seed " << seed;
}

TEST_F(GpuSearchTest, OneFilteredQueryOverMoreProbedRowsThanTheGpuHoldsThreads) {
  // A one-query IVF batch under a filter new to the cache takes exact words for its probed
  // lists' rows in one pass, its grid no larger than the CTAs the GPU holds at once. 600,000
  // rows probed whole are more than twice the threads of any GPU of up to 146 SMs (2,048 each),
  // so the pass's CTAs take its rows in several rounds; 300 lists and more probe slots than the
  // pass's CTA scans at once. The caller's probes put -1 slots and lists the filter's Bloom
  // summary rules out between the others; probes wider than the pass takes
  // (cuda::kMaxProbedSlots, 2,048) go the general way; 1,500 slots are more than the general
  // path's one-query inversion takes.
  const uint64_t seed = test::test_seed(907);
  Rng rng(seed);
  const int dim = 8;
  const int64_t rare_value = kValues + 4;
  auto f = make_fixture(seed, 600000, dim, 300, false, [&](ItemSet& items) {
    // A dozen items get a value no other item has (values are below kValues), on their last
    // pair (so their pairs stay sorted): a filter on it leaves their few lists possible and
    // rules the others out by their summaries.
    for (int64_t i = 0; i < items.size(); i += 50000) {
      const int64_t end = items.feature_offsets[size_t(i + 1)];
      if (end > items.feature_offsets[size_t(i)])
        items.feature_values[size_t(end - 1)] = rare_value;
    }
  });
  const ScanIndexView v = f->engine->shard().view();
  ASSERT_EQ(v.n_lists, 300);
  std::vector<std::string> filters;
  for (int j = 0; j < 3; ++j) {
    Rng style(seed + 30 + j);
    filters.push_back(test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style));
  }
  filters.push_back("1:2 AND NOT 2:3");
  std::string rare;
  for (int feature = 0; feature < kFeatures; ++feature)
    rare += (feature ? " OR " : "") + std::to_string(feature) + ":" + std::to_string(rare_value);
  filters.push_back(rare);
  // Every list, shuffled, with a -1 slot after every third; and the same padded past 2,048.
  std::vector<int32_t> every(300);
  for (int32_t l = 0; l < 300; ++l) every[size_t(l)] = l;
  std::shuffle(every.begin(), every.end(), rng);
  std::vector<int32_t> gapped;
  for (size_t i = 0; i < every.size(); ++i) {
    gapped.push_back(every[i]);
    if (i % 3 == 2) gapped.push_back(-1);
  }
  // Past the 1,024 slots the general one-query inversion takes (the pass inverts them itself).
  std::vector<int32_t> long_row = gapped;
  long_row.resize(1500, -1);
  std::vector<int32_t> wide = gapped;
  wide.resize(2100, -1);
  for (size_t j = 0; j < filters.size(); ++j) {
    std::vector<float> x = test::random_normal(rng, static_cast<size_t>(dim));
    const QueryBatch q = prepare_queries(x.data(), 1, dim, f->engine->meta(), {filters[j]});
    for (const std::vector<int32_t>* probes : {&gapped, &long_row, &wide}) {
      const int nprobe = int(probes->size());
      for (const int64_t k : {int64_t(10), int64_t(1000)}) {
        GpuSearchStats stats;
        EXPECT_TRUE(same(cpu_search(*f, q, probes->data(), nprobe, k),
                         gpu_search(*f, q, false, probes->data(), nprobe, k, 0, &stats), k))
            << "filter " << filters[j] << " nprobe " << nprobe << " k " << k << " seed " << seed;
        EXPECT_EQ(stats.probed_list_words, nprobe <= 2048) << "filter " << filters[j];
      }
    }
    // The GPU's own probe of 37 lists.
    const std::vector<int32_t> own =
        Prober(f->engine->meta()).probe(q, 37, v.list_sizes, v.list_summaries);
    GpuSearchStats stats;
    EXPECT_TRUE(same(cpu_search(*f, q, own.data(), 37, 100),
                     gpu_search(*f, q, false, nullptr, 37, 100, 0, &stats), 100))
        << "filter " << filters[j] << " GPU probe, seed " << seed;
    EXPECT_TRUE(stats.probed_list_words);
  }
  // The rare filter's summaries rule most lists out, so its probes hold such lists between
  // possible ones (usable lists come first in a probe row; -1 pads follow).
  const std::vector<float> x(size_t(dim), 1.f);
  const QueryBatch rare_q = prepare_queries(x.data(), 1, dim, f->engine->meta(), {rare});
  const std::vector<int32_t> usable =
      Prober(f->engine->meta()).probe(rare_q, 300, v.list_sizes, v.list_summaries);
  const auto n_usable =
      std::count_if(usable.begin(), usable.end(), [](int32_t l) { return l >= 0; });
  EXPECT_GT(n_usable, 0) << "seed " << seed;
  EXPECT_LT(n_usable, 100) << "seed " << seed;
}

TEST_F(GpuSearchTest, OneQueryPlansRideOnTheProbeLaunchOrAreCopiedFirst) {
  // A one-query IVF batch that probes on the GPU has its plans carried by its probe's launch
  // parameters (cuda::CarriedPlans, up to 512 bytes): the probe evaluates them on the lists'
  // summaries and stores them for the later steps. Longer plans, exact search and the caller's
  // probes copy them first instead. Each way equals the CPU, batch after batch on the same
  // shard (each batch's plans replace the last's), unfiltered batches between them, with the
  // filter cache off and, on a second copy of the shard, serving the words.
  const uint64_t seed = test::test_seed(912);
  Rng rng(seed);
  const int dim = 32, nprobe = 5;
  auto f = make_fixture(seed, 20000, dim, 16);
  Prober prober(f->engine->meta());
  GpuShard cached(f->engine->shard(), prober.centroids(), 0);
  cached.set_filter_cache_bytes(size_t(64) << 20);
  const ScanIndexView v = f->engine->shard().view();
  // 16 terms OR'ed under a NOT: 34 ops, 1,088 bytes of ops alone, too long to carry.
  std::string long_filter = "NOT 1:1 AND (3:1";
  for (int i = 1; i < 16; ++i)
    long_filter += " OR " + std::to_string(i % kFeatures) + ":" + std::to_string(i % kValues + 1);
  long_filter += ")";
  const std::vector<std::string> filters = {
      "1:2", "", "NOT (1:2 OR 2:3) AND 3:1", long_filter, "2:4 AND NOT 1:1", ""};
  int64_t eligible_long = 0;
  for (int round = 0; round < 2; ++round) {
    for (const std::string& filter : filters) {
      std::vector<float> x = test::random_normal(rng, static_cast<size_t>(dim));
      const QueryBatch q = prepare_queries(x.data(), 1, dim, f->engine->meta(), {filter});
      const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
      const bool carried = !filter.empty() && filter != long_filter;
      const std::string what = "filter '" + filter + "' round " + std::to_string(round);
      for (const int64_t k : {int64_t(1), int64_t(50)}) {
        const Outputs cpu = cpu_search(*f, q, lists.data(), nprobe, k);
        if (filter == long_filter)
          eligible_long += std::count_if(cpu.scores.begin(), cpu.scores.end(),
                                         [](float s) { return s > -1e30f; });
        GpuSearchStats stats;
        EXPECT_TRUE(same(cpu, gpu_search(*f, q, false, nullptr, nprobe, k, 0, &stats), k))
            << "GPU probe, " << what << " k " << k << " seed " << seed;
        EXPECT_EQ(stats.carried_plans, carried) << what;
        EXPECT_EQ(stats.probed_list_words, !filter.empty()) << what;
        EXPECT_EQ(stats.probed_sample, filter.empty()) << what;
        // The cached copy: its first batch of a filter meets it, its second computes the
        // words, later ones read them; each is carried the same.
        for (int call = 0; call < 3; ++call) {
          Outputs got{std::vector<float>(size_t(k)), std::vector<int64_t>(size_t(k))};
          cached.search(q, false, nullptr, nprobe, k, got.scores.data(), got.ids.data(), nullptr,
                        &stats, GpuShard::Tuning{0, 0});
          EXPECT_TRUE(same(cpu, got, k)) << "cache on, call " << call << ", " << what;
          EXPECT_EQ(stats.carried_plans, carried) << "cache on, " << what;
          EXPECT_EQ(stats.probed_sample, filter.empty() || stats.cached_filters)
              << "cache on, call " << call << ", " << what;
        }
        if (!filter.empty() && round == 1)
          EXPECT_TRUE(stats.cached_filters) << "the cache serves a recurring " << what;
        EXPECT_TRUE(same(cpu, gpu_search(*f, q, false, lists.data(), nprobe, k, 0, &stats), k))
            << "caller's probes, " << what << " k " << k << " seed " << seed;
        EXPECT_FALSE(stats.carried_plans) << "caller's probes, " << what;
        EXPECT_EQ(stats.probed_sample, filter.empty()) << "caller's probes, " << what;
        EXPECT_TRUE(
            same(cpu_search(*f, q, nullptr, 0, k), gpu_search(*f, q, true, nullptr, 0, k, 0), k))
            << "exact, " << what << " k " << k << " seed " << seed;
      }
    }
  }
  EXPECT_GT(eligible_long, 0) << "the long filter must leave some rows, seed " << seed;
}

TEST_F(GpuSearchTest, OneFilteredQueryDrawsItsSampleInItsProbedListsPass) {
  // The probed lists' pass of a one-query IVF batch also draws the sample (no sample pass is
  // launched): the eligible rows of every stride-th block, scored. The same query on a shard
  // whose filter cache holds the filter's words draws its sample over the same blocks from those
  // words, in another kernel (launch_probed_sample). Both must keep the same candidates (the
  // eligible rows at or above the threshold; a threshold off by one sample changes the count),
  // and at stride 1 those are every eligible row scoring at least the CPU's k-th. Codes blocked
  // (d = 32) and row-major (d = 128, GpuIndexView::rows_layout); filters with NOT.
  const uint64_t seed = test::test_seed(911);
  const int64_t n_items = 40000;
  const int nprobe = 6;
  ThresholdCases tally;
  for (const int dim : {32, 128}) {
    auto f = make_fixture(seed + dim, n_items, dim, 32);
    Prober prober(f->engine->meta());
    GpuShard cached(f->engine->shard(), prober.centroids(), 0);
    cached.set_filter_cache_bytes(size_t(64) << 20);
    const ScanIndexView v = f->engine->shard().view();
    Rng rng(seed + dim);
    std::vector<std::string> filters = {"NOT 1:2", "1:2 AND NOT 2:3", "3:4"};
    for (int j = 0; j < 2; ++j) {
      Rng style(seed + 40 + j);
      filters.push_back(test::render_expr(test::random_expr(rng, 3, kFeatures, kValues), style));
    }
    for (const std::string& filter : filters) {
      std::vector<float> x = test::random_normal(rng, static_cast<size_t>(dim));
      const QueryBatch q = prepare_queries(x.data(), 1, dim, f->engine->meta(), {filter});
      const std::vector<int32_t> lists = prober.probe(q, nprobe, v.list_sizes, v.list_summaries);
      // Every eligible row of the probed lists, best first (-inf past them).
      const Outputs all = cpu_search(*f, q, lists.data(), nprobe, n_items);
      const int64_t eligible =
          std::count_if(all.scores.begin(), all.scores.end(), [](float x) { return x > -1e30f; });
      auto search_cached = [&](int64_t k, int stride, GpuSearchStats* stats) {
        Outputs o{std::vector<float>(size_t(k)), std::vector<int64_t>(size_t(k))};
        cached.search(q, false, lists.data(), nprobe, k, o.scores.data(), o.ids.data(), nullptr,
                      stats, GpuShard::Tuning{stride, 0});
        return o;
      };
      // The first batch meets the filter, the second computes its words: later ones read them.
      for (int warm = 0; warm < 2; ++warm) search_cached(10, 0, nullptr);
      for (const int64_t k : {int64_t(10), int64_t(300)}) {
        const int64_t at_or_above_kth = rows_at_or_above_kth(all, k);
        const Outputs cpu = cpu_search(*f, q, lists.data(), nprobe, k);
        for (const int stride : {0, 1, 2, 16}) {
          const std::string what = "d " + std::to_string(dim) + " filter '" + filter + "' k " +
                                   std::to_string(k) + " stride " + std::to_string(stride) +
                                   " seed " + std::to_string(seed);
          GpuSearchStats in_pass, from_cache;
          EXPECT_TRUE(
              same(cpu, gpu_search(*f, q, false, lists.data(), nprobe, k, stride, &in_pass), k))
              << what;
          EXPECT_TRUE(same(cpu, search_cached(k, stride, &from_cache), k)) << what;
          ASSERT_TRUE(in_pass.probed_list_words) << what;
          ASSERT_TRUE(from_cache.cached_filters) << what;
          ASSERT_TRUE(from_cache.probed_sample) << "the cached words' one-query pass: " << what;
          ASSERT_TRUE(in_pass.probed_collect) << what;
          ASSERT_TRUE(from_cache.probed_collect) << what;
          EXPECT_EQ(in_pass.sample_stride, from_cache.sample_stride) << what;
          EXPECT_EQ(in_pass.candidates, from_cache.candidates) << what;
          EXPECT_EQ(in_pass.rescued_queries, from_cache.rescued_queries) << what;
          tally.add(in_pass, at_or_above_kth, eligible, what);
        }
      }
    }
  }
  tally.expect_enough(seed);
}

TEST_F(GpuSearchTest, OneUnfilteredQueryDrawsItsSampleInOnePass) {
  // An unfiltered one-query IVF batch draws its sample and inverts in one pass over its probed
  // lists' sampled blocks (launch_probed_sample). A batch of the same query twice takes the
  // general path (the inversion, then the scan's sample pass): each of its queries must keep as
  // many candidates as the one-query batch (a threshold off by one sample changes the count),
  // and at stride 1 those are every row scoring at least the CPU's k-th. The GPU's probe and
  // the caller's probes; codes blocked (d = 32) and row-major (d = 128); items deleted.
  const uint64_t seed = test::test_seed(913);
  const int64_t n_items = 40000;
  const int nprobe = 6;
  ThresholdCases tally;
  for (const int dim : {32, 128}) {
    auto f = make_fixture(seed + dim, n_items, dim, 32);
    // Deleted rows read kEmptyId, as the padding past a list's end does: neither is sampled.
    std::vector<int64_t> deleted;
    for (const auto& item : f->features)
      if (deleted.size() < 2000) deleted.push_back(item.first);
    ASSERT_EQ(f->engine->remove(deleted), 2000);
    Prober prober(f->engine->meta());
    f->gpu = std::make_unique<GpuShard>(f->engine->shard(), prober.centroids(), 0);
    f->gpu->set_filter_cache_bytes(0);
    const ScanIndexView v = f->engine->shard().view();
    Rng rng(seed + dim);
    for (int query = 0; query < 4; ++query) {
      std::vector<float> x = test::random_normal(rng, static_cast<size_t>(dim));
      std::vector<float> x2 = x;
      x2.insert(x2.end(), x.begin(), x.end());
      const QueryBatch one = prepare_queries(x.data(), 1, dim, f->engine->meta(), {""});
      const QueryBatch two = prepare_queries(x2.data(), 2, dim, f->engine->meta(), {"", ""});
      const std::vector<int32_t> lists = prober.probe(one, nprobe, v.list_sizes, v.list_summaries);
      const std::vector<int32_t> lists2 = prober.probe(two, nprobe, v.list_sizes, v.list_summaries);
      const Outputs all = cpu_search(*f, one, lists.data(), nprobe, n_items);
      const int64_t live =
          std::count_if(all.scores.begin(), all.scores.end(), [](float x) { return x > -1e30f; });
      for (const int64_t k : {int64_t(10), int64_t(300)}) {
        const int64_t at_or_above_kth = rows_at_or_above_kth(all, k);
        const Outputs cpu = cpu_search(*f, one, lists.data(), nprobe, k);
        Outputs cpu2 = cpu;
        cpu2.scores.insert(cpu2.scores.end(), cpu.scores.begin(), cpu.scores.end());
        cpu2.ids.insert(cpu2.ids.end(), cpu.ids.begin(), cpu.ids.end());
        for (const int stride : {0, 1, 2, 16}) {
          const std::string what = "d " + std::to_string(dim) + " query " + std::to_string(query) +
                                   " k " + std::to_string(k) + " stride " + std::to_string(stride) +
                                   " seed " + std::to_string(seed);
          GpuSearchStats probed, given, pair;
          EXPECT_TRUE(same(cpu, gpu_search(*f, one, false, nullptr, nprobe, k, stride, &probed), k))
              << "GPU probe, " << what;
          EXPECT_TRUE(
              same(cpu, gpu_search(*f, one, false, lists.data(), nprobe, k, stride, &given), k))
              << "caller's probes, " << what;
          EXPECT_TRUE(
              same(cpu2, gpu_search(*f, two, false, lists2.data(), nprobe, k, stride, &pair), k))
              << "two queries, " << what;
          ASSERT_TRUE(probed.probed_sample) << what;
          ASSERT_TRUE(given.probed_sample) << what;
          ASSERT_FALSE(pair.probed_sample) << what;
          ASSERT_TRUE(probed.probed_collect) << what;
          ASSERT_TRUE(given.probed_collect) << what;
          ASSERT_FALSE(pair.probed_collect) << what;
          EXPECT_EQ(probed.sample_stride, pair.sample_stride) << what;
          EXPECT_EQ(2 * probed.candidates, pair.candidates) << what;
          EXPECT_EQ(given.candidates, probed.candidates) << what;
          EXPECT_EQ(2 * probed.rescued_queries, pair.rescued_queries) << what;
          tally.add(probed, at_or_above_kth, live, what);
        }
      }
    }
  }
  tally.expect_enough(seed);
}

TEST_F(GpuSearchTest, WritesSyncInPlaceAndSearchAsTheCpuDoes) {
  // Upserts and deletes reach the GPU copy in place (GpuShard::sync: the written rows' blocks,
  // the pool's new end, the list tables), and it searches exactly as the CPU does on the
  // updated shard; after a compaction (reallocated tensors) sync refuses and a new copy agrees.
  const uint64_t seed = test::test_seed(906);
  test::TempDir dir;
  Rng rng(seed);
  const int dim = 32;
  const int64_t n = 6000;
  std::vector<int64_t> ids = test::random_ids(rng, n + 400);
  const std::vector<int64_t> built(ids.begin(), ids.begin() + n);
  build_index(test::random_items(rng, n, dim, built, kFeatures, kValues, 0.3),
              test::small_index_config(2, 12), dir.path());
  Config cfg;
  cfg.index.list_slack = 0.5;
  LocalEngine engine = LocalEngine::open(dir.path(), cfg);
  Prober prober(engine.meta());
  GpuShard gpu(engine.shard(), prober.centroids(), 0);

  int cached_rounds = 0;  // rounds whose filtered batches the cache served
  auto expect_same = [&](GpuShard& g, const char* when) {
    const int64_t nq = 12, k = 40;
    std::vector<float> x = test::random_normal(rng, static_cast<size_t>(nq * dim));
    for (const std::string filter : {"", "1:2 OR NOT 3:1"}) {
      const QueryBatch q = prepare_queries(x.data(), nq, dim, engine.meta(),
                                           std::vector<std::string>(size_t(nq), filter));
      Outputs cpu{std::vector<float>(size_t(nq * k)), std::vector<int64_t>(size_t(nq * k))};
      search_shard(engine.shard(), q, nullptr, 0, k, 0, cpu.scores.data(), cpu.ids.data(),
                   nullptr, nullptr);
      // Twice: the filter recurs, so from the first round's second call on it is served from
      // the filter cache (on by default in GpuShard), whose words sync() refreshes for the
      // blocks it writes.
      for (int call = 0; call < 2; ++call) {
        Outputs got{std::vector<float>(size_t(nq * k)), std::vector<int64_t>(size_t(nq * k))};
        GpuSearchStats stats;
        g.search(q, true, nullptr, 0, k, got.scores.data(), got.ids.data(), nullptr, &stats,
                 GpuShard::Tuning{});
        EXPECT_TRUE(same(cpu, got, k))
            << when << " filter '" << filter << "' call " << call << " seed " << seed;
        if (!filter.empty() && (call == 1 || cached_rounds > 0)) {
          EXPECT_TRUE(stats.cached_filters) << when << " call " << call;
          cached_rounds += call;
        }
      }
    }
  };

  for (int round = 0; round < 3; ++round) {
    const std::vector<int64_t> fresh(ids.begin() + n + round * 100,
                                     ids.begin() + n + (round + 1) * 100);
    engine.upsert(test::random_items(rng, 100, dim, fresh, kFeatures, kValues, 0.3));
    // Replace some built items (a delete and an insert each) and delete others.
    const std::vector<int64_t> replaced(built.begin() + round * 50, built.begin() + round * 50 + 25);
    engine.upsert(test::random_items(rng, 25, dim, replaced, kFeatures, kValues, 0.3));
    EXPECT_EQ(engine.remove(std::vector<int64_t>(built.begin() + 3000 + round * 40,
                                                 built.begin() + 3040 + round * 40)),
              40);
    ASSERT_TRUE(gpu.sync(engine.shard())) << "round " << round << ": in-place writes only";
    expect_same(gpu, "after in-place sync");
  }
  engine.compact();
  EXPECT_FALSE(gpu.sync(engine.shard())) << "a reallocated shard must be copied whole";
  GpuShard again(engine.shard(), prober.centroids(), 0);
  cached_rounds = 0;  // a new copy starts with an empty cache
  expect_same(again, "after compaction");
  EXPECT_GT(cached_rounds, 0);
}

}  // namespace
}  // namespace argent
