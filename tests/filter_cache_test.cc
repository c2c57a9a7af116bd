// The CPU shard's filter cache (shard/filter_cache.h): recurring filters served from exact
// masks give the very ids and scores of the uncached scan, in IVF, bounded exact and full exact
// search, with NOT, per-query filters, and across upserts, deletes and compaction; and the
// exact search equals a float64 brute force over the eligible items after the writes.
#include <gtest/gtest.h>

#include <unordered_set>
#include <vector>

#include "shard/filter_cache.h"
#include "shard/index_builder.h"
#include "shard/index_meta.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using test::Rng;

constexpr double kScoreTol = 1e-6;
constexpr int kDim = 20;
constexpr int kFeatures = 4, kValues = 5;

struct Filter {
  std::string text;
  test::RefExpr expr;
};

class FilterCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = test::test_seed(9090);
    rng_.seed(seed_);
    const int64_t n = 3000;
    ids_ = test::random_ids(rng_, n);
    const ItemSet items = test::random_items(rng_, n, kDim, ids_, kFeatures, kValues, 0.3);
    build_index(items, test::small_index_config(2, 16), dir_.path());
    Config on, off;
    on.search.filter_cache_mb = 16;
    off.search.filter_cache_mb = 0;
    cached_ = std::make_unique<LocalEngine>(LocalEngine::open(dir_.path(), on));
    plain_ = std::make_unique<LocalEngine>(LocalEngine::open(dir_.path(), off));
    for (int i = 0; i < 8; ++i) {
      test::RefExpr e = test::random_expr(rng_, 3, kFeatures, kValues);
      filters_.push_back({test::render_expr(e, rng_), e});
    }
    test::RefExpr t;  // a negated term: most items pass, Bloom false positives matter
    t.feature = 1;
    t.value = 2;
    test::RefExpr n_t;
    n_t.kind = test::RefExpr::Kind::kNot;
    n_t.children = {t};
    filters_.push_back({"NOT 1:2", n_t});
  }

  // Searches both engines with `texts` (one for all queries or one per query) and expects the
  // same ids and scores; returns the cached engine's stats.
  ScanStats search_both(const std::vector<float>& q, int64_t nq,
                        const std::vector<std::string>& texts, const SearchOptions& opts) {
    const SearchResults a = cached_->search(q.data(), nq, kDim, texts, opts);
    const SearchResults b = plain_->search(q.data(), nq, kDim, texts, opts);
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.scores, b.scores);
    EXPECT_EQ(b.stats.filters_cached, 0);
    return a.stats;
  }

  std::vector<SearchOptions> modes() const {
    SearchOptions ivf, bounded, full;
    ivf.nprobe = 3;
    bounded.exact = true;
    full.exact = true;
    full.exhaustive = true;
    for (SearchOptions* o : {&ivf, &bounded, &full}) {
      o->k = 30;
      o->batch = 8;
    }
    return {ivf, bounded, full};
  }

  // Exact search of the cached engine against a brute force over its shard's eligible items
  // (k beyond the eligible items: no dead or free row may fill the rest).
  void expect_exact_equals_brute_force(const std::vector<float>& q, int64_t nq, const Filter& f,
                                       int64_t k = 30) {
    SearchOptions o;
    o.exact = true;
    o.k = k;
    const SearchResults r = cached_->search(q.data(), nq, kDim, {f.text}, o);
    const test::StoredItems stored = test::read_back(cached_->shard());
    const QueryBatch qb = prepare_queries(q.data(), nq, kDim, cached_->meta(), {});
    for (int64_t i = 0; i < nq; ++i)
      EXPECT_TRUE(test::check_topk(r.ids.data() + i * o.k, r.scores.data() + i * o.k, o.k,
                                   test::exact_int8_reference(stored, qb, i, &f.expr),
                                   kScoreTol))
          << "query " << i << " filter \"" << f.text << "\"";
  }

  uint64_t seed_ = 0;
  Rng rng_;
  test::TempDir dir_;
  std::vector<int64_t> ids_;
  std::unique_ptr<LocalEngine> cached_, plain_;
  std::vector<Filter> filters_;
};

