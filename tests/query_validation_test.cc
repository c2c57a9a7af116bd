// Query and item validation: wrong dimensions, NaN and infinities, bad filters, bad search
// options and bad item sets are rejected with messages that name the query, the dimension and
// the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "shard/index_builder.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

// Runs `fn`, expects argent::Error(kInvalidArgument) whose message holds every fragment.
void expect_rejected(const std::function<void()>& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "accepted; expected an error with \"" << fragments.front() << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    for (const std::string& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << f << "\"";
  }
}

class QueryValidationTest : public ::testing::Test {
 protected:
  static constexpr int kDim = 8;
  static void SetUpTestSuite() {
    test::Rng rng(test::test_seed(8));
    const ItemSet items = test::random_items(rng, 200, kDim, test::random_ids(rng, 200), 2, 2, 0.5);
    dir_ = new test::TempDir;
    build_index(items, test::small_index_config(2, 4), dir_->path());
    engine_ = new LocalEngine(LocalEngine::open(dir_->path(), Config{}));
  }
  static void TearDownTestSuite() {
    delete engine_;
    delete dir_;
  }
  std::vector<float> queries(int64_t n, int dim) {
    test::Rng rng(1);
    return test::random_normal(rng, size_t(n * dim));
  }
  static test::TempDir* dir_;
  static LocalEngine* engine_;
};
test::TempDir* QueryValidationTest::dir_ = nullptr;
LocalEngine* QueryValidationTest::engine_ = nullptr;

TEST_F(QueryValidationTest, WrongDimension) {
  const std::vector<float> q = queries(3, kDim - 1);
  expect_rejected([&] { prepare_queries(q.data(), 3, kDim - 1, engine_->meta(), {}); },
                  {"dimension 7", "index dimension 8"});
  expect_rejected([&] { engine_->search(q.data(), 3, kDim - 1, {}, SearchOptions{}); },
                  {"dimension 7", "index dimension 8"});
}

TEST_F(QueryValidationTest, NonFiniteValuesNameQueryAndDimension) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    std::vector<float> q = queries(4, kDim);
    q[size_t(2 * kDim + 5)] = bad;
    expect_rejected([&] { prepare_queries(q.data(), 4, kDim, engine_->meta(), {}); },
                    {"query 2", "non-finite value (NaN or inf)", "dimension 5"});
    // Through the engine, whose batches restart query numbering: batch 1 keeps it whole here.
    expect_rejected([&] { engine_->search(q.data(), 4, kDim, {}, SearchOptions{}); },
                    {"query 2", "non-finite", "dimension 5"});
  }
}

// A request larger than one batch: the message numbers the query within the request, not
// within its batch.
TEST_F(QueryValidationTest, ErrorsNameTheQueryOfTheWholeRequest) {
  std::vector<float> q = queries(7, kDim);
  q[size_t(5 * kDim + 1)] = std::numeric_limits<float>::quiet_NaN();
  SearchOptions opts;
  opts.batch = 2;
  expect_rejected([&] { engine_->search(q.data(), 7, kDim, {}, opts); },
                  {"query 5 has a non-finite value", "dimension 1"});
  q[size_t(5 * kDim + 1)] = 0.5f;
  const std::vector<std::string> filters = {"", "1:1", "", "", "1:1 OR", "", ""};
  expect_rejected([&] { engine_->search(q.data(), 7, kDim, filters, opts); },
                  {"query 4: filter:", "at position 7"});
}

TEST_F(QueryValidationTest, BadFiltersNameTheQueryAndPosition) {
  const std::vector<float> q = queries(3, kDim);
  expect_rejected(
      [&] {
        prepare_queries(q.data(), 3, kDim, engine_->meta(), {"", "1:", ""});
      },
      {"query 1", "filter:", "at position 3"});
  expect_rejected(
      [&] {
        prepare_queries(q.data(), 3, kDim, engine_->meta(), {"1:1", "2:2"});
      },
      {"2 filters for 3 queries"});
  expect_rejected([&] { engine_->search(q.data(), 3, kDim, {"(1:1"}, SearchOptions{}); },
                  {"filter:", "expected ')'"});
}

TEST_F(QueryValidationTest, SearchOptionsOutOfRange) {
  const std::vector<float> q = queries(2, kDim);
  auto with = [&](std::function<void(SearchOptions&)> edit) {
    SearchOptions o;
    edit(o);
    return [&q, o] { engine_->search(q.data(), 2, kDim, {}, o); };
  };
  expect_rejected(with([](SearchOptions& o) { o.k = 0; }),
                  {"k 0 is outside [1, search.max_k = 100000]"});
  expect_rejected(with([](SearchOptions& o) { o.k = 100001; }), {"k 100001 is outside"});
  expect_rejected(with([](SearchOptions& o) { o.nprobe = 0; }), {"nprobe 0 must be >= 1"});
  expect_rejected(with([](SearchOptions& o) { o.batch = 0; }), {"batch 0 must be >= 1"});
}

TEST(ItemValidation, BadItemSetsAreRejectedBeforeBuilding) {
  test::Rng rng(test::test_seed(12));
  const ItemSet good = test::random_items(rng, 40, 4, test::random_ids(rng, 40), 2, 2, 0.5);
  test::TempDir dir;
  auto build = [&](const ItemSet& items) {
    return [&dir, items] { build_index(items, test::small_index_config(1, 1), dir.path()); };
  };
  ItemSet nan = good;
  nan.embeddings[9] = std::numeric_limits<float>::quiet_NaN();
  expect_rejected(build(nan), {"embedding of item " + std::to_string(good.ids[2]), "non-finite"});
  ItemSet dup = good;
  dup.ids[7] = dup.ids[3];
  expect_rejected(build(dup), {"duplicate id " + std::to_string(good.ids[3])});
  ItemSet reserved = good;
  reserved.ids[0] = -1;
  expect_rejected(build(reserved), {"id -1 is reserved"});
  ItemSet no_dim = good;
  no_dim.dim = 0;
  expect_rejected(build(no_dim), {"dimension 0 is outside [1, 2048]"});
  ItemSet empty;
  empty.dim = 4;
  expect_rejected(build(empty), {"no items"});
  IndexConfig too_many_lists = test::small_index_config(1, 41);
  expect_rejected([&] { build_index(good, too_many_lists, dir.path()); },
                  {"index.nlist 41 exceeds the item count 40"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("MANIFEST.argent")));
}

}  // namespace
}  // namespace argent
