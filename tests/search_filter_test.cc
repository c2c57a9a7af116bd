// Filtered search: every returned item satisfies its query's filter, checked against the item's
// original features with the independent evaluator, and filtered exact search equals a brute
// force over the eligible items. Filters pass ~0%, ~1%, ~50% and 100% of the items.
#include <gtest/gtest.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/bloom.h"
#include "shard/index_builder.h"
#include "shard/prober.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using test::Rng;

constexpr double kScoreTol = 1e-6;  // as in search_exact_test: two float roundings, with margin

constexpr int kDim = 24;
constexpr int64_t kItems = 4000;
constexpr int kFeatures = 5, kValues = 6;
constexpr int32_t kRareFeature = 9;  // (9, 1) on ~1% of the items

class FilteredSearchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    seed_ = test::test_seed(4242);
    Rng rng(seed_);
    items_ = new ItemSet(test::random_items(rng, kItems, kDim, test::random_ids(rng, kItems),
                                            kFeatures, kValues, 0.25));
    // Re-draw the features with a rare pair added.
    ItemSet& it = *items_;
    it.feature_offsets = {0};
    it.feature_ids.clear();
    it.feature_values.clear();
    std::bernoulli_distribution present(0.25), rare(0.01);
    for (int64_t i = 0; i < kItems; ++i) {
      std::vector<std::pair<int32_t, int64_t>> pairs;
      for (int32_t f = 0; f < kFeatures; ++f)
        for (int64_t v = 0; v < kValues; ++v)
          if (present(rng)) pairs.emplace_back(f, v);
      if (rare(rng)) pairs.emplace_back(kRareFeature, 1);
      it.push_features(pairs);
    }
    features_ = new std::unordered_map<int64_t, test::FeatureList>;
    for (int64_t i = 0; i < kItems; ++i) (*features_)[it.ids[size_t(i)]] = test::features_of(it, i);
    dir_ = new test::TempDir;
    build_index(it, test::small_index_config(3, 20), dir_->path());
    engine_ = new LocalEngine(LocalEngine::open(dir_->path(), Config{}));
    stored_ = new test::StoredItems(test::read_back(engine_->shard()));
  }
  static void TearDownTestSuite() {
    delete stored_;
    delete engine_;
    delete dir_;
    delete items_;
    delete features_;
  }

  // Checks that each returned id satisfies `expr` on the item's original features.
  static ::testing::AssertionResult all_obey(const int64_t* ids, int64_t k,
                                             const test::RefExpr* expr) {
    for (int64_t i = 0; i < k; ++i) {
      if (ids[i] == -1) continue;
      auto f = features_->find(ids[i]);
      if (f == features_->end()) return ::testing::AssertionFailure() << "unknown id " << ids[i];
      if (expr && !test::ref_eval(*expr, f->second))
        return ::testing::AssertionFailure()
               << "id " << ids[i] << " (slot " << i << ") does not satisfy the filter";
    }
    return ::testing::AssertionSuccess();
  }

  static uint64_t seed_;
  static ItemSet* items_;
  static std::unordered_map<int64_t, test::FeatureList>* features_;
  static test::TempDir* dir_;
  static LocalEngine* engine_;
  static test::StoredItems* stored_;
};

uint64_t FilteredSearchTest::seed_ = 0;
ItemSet* FilteredSearchTest::items_ = nullptr;
std::unordered_map<int64_t, test::FeatureList>* FilteredSearchTest::features_ = nullptr;
test::TempDir* FilteredSearchTest::dir_ = nullptr;
LocalEngine* FilteredSearchTest::engine_ = nullptr;
test::StoredItems* FilteredSearchTest::stored_ = nullptr;

struct NamedFilter {
  std::string text;
  test::RefExpr expr;
};

test::RefExpr term(int32_t f, int64_t v) {
  test::RefExpr e;
  e.feature = f;
  e.value = v;
  return e;
}
test::RefExpr op(test::RefExpr::Kind kind, std::vector<test::RefExpr> children) {
  test::RefExpr e;
  e.kind = kind;
  e.children = std::move(children);
  return e;
}

