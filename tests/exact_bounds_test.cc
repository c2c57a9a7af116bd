// Exact search with list bounds (shard/exact_search.h) returns exactly what the full scan of
// every list returns, on clustered data where the bounds skip most lists and on unclustered
// data where they cannot, with and without filters, and after every kind of write a serving
// rank makes (the bounds follow the shard's change journal, or are computed again).
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <random>

#include "shard/exact_search.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "shard/mutation.h"
#include "shard/prober.h"
#include "shard/synthetic.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

struct Case {
  const char* name;
  double cluster_spread;  // small: tight clusters, bounds prune; large: they cannot
};

class ExactBounds : public ::testing::TestWithParam<Case> {};

TEST_P(ExactBounds, EqualFullScan) {
  const Case c = GetParam();
  const std::string dir =
      (std::filesystem::temp_directory_path() /
       ("argent-bounds-" + std::string(c.name) + "-" + std::to_string(::getpid())))
          .string();
  Config cfg;
  cfg.index.partitions = 4;
  cfg.index.nlist = 256;
  cfg.synthetic.clusters = 64;
  cfg.synthetic.cluster_spread = c.cluster_spread;
  const int dim = 24;
  const ItemSet items = generate_synthetic_items(20000, dim, 3, cfg.synthetic);
  build_index(items, cfg.index, dir);
  const LocalEngine engine = LocalEngine::open(dir, cfg);

  // Queries drawn like the items, and pure noise.
  std::vector<float> x = generate_synthetic_queries(48, dim, 4, cfg.synthetic);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 16 * dim; ++i) x.push_back(normal(rng));
  const int64_t n = int64_t(x.size()) / dim;

  int64_t pruned_rows = 0, full_rows = 0;
  for (const std::string filter : {"", "1:1 OR 2:2", "NOT 3:1"}) {
    for (const int64_t k : {int64_t(1), int64_t(10), int64_t(100), int64_t(1000)}) {
      SearchOptions o;
      o.k = k;
      o.exact = true;
      o.batch = 16;
      std::vector<std::string> f;
      if (!filter.empty()) f.push_back(filter);
      const SearchResults bounded = engine.search(x.data(), n, dim, f, o);
      o.exhaustive = true;
      const SearchResults full = engine.search(x.data(), n, dim, f, o);
      ASSERT_EQ(bounded.ids, full.ids) << c.name << " filter '" << filter << "' k " << k;
      ASSERT_EQ(bounded.scores, full.scores);
      pruned_rows += bounded.stats.rows_scanned;
      full_rows += full.stats.rows_scanned;
    }
  }
  if (c.cluster_spread < 0.2) EXPECT_LT(pruned_rows, full_rows / 2) << "bounds skipped too little";
  std::filesystem::remove_all(dir);
}

// Items far from every centroid (unclustered, 4x the norm), so a radius that missed one would
// make the bounded search skip a list holding a top item. `one_place`: all near one random
// point (one list's neighbourhood), which makes that list outgrow its spare rows.
ItemSet far_items(int64_t first_id, int64_t n, int dim, std::mt19937_64& rng, bool one_place) {
  std::normal_distribution<float> normal;
  ItemSet items;
  items.dim = dim;
  std::vector<float> centre(static_cast<size_t>(dim));
  for (float& v : centre) v = 4.0f * normal(rng);
  for (int64_t i = 0; i < n; ++i) {
    items.ids.push_back(first_id + i);
    for (int j = 0; j < dim; ++j)
      items.embeddings.push_back(one_place ? centre[size_t(j)] + 0.3f * normal(rng)
                                           : 4.0f * normal(rng));
    items.push_features({{1, int64_t(i % 3)}, {2, int64_t(i % 5)}});
  }
  return items;
}

