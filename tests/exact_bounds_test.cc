// Exact search with list bounds (shard/exact_search.h) returns exactly what the full scan of
// every list returns, on clustered data where the bounds skip most lists and on unclustered
// data where they cannot, with and without filters.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "shard/synthetic.h"

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

INSTANTIATE_TEST_SUITE_P(Data, ExactBounds,
                         ::testing::Values(Case{"tight", 0.1}, Case{"loose", 2.0}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace argent
