// Streaming updates in one process (LocalEngine over ShardIndex): upserts are searchable with
// their filter features, deletes are never returned, replacing an id replaces its embedding and
// features, and after a long random mix of upserts and deletes, exact search returns exactly
// what a fresh build of the same final item set returns (ids and scores), which also proves an
// upserted item is quantized exactly as the builder quantizes it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/error.h"
#include "common/hash.h"
#include "shard/index_builder.h"
#include "shard/synthetic.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using test::FeatureList;
using test::Rng;

// One item as the test's model of the catalogue holds it.
struct ModelItem {
  std::vector<float> embedding;
  FeatureList features;
};

ItemSet to_item_set(int dim, const std::map<int64_t, ModelItem>& model) {
  ItemSet items;
  items.dim = dim;
  for (const auto& [id, item] : model) {
    items.ids.push_back(id);
    items.embeddings.insert(items.embeddings.end(), item.embedding.begin(), item.embedding.end());
    items.push_features(item.features);
  }
  return items;
}

ItemSet one_item(int dim, int64_t id, const ModelItem& item) {
  return to_item_set(dim, {{id, item}});
}

ModelItem random_model_item(Rng& rng, int dim) {
  ModelItem m;
  m.embedding = test::random_normal(rng, size_t(dim));
  m.features = test::random_features(rng, 4, 5, 0.3);
  return m;
}

SearchOptions exact_options(int64_t k) {
  SearchOptions o;
  o.k = k;
  o.exact = true;
  return o;
}

class UpdateShardTest : public ::testing::Test {
 protected:
  void build(int64_t n, int dim, double slack, uint64_t seed) {
    rng_.seed(seed);
    dim_ = dim;
    const std::vector<int64_t> ids = test::random_ids(rng_, n);
    for (int64_t id : ids) model_[id] = random_model_item(rng_, dim);
    icfg_ = test::small_index_config(4, 16);
    build_index(to_item_set(dim, model_), icfg_, dir_.path());
    cfg_.index.list_slack = slack;
    engine_ = std::make_unique<LocalEngine>(LocalEngine::open(dir_.path(), cfg_));
  }

  // Exact search of the engine vs a fresh build of the model, on random queries and filters.
  void expect_equals_fresh_build(int n_queries) {
    test::TempDir fresh_dir;
    IndexConfig fresh_cfg = icfg_;
    fresh_cfg.seed = 99;  // another k-means run: different lists, same exact results
    build_index(to_item_set(dim_, model_), fresh_cfg, fresh_dir.path());
    const LocalEngine fresh = LocalEngine::open(fresh_dir.path(), cfg_);
    ASSERT_EQ(engine_->shard().n_items(), int64_t(model_.size()));

    // Every id's stored codes, scale and features equal the fresh build's.
    const test::StoredItems a = test::read_back(engine_->shard());
    const test::StoredItems b = test::read_back(fresh.shard());
    ASSERT_EQ(a.ids.size(), b.ids.size());
    std::map<int64_t, size_t> at_b;
    for (size_t i = 0; i < b.ids.size(); ++i) at_b[b.ids[i]] = i;
    const size_t d_pad = size_t(a.d_pad);
    for (size_t i = 0; i < a.ids.size(); ++i) {
      ASSERT_TRUE(at_b.count(a.ids[i])) << "id " << a.ids[i] << " is not in the final set";
      const size_t j = at_b[a.ids[i]];
      ASSERT_EQ(a.scales[i], b.scales[j]) << "id " << a.ids[i];
      ASSERT_TRUE(std::equal(a.codes.begin() + long(i * d_pad), a.codes.begin() + long((i + 1) * d_pad),
                             b.codes.begin() + long(j * d_pad)))
          << "id " << a.ids[i];
      ASSERT_EQ(a.features[i], b.features[j]) << "id " << a.ids[i];
    }

    const std::vector<float> x = test::random_normal(rng_, size_t(n_queries) * size_t(dim_));
    for (const std::string filter : {"", "0:1", "NOT 1:2", "0:0 OR 2:3 OR 3:4"}) {
      for (const int64_t k : {int64_t(1), int64_t(10), int64_t(200)}) {
        const SearchResults got = engine_->search(x.data(), n_queries, dim_, {filter}, exact_options(k));
        const SearchResults want = fresh.search(x.data(), n_queries, dim_, {filter}, exact_options(k));
        ASSERT_EQ(got.ids, want.ids) << "filter '" << filter << "' k " << k;
        ASSERT_EQ(got.scores, want.scores) << "filter '" << filter << "' k " << k;
        // Full scan (no bounds) too: the bounds must have stayed valid through the updates.
        SearchOptions scan = exact_options(k);
        scan.exhaustive = true;
        const SearchResults all = engine_->search(x.data(), n_queries, dim_, {filter}, scan);
        ASSERT_EQ(all.ids, want.ids) << "filter '" << filter << "' k " << k << " (full scan)";
      }
    }
  }