TEST_F(FilterCacheTest, RecurringFiltersGiveTheUncachedResultsWithoutExactChecks) {
  SCOPED_TRACE(test::seed_note(seed_));
  const int64_t nq = 16;
  const std::vector<float> q = test::random_normal(rng_, size_t(nq * kDim));
  for (const SearchOptions& o : modes()) {
    for (const Filter& f : filters_) {
      SCOPED_TRACE("filter \"" + f.text + "\" exact " + std::to_string(o.exact) +
                   " exhaustive " + std::to_string(o.exhaustive));
      // Batch 1 meets the filter, batch 2 builds it, later batches are served from it.
      const ScanStats s = search_both(q, nq, {f.text}, o);
      EXPECT_GT(s.filters_cached, 0);
      const ScanStats again = search_both(q, nq, {f.text}, o);
      EXPECT_EQ(again.filters_cached, nq / o.batch);
      EXPECT_EQ(again.exact_checks, 0) << "a cached filter's candidates need no exact check";
    }
  }
  // Per-query filters, some queries unfiltered: each plan is served on its own.
  std::vector<std::string> texts;
  for (int64_t i = 0; i < nq; ++i)
    texts.push_back(i % 5 == 4 ? "" : filters_[size_t(i) % filters_.size()].text);
  for (const SearchOptions& o : modes()) {
    search_both(q, nq, texts, o);
    search_both(q, nq, texts, o);
    EXPECT_GT(search_both(q, nq, texts, o).filters_cached, 0);
  }
  for (const Filter& f : filters_) expect_exact_equals_brute_force(q, nq, f);
}

TEST_F(FilterCacheTest, MasksFollowUpsertsDeletesAndCompaction) {
  SCOPED_TRACE(test::seed_note(seed_));
  const int64_t nq = 12;
  const std::vector<float> q = test::random_normal(rng_, size_t(nq * kDim));
  std::vector<int64_t> live = ids_;
  auto search_all = [&](const char* when) {
    SCOPED_TRACE(when);
    for (const SearchOptions& o : modes())
      for (size_t f = 0; f < filters_.size(); f += 2) {
        SCOPED_TRACE("filter \"" + filters_[f].text + "\"");
        search_both(q, nq, {filters_[f].text}, o);
      }
  };
  // Warm the cache with the filters, then write.
  search_all("before writes");
  search_all("before writes, cached");
  // Deletes write in place: the cached masks follow them (the written blocks are recomputed),
  // no filter is built again.
  const int64_t builds = cached_->filter_cache_stats().builds;
  EXPECT_GT(builds, 0);
  std::vector<int64_t> first_del(live.end() - 200, live.end());
  live.resize(live.size() - 200);
  EXPECT_EQ(cached_->remove(first_del), plain_->remove(first_del));
  search_all("after deleting 200 items");
  EXPECT_EQ(cached_->filter_cache_stats().builds, builds);
  for (const Filter& f : filters_) expect_exact_equals_brute_force(q, 4, f, 5000);
  for (int round = 0; round < 4; ++round) {
    // Upserts: new ids and replacements of live ones (new embedding and features).
    std::vector<int64_t> up_ids = test::random_ids(rng_, 40);
    for (int i = 0; i < 20; ++i) up_ids.push_back(live[size_t(rng_() % live.size())]);
    std::unordered_set<int64_t> seen;
    std::vector<int64_t> unique_ids;
    for (int64_t id : up_ids)
      if (seen.insert(id).second) unique_ids.push_back(id);
    const ItemSet up = test::random_items(rng_, int64_t(unique_ids.size()), kDim, unique_ids,
                                          kFeatures, kValues, 0.3);
    cached_->upsert(up);
    plain_->upsert(up);
    for (int64_t id : unique_ids)
      if (std::find(live.begin(), live.end(), id) == live.end()) live.push_back(id);
    // Deletes.
    std::vector<int64_t> del;
    for (int i = 0; i < 30; ++i) {
      const size_t at = size_t(rng_() % live.size());
      del.push_back(live[at]);
      live.erase(live.begin() + long(at));
    }
    EXPECT_EQ(cached_->remove(del), plain_->remove(del));
    search_all("after upserts and deletes");
    if (round == 2) {
      cached_->compact();  // reallocates: every filter is built again
      plain_->compact();
      search_all("after compaction");
      search_all("after compaction, cached again");
    }
  }
  for (const Filter& f : filters_) expect_exact_equals_brute_force(q, nq, f);
  for (const Filter& f : filters_) expect_exact_equals_brute_force(q, 4, f, 5000);
}