// Fixed filters at the edges of selectivity, then random ones.
std::vector<NamedFilter> filters(Rng& rng) {
  using K = test::RefExpr::Kind;
  std::vector<NamedFilter> out = {
      {"9:1", term(9, 1)},                                                        // ~1%
      {"NOT 9:1", op(K::kNot, {term(9, 1)})},                                     // ~99%
      {"9:1 AND NOT 9:1", op(K::kAnd, {term(9, 1), op(K::kNot, {term(9, 1)})})},  // 0%
      {"NOT (9:1 AND NOT 9:1)",
       op(K::kNot, {op(K::kAnd, {term(9, 1), op(K::kNot, {term(9, 1)})})})},  // 100%
      {"77:5", term(77, 5)},  // a feature no item has: 0%
      {"0:1 & !1:2 | 9:1",
       op(K::kOr, {op(K::kAnd, {term(0, 1), op(K::kNot, {term(1, 2)})}), term(9, 1)})},
  };
  for (int i = 0; i < 24; ++i) {
    test::RefExpr e = test::random_expr(rng, 4, kFeatures, kValues);
    out.push_back({test::render_expr(e, rng), e});
  }
  return out;
}

TEST_F(FilteredSearchTest, ExactFilteredSearchEqualsBruteForceOverEligibleItems) {
  SCOPED_TRACE(test::seed_note(seed_));
  Rng rng(seed_ + 1);
  const int64_t nq = 4, k = 50;
  const std::vector<float> q = test::random_normal(rng, size_t(nq * kDim));
  const QueryBatch qb = prepare_queries(q.data(), nq, kDim, engine_->meta(), {});
  int64_t empty_results = 0, full_results = 0, packed_rows = 0;
  for (const NamedFilter& f : filters(rng)) {
    SCOPED_TRACE("filter \"" + f.text + "\"");
    SearchOptions opts;
    opts.k = k;
    opts.exact = true;
    const SearchResults r = engine_->search(q.data(), nq, kDim, {f.text}, opts);
    opts.exhaustive = true;  // the plain scan of every list, without the lists' score bounds
    const SearchResults full = engine_->search(q.data(), nq, kDim, {f.text}, opts);
    EXPECT_EQ(r.ids, full.ids);
    EXPECT_EQ(r.scores, full.scores);
    packed_rows += full.stats.rows_packed;
    for (int64_t qi = 0; qi < nq; ++qi) {
      const std::vector<test::Scored> ref = test::exact_int8_reference(*stored_, qb, qi, &f.expr);
      EXPECT_TRUE(all_obey(r.ids.data() + qi * k, k, &f.expr));
      EXPECT_TRUE(
          test::check_topk(r.ids.data() + qi * k, r.scores.data() + qi * k, k, ref, kScoreTol));
      empty_results += ref.empty();
      full_results += int64_t(ref.size()) == kItems;
    }
  }
  EXPECT_GT(empty_results, 0);  // the 0% filters were exercised
  EXPECT_GT(full_results, 0);   // and the 100% one
  // The selective filters' rows were packed (the 100 % and unfiltered scans run in place).
  EXPECT_GT(packed_rows, 0);
}

// Approximate search (few lists probed): not the exact top-K, but every result obeys the filter,
// carries its exact score, and the list is ordered without duplicates.
TEST_F(FilteredSearchTest, ApproximateResultsObeyTheirFilters) {
  SCOPED_TRACE(test::seed_note(seed_));
  Rng rng(seed_ + 2);
  const int64_t nq = 6, k = 40;
  const std::vector<float> q = test::random_normal(rng, size_t(nq * kDim));
  const QueryBatch qb = prepare_queries(q.data(), nq, kDim, engine_->meta(), {});
  for (const NamedFilter& f : filters(rng)) {
    SCOPED_TRACE("filter \"" + f.text + "\"");
    SearchOptions opts;
    opts.k = k;
    opts.nprobe = 3;
    const SearchResults r = engine_->search(q.data(), nq, kDim, {f.text}, opts);
    for (int64_t qi = 0; qi < nq; ++qi) {
      const int64_t* ids = r.ids.data() + qi * k;
      const float* scores = r.scores.data() + qi * k;
      EXPECT_TRUE(all_obey(ids, k, &f.expr));
      // Treat the returned items as the whole eligible set: check_topk then verifies order,
      // uniqueness, padding and each score against its exact value.
      const std::vector<test::Scored> all = test::exact_int8_reference(*stored_, qb, qi, &f.expr);
      std::vector<test::Scored> returned;
      for (int64_t i = 0; i < k && ids[i] != -1; ++i)
        for (const test::Scored& s : all)
          if (s.id == ids[i]) returned.push_back(s);
      test::sort_reference(returned);
      EXPECT_TRUE(test::check_topk(ids, scores, k, returned, kScoreTol));
    }
  }
}