  test::TempDir dir_;
  Rng rng_;
  int dim_ = 0;
  IndexConfig icfg_;
  Config cfg_;
  std::map<int64_t, ModelItem> model_;
  std::unique_ptr<LocalEngine> engine_;
};

TEST_F(UpdateShardTest, UpsertIsFoundWithItsFilterFeatures) {
  const uint64_t seed = test::test_seed(1);
  SCOPED_TRACE(test::seed_note(seed));
  build(2000, 24, 0.1, seed);
  ModelItem item = random_model_item(rng_, dim_);
  item.features = {{7, 123456}, {8, 1}};  // a feature no built item has
  const int64_t id = 4242424242;
  engine_->upsert(one_item(dim_, id, item));
  const SearchResults r = engine_->search(item.embedding.data(), 1, dim_, {"7:123456"}, exact_options(5));
  EXPECT_EQ(r.ids[0], id);
  EXPECT_EQ(r.ids[1], -1) << "only the upserted item has feature 7:123456";
  // Approximate search over the default probes finds it too: the list summary was updated.
  SearchOptions approx;
  approx.k = 5;
  approx.nprobe = 2;
  const SearchResults a = engine_->search(item.embedding.data(), 1, dim_, {"7:123456 AND 8:1"}, approx);
  EXPECT_EQ(a.ids[0], id);
  EXPECT_EQ(engine_->shard().n_items(), 2001);
}

// A subnormal embedding once quantized to scale inf: the owning rank refused the logged upsert and
// so did every restart's replay. It is stored like any item now, and searchable.
TEST_F(UpdateShardTest, SubnormalEmbeddingIsStoredAndFound) {
  const uint64_t seed = test::test_seed(11);
  SCOPED_TRACE(test::seed_note(seed));
  build(2000, 24, 0.1, seed);
  ModelItem item = random_model_item(rng_, dim_);
  item.features = {{7, 123456}};
  for (float& v : item.embedding) v = std::ldexp(std::nearbyint(v * 1000.0f), -140);
  const int64_t id = 777000111;
  engine_->upsert(one_item(dim_, id, item));
  EXPECT_EQ(engine_->shard().n_items(), 2001);
  const SearchResults r = engine_->search(item.embedding.data(), 1, dim_, {"7:123456"}, exact_options(2));
  EXPECT_EQ(r.ids[0], id);
  EXPECT_TRUE(std::isfinite(r.scores[0])) << r.scores[0];
  EXPECT_EQ(r.ids[1], -1);
  model_[id] = item;
  expect_equals_fresh_build(4);
}

TEST_F(UpdateShardTest, DeletedItemIsNeverReturned) {
  const uint64_t seed = test::test_seed(2);
  SCOPED_TRACE(test::seed_note(seed));
  build(2000, 24, 0.1, seed);
  const int64_t victim = model_.begin()->first;
  const ModelItem item = model_.begin()->second;
  ASSERT_EQ(engine_->search(item.embedding.data(), 1, dim_, {}, exact_options(1)).ids[0], victim);
  EXPECT_EQ(engine_->remove({victim, 77777777}), 1);
  model_.erase(victim);
  const SearchResults r = engine_->search(item.embedding.data(), 1, dim_, {}, exact_options(2000));
  EXPECT_EQ(std::count(r.ids.begin(), r.ids.end(), victim), 0);
  EXPECT_EQ(std::count(r.ids.begin(), r.ids.end(), -1), 1) << "k = n: all 1999 others, one pad";
  EXPECT_EQ(engine_->shard().tombstones(), 1);
  expect_equals_fresh_build(8);
}

TEST_F(UpdateShardTest, ReplacingAnIdReplacesEmbeddingAndFeatures) {
  const uint64_t seed = test::test_seed(3);
  SCOPED_TRACE(test::seed_note(seed));
  build(2000, 24, 0.1, seed);
  const int64_t id = model_.begin()->first;
  const ModelItem before = model_.begin()->second;
  ModelItem after = random_model_item(rng_, dim_);
  after.features = {{6, 9}};
  engine_->upsert(one_item(dim_, id, after));
  model_[id] = after;
  const int64_t row = engine_->shard().row_of(id);
  ASSERT_GE(row, 0);
  EXPECT_EQ(engine_->shard().features_of_row(row), after.features);
  EXPECT_EQ(engine_->shard().n_items(), 2000) << "a replaced id must not leave two live copies";
  // The new embedding ranks it first for itself; the old features no longer match.
  EXPECT_EQ(engine_->search(after.embedding.data(), 1, dim_, {}, exact_options(1)).ids[0], id);
  const SearchResults r = engine_->search(before.embedding.data(), 1, dim_, {}, exact_options(2000));
  EXPECT_EQ(std::count(r.ids.begin(), r.ids.end(), id), 1);
  if (!before.features.empty()) {
    const std::string old_term = std::to_string(before.features[0].first) + ":" +
                                 std::to_string(before.features[0].second);
    const SearchResults f = engine_->search(before.embedding.data(), 1, dim_, {old_term}, exact_options(2000));
    EXPECT_EQ(std::count(f.ids.begin(), f.ids.end(), id), 0) << old_term;
  }
  expect_equals_fresh_build(8);
}