TEST(ExactBoundsSync, BoundedEqualsFullScanAfterEveryKindOfWrite) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("argent-bounds-sync-" + std::to_string(::getpid())))
                              .string();
  Config cfg;
  cfg.index.partitions = 4;
  cfg.index.nlist = 64;
  cfg.synthetic.clusters = 32;
  cfg.synthetic.cluster_spread = 0.05;  // tight: the radii are small, the bounds prune
  const int dim = 16;
  build_index(generate_synthetic_items(6000, dim, 11, cfg.synthetic), cfg.index, dir);
  const IndexMeta meta = read_manifest(dir);
  const QuantizedCentroids centroids = Prober(meta).centroids();
  ShardIndex shard = ShardIndex::load(dir, meta, {0, 1, 2}, 0.25);
  ListBounds bounds(shard, centroids);

  std::mt19937_64 rng(12);
  std::vector<float> x = generate_synthetic_queries(24, dim, 13, cfg.synthetic);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 8 * dim; ++i) x.push_back(4.0f * normal(rng));
  const int64_t n = int64_t(x.size()) / dim;

  int64_t pruned_rows = 0, full_rows = 0;
  auto expect_bounded_equals_full = [&](const std::string& after) {
    SCOPED_TRACE("after " + after);
    bounds.sync(shard);
    for (const std::string filter : {"", "1:1 OR 2:2"}) {
      std::vector<std::string> filters;
      if (!filter.empty()) filters.push_back(filter);
      const QueryBatch q = prepare_queries(x.data(), n, dim, meta, filters);
      for (const int64_t k : {int64_t(1), int64_t(20)}) {
        const size_t size = size_t(n * k);
        std::vector<float> s1(size), s2(size);
        std::vector<int64_t> i1(size), i2(size), r1(size), r2(size);
        ScanStats bounded_stats, full_stats;
        bounds.search(shard, q, k, 1, 2, s1.data(), i1.data(), r1.data(), &bounded_stats);
        search_shard(shard, q, nullptr, 0, k, 2, s2.data(), i2.data(), r2.data(), &full_stats);
        ASSERT_EQ(i1, i2) << "filter '" << filter << "' k " << k;
        ASSERT_EQ(s1, s2);
        ASSERT_EQ(r1, r2);
        pruned_rows += bounded_stats.rows_scanned;
        full_rows += full_stats.rows_scanned;
      }
    }
  };
  auto upsert = [&](const ItemSet& items) {
    for (const PreparedItem& item : prepare_upserts(items, meta, centroids)) {
      if (std::find(shard.partitions().begin(), shard.partitions().end(), item.partition) !=
          shard.partitions().end())
        shard.upsert(item);
    }
  };

  expect_bounded_equals_full("loading");
  // In place: a few items into spare rows, which the change journal names.
  std::vector<int64_t> rows;
  uint64_t before = shard.version();
  upsert(far_items(int64_t(1) << 40, 12, dim, rng, false));
  ASSERT_TRUE(shard.rows_written_since(before, &rows)) << "expected in-place writes";
  expect_bounded_equals_full("in-place upserts");
  // Many items into one neighbourhood: lists outgrow their spare rows and the shard is
  // reallocated, so the bounds are computed again.
  before = shard.version();
  upsert(far_items(int64_t(2) << 40, 400, dim, rng, true));
  ASSERT_FALSE(shard.rows_written_since(before, &rows)) << "expected a reallocation";
  expect_bounded_equals_full("upserts that grew a list");
  // Deletes (of the far items, so results change), then updates of surviving ids in place.
  for (int64_t i = 0; i < 200; ++i) shard.remove((int64_t(2) << 40) + i);
  expect_bounded_equals_full("deletes");
  upsert(far_items((int64_t(1) << 40), 6, dim, rng, false));
  expect_bounded_equals_full("updates of live ids");
  // A partition moved in whole, one moved out, compaction.
  const ShardIndex other = ShardIndex::load(dir, meta, {3}, 0.25);
  shard.add_partition(other.export_partitions()[0]);
  expect_bounded_equals_full("add_partition");
  shard.remove_partition(0);
  expect_bounded_equals_full("remove_partition");
  shard.compact();
  expect_bounded_equals_full("compaction");
  EXPECT_LT(pruned_rows, full_rows / 2) << "bounds skipped too little";
  std::filesystem::remove_all(dir);
}

