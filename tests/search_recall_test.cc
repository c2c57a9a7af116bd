// Approximate search quality: recall@100 at the default configuration (IndexConfig and
// SearchConfig defaults: automatic nlist, default nprobe) on the synthetic catalogue, against an
// exact float64 search over the original embeddings.
#include <gtest/gtest.h>

#include <vector>

#include "shard/index_builder.h"
#include "shard/synthetic.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

// The acceptance bound for recall@100 at the default nprobe.
constexpr double kMinRecallAt100 = 0.95;

TEST(SearchRecall, DefaultNprobeOnSyntheticCatalogue) {
  const uint64_t seed = test::test_seed(3);
  SCOPED_TRACE(test::seed_note(seed));
  const int64_t n = 50000, nq = 200, k = 100;
  const int dim = 64;
  const Config cfg;  // every default
  const ItemSet items = generate_synthetic_items(n, dim, seed, cfg.synthetic);
  const std::vector<float> queries = generate_synthetic_queries(nq, dim, seed, cfg.synthetic);
  test::TempDir dir;
  const BuildReport report = build_index(items, cfg.index, dir.path());
  EXPECT_EQ(report.nlist, auto_nlist(n));
  const LocalEngine engine = LocalEngine::open(dir.path(), cfg);

  SearchOptions opts;
  opts.k = k;
  opts.nprobe = cfg.search.nprobe;
  ASSERT_LT(opts.nprobe, report.nlist) << "the default nprobe would make this an exact search";
  const SearchResults approx = engine.search(queries.data(), nq, dim, {}, opts);
  opts.exact = true;
  const SearchResults exact = engine.search(queries.data(), nq, dim, {}, opts);

  double recall = 0, recall_int8_exact = 0;
  for (int64_t q = 0; q < nq; ++q) {
    const std::vector<test::Scored> ref =
        test::exact_float_reference(items, queries.data() + q * dim, cfg.index.normalize, nullptr);
    recall += test::recall_at_k(approx.ids.data() + q * k, k, ref);
    recall_int8_exact += test::recall_at_k(exact.ids.data() + q * k, k, ref);
  }
  recall /= double(nq);
  recall_int8_exact /= double(nq);
  RecordProperty("recall_at_100", std::to_string(recall));
  RecordProperty("recall_at_100_int8_exact", std::to_string(recall_int8_exact));
  std::printf("recall@100: nprobe %d of %lld lists %.4f, every list (int8 exact) %.4f\n",
              opts.nprobe, (long long)report.nlist, recall, recall_int8_exact);
  EXPECT_GE(recall, kMinRecallAt100) << "nprobe " << opts.nprobe << " of " << report.nlist;
}

}  // namespace
}  // namespace argent