TEST_F(UpdateShardTest, BadUpsertChangesNothing) {
  build(500, 8, 0.1, 4);
  ModelItem bad = random_model_item(rng_, dim_);
  bad.embedding[3] = std::nanf("");
  ItemSet two = to_item_set(dim_, {{1, random_model_item(rng_, dim_)}, {2, bad}});
  EXPECT_THROW(engine_->upsert(two), Error);
  EXPECT_EQ(engine_->shard().row_of(1), -1) << "the valid item of a bad batch was applied";
  ItemSet wrong_dim = one_item(dim_, 3, random_model_item(rng_, dim_));
  wrong_dim.dim = dim_ - 1;
  wrong_dim.embeddings.resize(size_t(dim_ - 1));
  EXPECT_THROW(engine_->upsert(wrong_dim), Error);
  EXPECT_EQ(engine_->shard().n_items(), 500);
}

// The acceptance check: a long random mix, with lists filling up (slack 0 forces growth on the
// first upsert into each list) and compaction in the middle, equals a fresh build.
class UpdateMixTest : public UpdateShardTest, public ::testing::WithParamInterface<double> {};

TEST_P(UpdateMixTest, LongRandomMixEqualsFreshBuild) {
  const double slack = GetParam();
  const uint64_t seed = test::test_seed(uint64_t(10 + slack * 100));
  SCOPED_TRACE(test::seed_note(seed));
  build(3000, 20, slack, seed);
  std::vector<int64_t> pool;
  for (const auto& kv : model_) pool.push_back(kv.first);
  for (int i = 0; i < 600; ++i) pool.push_back(int64_t(1) << 40 | int64_t(i));  // new ids
  for (int op = 0; op < 4000; ++op) {
    const int64_t id = pool[size_t(rng_() % pool.size())];
    if (rng_() % 3 == 0) {
      engine_->remove({id});
      model_.erase(id);
    } else {
      const ModelItem item = random_model_item(rng_, dim_);
      engine_->upsert(one_item(dim_, id, item));
      model_[id] = item;
    }
    if (op == 2000) {
      engine_->compact();
      ASSERT_EQ(engine_->shard().tombstones(), 0);
    }
  }
  EXPECT_GT(engine_->shard().tombstones(), 0);
  expect_equals_fresh_build(16);
  engine_->compact();
  expect_equals_fresh_build(4);
}

INSTANTIATE_TEST_SUITE_P(Slack, UpdateMixTest, ::testing::Values(0.0, 0.1, 2.0));

// Bounded exact search skips lists by their radius; an upsert far from its centroid must grow
// the radius, or exact search would skip the list that holds it. Tight clusters make the radii
// small and the upserted (unclustered) items fall far outside them.
TEST_F(UpdateShardTest, ExactSearchBoundsCoverUpsertsFarFromTheirCentroid) {
  const uint64_t seed = test::test_seed(6);
  SCOPED_TRACE(test::seed_note(seed));
  rng_.seed(seed);
  dim_ = 16;
  SyntheticConfig tight;
  tight.clusters = 16;
  tight.cluster_spread = 0.02;
  build_index(generate_synthetic_items(4000, dim_, seed, tight), test::small_index_config(2, 16),
              dir_.path());
  cfg_.search.nprobe = 1;  // the first pass scans one list; the bounds decide the rest
  engine_ = std::make_unique<LocalEngine>(LocalEngine::open(dir_.path(), cfg_));
  std::map<int64_t, ModelItem> fresh;
  for (int i = 0; i < 200; ++i) fresh[int64_t(1) << 50 | i] = random_model_item(rng_, dim_);
  engine_->upsert(to_item_set(dim_, fresh));
  const int64_t n = 64;
  const std::vector<float> x = test::random_normal(rng_, size_t(n) * size_t(dim_));
  SearchOptions scan = exact_options(10);
  scan.exhaustive = true;
  const SearchResults all = engine_->search(x.data(), n, dim_, {}, scan);
  const SearchResults bounded = engine_->search(x.data(), n, dim_, {}, exact_options(10));
  EXPECT_EQ(bounded.ids, all.ids);
  EXPECT_EQ(bounded.scores, all.scores);
  int64_t found_fresh = 0;
  for (int64_t id : all.ids) found_fresh += fresh.count(id);
  EXPECT_GT(found_fresh, n) << "the upserted items should dominate these results";
}