// Scores tied across lists: every item is a permutation of one of a few base vectors, so a
// query of equal coordinates scores whole groups of items in different lists alike. The
// bounded search's second pass starts from the first pass's k-th result; a tied item in a
// later list must enter exactly when its id is smaller, as in the scan of every list.
TEST(ExactBoundsTies, TiesAcrossListsBreakByIdAsInTheFullScan) {
  const test::TempDir dir;
  Config cfg;
  cfg.index.partitions = 2;
  cfg.index.nlist = 48;
  cfg.index.normalize = false;
  const int dim = 16, n_items = 6000, n_bases = 6;
  std::mt19937_64 rng(21);
  std::uniform_int_distribution<int> level(-3, 3);
  std::vector<std::vector<float>> bases(n_bases, std::vector<float>(dim));
  for (auto& b : bases)
    for (float& v : b) v = float(level(rng));
  ItemSet items;
  items.dim = dim;
  std::vector<int64_t> ids(n_items);
  std::iota(ids.begin(), ids.end(), int64_t(1000));
  std::shuffle(ids.begin(), ids.end(), rng);
  for (int i = 0; i < n_items; ++i) {
    std::vector<float> v = bases[size_t(rng() % n_bases)];
    std::shuffle(v.begin(), v.end(), rng);
    items.ids.push_back(ids[size_t(i)]);
    items.embeddings.insert(items.embeddings.end(), v.begin(), v.end());
    items.push_features({{1, int64_t(rng() % 3)}, {2, int64_t(rng() % 4)}});
  }
  build_index(items, cfg.index, dir.path());
  const IndexMeta meta = read_manifest(dir.path());
  const QuantizedCentroids centroids = Prober(meta).centroids();
  const ShardIndex shard = ShardIndex::load(dir.path(), meta, {0, 1}, 0.1);
  const ListBounds bounds(shard, centroids);

  // Equal coordinates (every permutation of a base scores the same), and a few random queries.
  std::vector<float> x;
  for (const float c : {1.0f, -1.0f, 0.5f}) x.insert(x.end(), size_t(dim), c);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 3 * dim; ++i) x.push_back(normal(rng));
  const int64_t n = int64_t(x.size()) / dim;

  int64_t tied_at_kth = 0;
  for (const std::string filter : {"", "1:1 OR 2:2"}) {
    std::vector<std::string> filters;
    if (!filter.empty()) filters.push_back(filter);
    const QueryBatch q = prepare_queries(x.data(), n, dim, meta, filters);
    for (const int64_t k : {int64_t(1), int64_t(7), int64_t(100), int64_t(1500)}) {
      for (const int first_pass : {1, 4}) {
        const size_t size = size_t(n * k);
        std::vector<float> s1(size), s2(size);
        std::vector<int64_t> i1(size), i2(size), r1(size), r2(size);
        bounds.search(shard, q, k, first_pass, 2, s1.data(), i1.data(), r1.data(), nullptr);
        search_shard(shard, q, nullptr, 0, k, 2, s2.data(), i2.data(), r2.data(), nullptr);
        ASSERT_EQ(i1, i2) << "filter '" << filter << "' k " << k << " first pass " << first_pass;
        ASSERT_EQ(s1, s2);
        ASSERT_EQ(r1, r2);
        for (int64_t i = 0; i < n; ++i)
          tied_at_kth += k > 1 && s2[size_t(i * k + k - 1)] == s2[size_t(i * k + k - 2)];
      }
    }
  }
  EXPECT_GT(tied_at_kth, 0) << "the data was meant to tie at the k-th score";
}

INSTANTIATE_TEST_SUITE_P(Data, ExactBounds,
                         ::testing::Values(Case{"tight", 0.1}, Case{"loose", 2.0}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace argent
