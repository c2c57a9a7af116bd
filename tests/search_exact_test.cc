// Exact search end to end: an index built by index_builder into a temporary directory, loaded by
// LocalEngine, searched with every list probed, must return what a float64 brute force over the
// index's dequantized int8 vectors returns. Several partitions, dims that are not multiples of
// the SIMD width, custom ids, k = 1 / 10 / 100, and every SIMD level this CPU runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <tuple>
#include <vector>

#include "kernels/cpu/quantize.h"
#include "kernels/cpu/score_tile.h"
#include "kernels/layout.h"
#include "shard/index_builder.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using test::Rng;

// The engine's float score is float(dot) * q_scale * x_scale with dot exact (|dot| < 2^24 at
// these dims): two float roundings, each within 2^-24 relative. 1e-6 relative (about eight ulps)
// bounds that with margin and is far below the gap between distinct scores it must rank.
constexpr double kScoreTol = 1e-6;

// The scores the engine computes, exactly as kernels/layout.h defines them, in float.
std::vector<std::pair<float, int64_t>> exact_float32_ranking(const test::StoredItems& items,
                                                             const QueryBatch& q, int64_t qi,
                                                             const test::RefExpr* eligible) {
  const int d_pad = items.d_pad;
  const int8_t* qc = q.codes.data() + qi * d_pad;
  std::vector<std::pair<float, int64_t>> out;
  for (size_t i = 0; i < items.ids.size(); ++i) {
    if (eligible != nullptr && !test::ref_eval(*eligible, items.features[i])) continue;
    int32_t dot = 0;
    for (int j = 0; j < d_pad; ++j)
      dot += int32_t(qc[j]) * items.codes[i * size_t(d_pad) + size_t(j)];
    out.emplace_back(float(dot) * q.scales[size_t(qi)] * items.scales[i], items.ids[i]);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  return out;
}

using ExactParam = std::tuple<int /*dim*/, bool /*normalize*/, int /*partitions*/, int /*nlist*/>;
class ExactSearchTest : public ::testing::TestWithParam<ExactParam> {};

TEST_P(ExactSearchTest, EqualsFloat64BruteForceOverDequantizedCodes) {
  const auto [dim, normalize, partitions, nlist] = GetParam();
  const uint64_t seed = test::test_seed(uint64_t(dim * 100 + partitions * 10 + nlist));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int64_t n = 3000;
  const ItemSet items = test::random_items(rng, n, dim, test::random_ids(rng, n), 4, 4, 0.3);
  test::TempDir dir;
  IndexConfig icfg = test::small_index_config(partitions, nlist);
  icfg.normalize = normalize;
  const BuildReport report = build_index(items, icfg, dir.path());
  ASSERT_EQ(report.n_items, n);
  const Config cfg;
  const LocalEngine engine = LocalEngine::open(dir.path(), cfg);
  ASSERT_EQ(engine.meta().nlist, nlist);
  ASSERT_EQ(engine.meta().partitions, partitions);

  // The index holds exactly the items, each quantized as quantize_rows does (kernels_test checks
  // quantize_rows against its formula), with its exact features.
  const test::StoredItems stored = test::read_back(engine.shard());
  ASSERT_EQ(int64_t(stored.ids.size()), n);
  {
    const int d_pad = padded_dim(dim);
    std::vector<int8_t> codes(size_t(n) * size_t(d_pad));
    std::vector<float> scales(static_cast<size_t>(n));
    quantize_rows(items.embeddings.data(), n, dim, d_pad, normalize, codes.data(), scales.data(),
                  nullptr);
    std::map<int64_t, size_t> pos;
    for (size_t i = 0; i < stored.ids.size(); ++i) pos[stored.ids[i]] = i;
    for (int64_t i = 0; i < n; ++i) {
      auto it = pos.find(items.ids[size_t(i)]);
      ASSERT_NE(it, pos.end()) << "id " << items.ids[size_t(i)] << " missing from the index";
      ASSERT_EQ(stored.scales[it->second], scales[size_t(i)]);
      ASSERT_EQ(0, std::memcmp(stored.codes.data() + it->second * size_t(d_pad),
                               codes.data() + size_t(i) * size_t(d_pad), size_t(d_pad)));
      ASSERT_EQ(stored.features[it->second], test::features_of(items, i));
    }
  }

  // Queries: random ones, an item's own embedding, and a zero query (all scores 0: the result
  // is decided by the id tie-break alone).
  const int64_t nq = 12;
  std::vector<float> queries = test::random_normal(rng, size_t(nq * dim));
  std::copy(items.embedding(5), items.embedding(5) + dim, queries.begin() + 1 * dim);
  std::fill(queries.begin() + 2 * dim, queries.begin() + 3 * dim, 0.0f);
  const QueryBatch qb = prepare_queries(queries.data(), nq, dim, engine.meta(), {});

  const SimdLevel saved = active_simd_level();
  for (int64_t k : {1, 10, 100}) {
    SCOPED_TRACE(::testing::Message() << "k " << k);
    std::vector<int64_t> first_ids;
    std::vector<float> first_scores;
    for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512Vnni}) {
      if (!simd_level_supported(level)) continue;  // kernels_test reports unsupported levels
      SCOPED_TRACE(simd_level_name(level));
      set_simd_level(level);
      SearchOptions opts;
      opts.k = k;
      opts.exact = true;
      opts.batch = 5;  // several batches, the last one partial
      const SearchResults r = engine.search(queries.data(), nq, dim, {}, opts);
      // nprobe >= nlist is the same exact search.
      opts.exact = false;
      opts.nprobe = int32_t(nlist);
      const SearchResults r2 = engine.search(queries.data(), nq, dim, {}, opts);
      EXPECT_EQ(r.ids, r2.ids);
      EXPECT_EQ(r.scores, r2.scores);
      // Exact search skips lists by a score bound (shard/exact_search.h); the plain scan of
      // every list must agree.
      opts.exact = true;
      opts.exhaustive = true;
      const SearchResults r3 = engine.search(queries.data(), nq, dim, {}, opts);
      EXPECT_EQ(r.ids, r3.ids);
      EXPECT_EQ(r.scores, r3.scores);

      for (int64_t qi = 0; qi < nq; ++qi) {
        SCOPED_TRACE(::testing::Message() << "query " << qi);
        const int64_t* ids = r.ids.data() + qi * k;
        const float* scores = r.scores.data() + qi * k;
        const std::vector<test::Scored> ref = test::exact_int8_reference(stored, qb, qi, nullptr);
        EXPECT_TRUE(test::check_topk(ids, scores, k, ref, kScoreTol));
        // Exact where the maths allows: the engine's scores are a defined float computation,
        // so its ranking (score, then id) is fully determined.
        const auto f32 = exact_float32_ranking(stored, qb, qi, nullptr);
        for (int64_t i = 0; i < k; ++i) {
          EXPECT_EQ(ids[i], f32[size_t(i)].second) << "slot " << i;
          EXPECT_EQ(scores[i], f32[size_t(i)].first) << "slot " << i;
        }
        if (qi == 1 && normalize)
          EXPECT_EQ(ids[0], items.ids[5]) << "an item is its own nearest neighbour";
        if (qi == 2) {
          std::vector<int64_t> smallest = stored.ids;
          std::sort(smallest.begin(), smallest.end());
          for (int64_t i = 0; i < k; ++i) {
            EXPECT_EQ(scores[i], 0.0f);
            EXPECT_EQ(ids[i], smallest[size_t(i)]) << "ties must go to the smallest ids";
          }
        }
      }
      // Every SIMD level returns bit-identical results.
      if (first_ids.empty()) {
        first_ids = r.ids;
        first_scores = r.scores;
      } else {
        EXPECT_EQ(r.ids, first_ids);
        EXPECT_EQ(r.scores, first_scores);
      }
    }
  }
  set_simd_level(saved);

  // search_shard directly, with rows: each row holds the id it reports.
  const int64_t k = 10;
  std::vector<float> scores(static_cast<size_t>(nq * k));
  std::vector<int64_t> ids(static_cast<size_t>(nq * k)), rows(size_t(nq * k));
  ScanStats stats;
  search_shard(engine.shard(), qb, nullptr, 0, k, 2, scores.data(), ids.data(), rows.data(),
               &stats);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(engine.shard().row_of(ids[i]), rows[i]);
  const at::Tensor sizes = engine.shard().tensors().list_sizes;
  const int64_t non_empty = (sizes > 0).sum().item<int64_t>();
  EXPECT_EQ(stats.lists_scanned, nq * non_empty);  // every non-empty list, every query
  EXPECT_EQ(sizes.sum().item<int64_t>(), n);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ExactSearchTest,
                         ::testing::Values(ExactParam{5, true, 3, 8},     // tiny dim
                                           ExactParam{17, true, 4, 16},   // 17: not a multiple of 4
                                           ExactParam{33, false, 2, 5},   // raw inner product
                                           ExactParam{100, true, 5, 30},  //
                                           ExactParam{1, false, 3, 4}),   // dim 1
                         [](const auto& info) {
                           return "dim" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_cos" : "_ip") + "_parts" +
                                  std::to_string(std::get<2>(info.param)) + "_nlist" +
                                  std::to_string(std::get<3>(info.param));
                         });