// A shard's live items written as partition files and loaded again are the same index.
TEST_F(UpdateShardTest, ExportedPartitionsReloadToTheSameItems) {
  const uint64_t seed = test::test_seed(5);
  SCOPED_TRACE(test::seed_note(seed));
  build(1500, 12, 0.1, seed);
  for (int i = 0; i < 300; ++i) {
    const int64_t id = 5000000 + i % 200;
    const ModelItem item = random_model_item(rng_, dim_);
    engine_->upsert(one_item(dim_, id, item));
    model_[id] = item;
  }
  engine_->remove({model_.begin()->first});
  model_.erase(model_.begin());
  test::TempDir out;
  for (const PartitionData& p : engine_->shard().export_partitions())
    write_partition(out.path(), engine_->meta(), p);
  write_manifest(out.path(), engine_->meta());
  const LocalEngine reloaded = LocalEngine::open(out.path(), cfg_);
  ASSERT_EQ(reloaded.shard().n_items(), int64_t(model_.size()));
  const std::vector<float> x = test::random_normal(rng_, size_t(8 * dim_));
  const SearchResults a = engine_->search(x.data(), 8, dim_, {"0:1 OR 1:1"}, exact_options(50));
  const SearchResults b = reloaded.search(x.data(), 8, dim_, {"0:1 OR 1:1"}, exact_options(50));
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.scores, b.scores);
}

}  // namespace
}  // namespace argent

namespace argent {
namespace {

// A new build must not inherit a previous index's write-ahead log or snapshots, which a server
// would otherwise replay onto it.
TEST_F(UpdateShardTest, ChangeJournalListsTheRowsWrittenInPlace) {
  // What a GPU copy of the shard syncs from (ShardIndex::rows_written_since): the rows an
  // upsert or a delete wrote, until the tensors are reallocated; another object's versions
  // never count as this one's.
  build(3000, 16, 0.5, test::test_seed(71));
  const ShardIndex& shard = engine_->shard();
  const uint64_t v0 = shard.version();
  std::vector<int64_t> rows;
  ASSERT_TRUE(shard.rows_written_since(v0, &rows));
  EXPECT_TRUE(rows.empty());

  const int64_t victim = model_.begin()->first;
  const int64_t victim_row = shard.row_of(victim);
  const int64_t fresh_id = 1'000'000'007;
  engine_->upsert(one_item(dim_, fresh_id, random_model_item(rng_, dim_)));
  const int64_t fresh_row = shard.row_of(fresh_id);
  const uint64_t v1 = shard.version();
  EXPECT_EQ(engine_->remove({victim}), 1);
  ASSERT_TRUE(shard.rows_written_since(v0, &rows));
  EXPECT_EQ(rows, (std::vector<int64_t>{std::min(victim_row, fresh_row),
                                         std::max(victim_row, fresh_row)}));
  ASSERT_TRUE(shard.rows_written_since(v1, &rows));
  EXPECT_EQ(rows, std::vector<int64_t>{victim_row});
  EXPECT_FALSE(shard.rows_written_since(shard.version() + 1, &rows)) << "a version from later";

  engine_->compact();  // reallocates: a copy made before must be rebuilt whole
  EXPECT_FALSE(shard.rows_written_since(v1, &rows));
  ASSERT_TRUE(shard.rows_written_since(shard.version(), &rows));
  EXPECT_TRUE(rows.empty());

  const LocalEngine other = LocalEngine::open(dir_.path(), cfg_);
  EXPECT_FALSE(other.shard().rows_written_since(shard.version(), &rows))
      << "another shard object's version";
  EXPECT_FALSE(shard.rows_written_since(other.shard().version(), &rows));
}

TEST(UpdateBuild, RebuildRemovesTheOldServingState) {
  test::TempDir dir;
  test::Rng rng(test::test_seed(7));
  const ItemSet items = test::random_items(rng, 300, 8, test::random_ids(rng, 300), 2, 2, 0.5);
  std::ofstream(dir.file("wal.log")) << "old log";
  std::ofstream(dir.file("SNAPSHOT.argent")) << "old pointer";
  std::filesystem::create_directories(dir.file("snapshot-00000000000000000009"));
  std::ofstream(dir.file("keep.txt")) << "not ours";
  build_index(items, test::small_index_config(2, 4), dir.path());
  EXPECT_FALSE(std::filesystem::exists(dir.file("wal.log")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("SNAPSHOT.argent")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("snapshot-00000000000000000009")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("keep.txt")));
}

}  // namespace
}  // namespace argent