// Lists of thousands of rows and a wide dimension: a work item spans several packing spans,
// packed rows fill several tiles, and in-place scans cover many sub-chunks, with masks.
TEST(FilterCacheLargeListsTest, LongListsGiveTheUncachedResults) {
  const uint64_t seed = test::test_seed(5151);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int dim = 200;
  const int64_t n = 12000;
  const ItemSet items =
      test::random_items(rng, n, dim, test::random_ids(rng, n), kFeatures, kValues, 0.3);
  test::TempDir dir;
  build_index(items, test::small_index_config(1, 2), dir.path());
  Config on, off;
  on.search.filter_cache_mb = 16;
  off.search.filter_cache_mb = 0;
  const LocalEngine cached = LocalEngine::open(dir.path(), on);
  const LocalEngine plain = LocalEngine::open(dir.path(), off);
  const test::StoredItems stored = test::read_back(cached.shard());
  const int64_t nq = 40;
  const std::vector<float> q = test::random_normal(rng, size_t(nq * dim));
  const QueryBatch qb = prepare_queries(q.data(), nq, dim, cached.meta(), {});
  std::vector<Filter> filters;
  for (int i = 0; i < 6; ++i) {
    test::RefExpr e = test::random_expr(rng, 3, kFeatures, kValues);
    filters.push_back({test::render_expr(e, rng), e});
  }
  for (const Filter& f : filters) {
    for (const int32_t batch : {1, 40}) {
      for (const bool exact : {false, true}) {
        SCOPED_TRACE("filter \"" + f.text + "\" batch " + std::to_string(batch) + " exact " +
                     std::to_string(exact));
        SearchOptions o;
        o.k = 50;
        o.batch = batch;
        o.exact = exact;
        o.exhaustive = exact;
        o.nprobe = 1;
        for (int rep = 0; rep < 3; ++rep) {
          const SearchResults a = cached.search(q.data(), nq, dim, {f.text}, o);
          const SearchResults b = plain.search(q.data(), nq, dim, {f.text}, o);
          EXPECT_EQ(a.ids, b.ids);
          EXPECT_EQ(a.scores, b.scores);
          if (rep == 2) EXPECT_EQ(a.stats.exact_checks, 0);
          if (rep == 2 && exact)
            for (int64_t i = 0; i < nq; ++i)
              EXPECT_TRUE(test::check_topk(a.ids.data() + i * o.k, a.scores.data() + i * o.k,
                                           o.k,
                                           test::exact_int8_reference(stored, qb, i, &f.expr),
                                           kScoreTol))
                  << "query " << i;
        }
      }
    }
  }
  EXPECT_GT(cached.filter_cache_stats().hits, 0);
}

// Rebalancing writes a shard through add_partition and remove_partition: the masks follow.
TEST(FilterCachePartitionsTest, AddedAndRemovedPartitionsGiveTheUncachedResults) {
  const uint64_t seed = test::test_seed(6262);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int64_t n = 3000;
  const ItemSet items =
      test::random_items(rng, n, kDim, test::random_ids(rng, n), kFeatures, kValues, 0.3);
  test::TempDir dir;
  build_index(items, test::small_index_config(3, 12), dir.path());
  const IndexMeta meta = read_manifest(dir.path());
  const ShardIndex all = ShardIndex::load(dir.path(), meta, {0, 1, 2}, 0.1);
  ShardIndex shard = ShardIndex::load(dir.path(), meta, {0, 1}, 0.1);
  ShardFilterCache cache(size_t(16) << 20);
  const int64_t nq = 10, k = 40;
  const std::vector<float> q = test::random_normal(rng, size_t(nq * kDim));
  std::vector<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    test::RefExpr e = test::random_expr(rng, 3, kFeatures, kValues);
    texts.push_back(test::render_expr(e, rng));
  }
  texts.push_back("NOT 2:3");
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    for (const std::string& text : texts) {
      SCOPED_TRACE("filter \"" + text + "\"");
      const QueryBatch qb = prepare_queries(q.data(), nq, kDim, meta, {text});
      std::vector<float> s1(size_t(nq * k)), s2(size_t(nq * k));
      std::vector<int64_t> i1(size_t(nq * k)), i2(size_t(nq * k));
      for (int rep = 0; rep < 2; ++rep) {
        const ShardFilterCache::Masks masks = cache.lookup(shard, qb, 2);
        search_shard(shard, qb, nullptr, 0, k, 2, s1.data(), i1.data(), nullptr, nullptr,
                     masks.plan_masks());
        search_shard(shard, qb, nullptr, 0, k, 2, s2.data(), i2.data(), nullptr, nullptr);
        EXPECT_EQ(i1, i2);
        EXPECT_EQ(s1, s2);
      }
    }
  };
  check("two partitions");
  check("two partitions, cached");
  EXPECT_GT(cache.stats().hits, 0);
  shard.add_partition(all.export_partitions({2})[0]);
  check("partition 2 added");
  shard.remove_partition(0);
  check("partition 0 removed");
  shard.compact();
  check("compacted");
}

}  // namespace
}  // namespace argent