// Fewer items than partitions (most partitions empty) and than k: every item, then padding.
TEST(ExactSearch, FewerItemsThanPartitionsAndK) {
  Rng rng(test::test_seed(9));
  const int dim = 6;
  const ItemSet items = test::random_items(rng, 5, dim, {40, -7, 1000000000000, 3, 0}, 2, 2, 0.5);
  test::TempDir dir;
  const BuildReport report = build_index(items, test::small_index_config(8, 0), dir.path());
  EXPECT_EQ(report.nlist, 1);  // auto_nlist: at least 1, at most n / 32
  const LocalEngine engine = LocalEngine::open(dir.path(), Config{});
  const test::StoredItems stored = test::read_back(engine.shard());
  const std::vector<float> q = test::random_normal(rng, dim * 3);
  const QueryBatch qb = prepare_queries(q.data(), 3, dim, engine.meta(), {});
  // k = 0 at the shard level: nothing to write, nothing scanned into a heap, no failure.
  ScanStats stats;
  search_shard(engine.shard(), qb, nullptr, 0, 0, 1, nullptr, nullptr, nullptr, &stats);
  for (bool exact : {true, false}) {
    SearchOptions opts;
    opts.k = 10;
    opts.exact = exact;
    const SearchResults r = engine.search(q.data(), 3, dim, {}, opts);
    for (int64_t qi = 0; qi < 3; ++qi)
      EXPECT_TRUE(test::check_topk(r.ids.data() + qi * 10, r.scores.data() + qi * 10, 10,
                                   test::exact_int8_reference(stored, qb, qi, nullptr), kScoreTol));
  }
}