// One filter per query in the same batch, "" meaning none: each query gets its own filter.
TEST_F(FilteredSearchTest, PerQueryFiltersInOneBatch) {
  SCOPED_TRACE(test::seed_note(seed_));
  Rng rng(seed_ + 3);
  std::vector<NamedFilter> fs = filters(rng);
  fs.resize(10);
  fs.push_back({"", test::RefExpr{}});
  fs.push_back({"9:1", term(9, 1)});  // the same text twice shares one compiled plan
  const int64_t nq = int64_t(fs.size()), k = 20;
  const std::vector<float> q = test::random_normal(rng, size_t(nq * kDim));
  std::vector<std::string> texts;
  for (const NamedFilter& f : fs) texts.push_back(f.text);
  const QueryBatch qb = prepare_queries(q.data(), nq, kDim, engine_->meta(), texts);
  EXPECT_EQ(qb.plan_of_query[10], -1);
  EXPECT_EQ(qb.plan_of_query[11], qb.plan_of_query[0]);
  SearchOptions opts;
  opts.k = k;
  opts.exact = true;
  opts.batch = 5;
  const SearchResults r = engine_->search(q.data(), nq, kDim, texts, opts);
  for (int64_t qi = 0; qi < nq; ++qi) {
    SCOPED_TRACE("query " + std::to_string(qi) + " filter \"" + fs[size_t(qi)].text + "\"");
    const test::RefExpr* e = fs[size_t(qi)].text.empty() ? nullptr : &fs[size_t(qi)].expr;
    EXPECT_TRUE(all_obey(r.ids.data() + qi * k, k, e));
    EXPECT_TRUE(test::check_topk(r.ids.data() + qi * k, r.scores.data() + qi * k, k,
                                 test::exact_int8_reference(*stored_, qb, qi, e), kScoreTol));
  }
}

// The probe reads a list's Bloom summary only when the list is next in line for a filtered
// query: a batch of mixed filters (shared ones, none, one no item has) probes, query by query,
// the lists each query probes alone; none is ruled out by its summary, and a query gets fewer
// than nprobe lists only when fewer pass (counted over every list here).
TEST_F(FilteredSearchTest, ProbesOfMixedFiltersEqualEachQueryProbedAlone) {
  SCOPED_TRACE(test::seed_note(seed_));
  Rng rng(seed_ + 4);
  std::vector<NamedFilter> fs = filters(rng);
  fs.resize(12);
  fs.push_back({"", test::RefExpr{}});
  fs.push_back(fs[0]);  // the same text again shares its plan
  fs.push_back({"77:5", term(77, 5)});
  const int64_t nq = int64_t(fs.size());
  const std::vector<float> q = test::random_normal(rng, size_t(nq * kDim));
  std::vector<std::string> texts;
  for (const NamedFilter& f : fs) texts.push_back(f.text);
  const QueryBatch batch = prepare_queries(q.data(), nq, kDim, engine_->meta(), texts);
  const ScanIndexView v = engine_->shard().view();
  const Prober prober(engine_->meta());
  for (const int nprobe : {1, 5, 20, 30}) {
    const std::vector<int32_t> lists = prober.probe(batch, nprobe, v.list_sizes, v.list_summaries);
    for (int64_t qi = 0; qi < nq; ++qi) {
      SCOPED_TRACE("nprobe " + std::to_string(nprobe) + " query " + std::to_string(qi) +
                   " filter \"" + texts[size_t(qi)] + "\"");
      const QueryBatch one =
          prepare_queries(q.data() + qi * kDim, 1, kDim, engine_->meta(), {texts[size_t(qi)]});
      const std::vector<int32_t> alone = prober.probe(one, nprobe, v.list_sizes, v.list_summaries);
      const std::vector<int32_t> got(lists.begin() + qi * nprobe,
                                     lists.begin() + (qi + 1) * nprobe);
      EXPECT_EQ(got, alone);
      const int32_t plan = batch.plan_of_query[size_t(qi)];
      auto passes = [&](int64_t l) {
        return v.list_sizes[l] > 0 &&
               (plan < 0 || eval_plan_summary(batch.view().plans[plan],
                                              v.list_summaries + l * v.bloom_words, v.bloom_words));
      };
      int64_t n_passing = 0;
      for (int64_t l = 0; l < v.n_lists; ++l) n_passing += passes(l);
      for (const int32_t l : got)
        if (l >= 0) EXPECT_TRUE(passes(l)) << "list " << l;
      EXPECT_EQ(std::count(got.begin(), got.end(), -1), std::max<int64_t>(0, nprobe - n_passing));
    }
  }
}

}  // namespace
}  // namespace argent