// K = 100,000: with more items than K, the best 100,000 in order; with a filter that leaves fewer
// eligible items than K, every eligible item in order, then padding.
TEST(ExactSearch, K100000) {
  const uint64_t seed = test::test_seed(100000);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int64_t n = 110000, k = 100000, nq = 2;
  const int dim = 8;
  // One feature, values 0/1 each present with probability 1/2: "0:0" passes about half.
  const ItemSet items = test::random_items(rng, n, dim, test::random_ids(rng, n), 1, 2, 0.5);
  test::TempDir dir;
  build_index(items, test::small_index_config(2, 16), dir.path());
  const LocalEngine engine = LocalEngine::open(dir.path(), Config{});
  const test::StoredItems stored = test::read_back(engine.shard());
  const std::vector<float> q = test::random_normal(rng, size_t(nq * dim));
  const QueryBatch qb = prepare_queries(q.data(), nq, dim, engine.meta(), {});
  test::RefExpr half;
  half.feature = 0;
  half.value = 0;
  const std::vector<const test::RefExpr*> filters = {nullptr, &half};
  for (const test::RefExpr* filter : filters) {
    SCOPED_TRACE(filter ? "filter 0:0" : "no filter");
    SearchOptions opts;
    opts.k = k;
    opts.exact = true;
    const SearchResults r =
        engine.search(q.data(), nq, dim,
                      filter ? std::vector<std::string>{"0:0"} : std::vector<std::string>{}, opts);
    for (int64_t qi = 0; qi < nq; ++qi) {
      const std::vector<test::Scored> ref = test::exact_int8_reference(stored, qb, qi, filter);
      if (filter) ASSERT_LT(int64_t(ref.size()), k);  // fewer eligible than K
      EXPECT_TRUE(
          test::check_topk(r.ids.data() + qi * k, r.scores.data() + qi * k, k, ref, kScoreTol));
      const auto f32 = exact_float32_ranking(stored, qb, qi, filter);
      int64_t wrong = 0;
      for (int64_t i = 0; i < k; ++i) {
        const int64_t want = i < int64_t(f32.size()) ? f32[size_t(i)].second : -1;
        if (r.ids[size_t(qi * k + i)] != want && wrong++ < 5)
          ADD_FAILURE() << "slot " << i << ": id " << r.ids[size_t(qi * k + i)] << ", expected "
                        << want;
      }
      EXPECT_EQ(wrong, 0);
    }
  }
}

}  // namespace
}  // namespace argent
