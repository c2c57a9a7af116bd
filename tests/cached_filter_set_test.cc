// The filter caches' policy (kernels/cached_filter_set.h): which filters enter, which stay and
// which go, against a model of it written here.
#include "kernels/cached_filter_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/util/test_util.h"

namespace argent {
namespace {

struct Words : CachedFilterSet::Entry {
  explicit Words(std::string k) : key(std::move(k)) {}
  std::string key;
};

// Looks up `keys`, building an entry named after its key; counts the builds.
class Harness {
 public:
  explicit Harness(size_t max_bytes) : set(max_bytes) {}
  // Whether the batch was served (wholly, or under kEach in part); checks each returned entry
  // is its key's.
  bool batch(const std::vector<std::string>& keys, size_t entry_bytes = 10,
             CachedFilterSet::Serve serve = CachedFilterSet::Serve::kAllOrNone) {
    served.assign(keys.size(), false);
    const auto got = set.lookup(
        keys, entry_bytes,
        [&](const std::string& key) {
          ++builds[key];
          return std::make_shared<Words>(key);
        },
        serve);
    if (got.empty()) return false;
    EXPECT_EQ(got.size(), keys.size());
    for (size_t i = 0; i < got.size() && i < keys.size(); ++i) {
      if (serve != CachedFilterSet::Serve::kEach) EXPECT_TRUE(got[i]);
      if (!got[i]) continue;
      EXPECT_EQ(static_cast<const Words&>(*got[i]).key, keys[i]);
      served[i] = true;
    }
    return true;
  }
  bool each(const std::vector<std::string>& keys) {
    return batch(keys, 10, CachedFilterSet::Serve::kEach);
  }
  std::vector<bool> served;  // per key of the last batch
  CachedFilterSet set;
  std::map<std::string, int> builds;
};

TEST(CachedFilterSet, AFilterEntersOnItsSecondBatch) {
  Harness h(100);
  EXPECT_FALSE(h.batch({"a"}));
  EXPECT_EQ(h.set.size(), 0u);
  EXPECT_TRUE(h.batch({"a"}));
  EXPECT_TRUE(h.batch({"a"}));
  EXPECT_EQ(h.builds["a"], 1);
  EXPECT_EQ(h.set.bytes(), 10u);
  EXPECT_EQ(h.set.stats().hits, 2);
  EXPECT_EQ(h.set.uses("a"), 3u);
}

TEST(CachedFilterSet, ABatchIsServedOnlyWhenAllItsFiltersAre) {
  Harness h(100);
  EXPECT_FALSE(h.batch({"a", "b"}));
  EXPECT_FALSE(h.batch({"a", "c"}));  // c is new: a is not built alone
  EXPECT_EQ(h.set.size(), 0u);
  EXPECT_TRUE(h.batch({"a", "b", "a"}));  // a repeat is one filter, returned twice
  EXPECT_EQ(h.set.size(), 2u);
  EXPECT_EQ(h.set.uses("a"), 3u);  // once per batch, not per plan
  EXPECT_TRUE(h.batch({"b"}));
  EXPECT_FALSE(h.batch({}));
}

TEST(CachedFilterSet, EachFilterIsServedOnItsOwnAndCountsOncePerBatch) {
  Harness h(20);
  EXPECT_FALSE(h.each({"a", "a", "b"}));  // two plans of one filter: one use, not built
  EXPECT_EQ(h.set.uses("a"), 1u);
  EXPECT_TRUE(h.each({"a", "c", "b"}));
  EXPECT_EQ(h.served, (std::vector<bool>{true, false, true}));  // c is new
  EXPECT_TRUE(h.each({"c", "a"}));  // c recurs, but a and b are of its batch or used more
  EXPECT_EQ(h.served, (std::vector<bool>{false, true}));
  EXPECT_EQ(h.set.stats().evictions, 0);
  for (int i = 0; i < 3; ++i) h.each({"c"});  // c: 5 uses > b's 2: b (not in the batch) goes
  EXPECT_EQ(h.served, (std::vector<bool>{true}));
  EXPECT_EQ(h.set.stats().evictions, 1);
  EXPECT_TRUE(h.each({"a", "c"}));
  EXPECT_EQ(h.served, (std::vector<bool>{true, true}));
}

TEST(CachedFilterSet, APeekCountsNoUseAndBuildsNothing) {
  Harness h(100);
  auto peek = [&](const std::vector<std::string>& keys) {
    return h.batch(keys, 10, CachedFilterSet::Serve::kPeek);
  };
  h.batch({"a"});
  EXPECT_FALSE(peek({"a"}));
  h.batch({"a"});  // built
  EXPECT_EQ(h.set.uses("a"), 2u);
  EXPECT_TRUE(peek({"a"}));
  EXPECT_FALSE(peek({"a", "b"}));
  EXPECT_EQ(h.set.uses("a"), 2u);
  EXPECT_EQ(h.set.uses("b"), 0u);
  EXPECT_EQ(h.set.stats().hits, 1);
  EXPECT_EQ(h.builds["a"], 1);
}

TEST(CachedFilterSet, OffOrTooSmallServesNothing) {
  Harness off(0);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(off.batch({"a"}));
  EXPECT_EQ(off.set.uses("a"), 0u);
  Harness small(15);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(small.batch({"a", "b"}));  // 20 bytes together
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(small.batch({"c"}, 16));
  EXPECT_TRUE(small.batch({"a"}));
  EXPECT_EQ(small.set.size(), 1u);
}

TEST(CachedFilterSet, FiltersTakingTurnsKeepTheFirstInsteadOfThrashing) {
  Harness h(10);  // room for one
  for (int i = 0; i < 50; ++i) {
    const bool a = h.batch({"a"}), b = h.batch({"b"});
    EXPECT_EQ(a, i >= 1) << "batch pair " << i;
    EXPECT_FALSE(b) << "batch pair " << i;
  }
  EXPECT_EQ(h.builds["a"], 1);
  EXPECT_EQ(h.builds["b"], 0);
  EXPECT_EQ(h.set.stats().evictions, 0);
}

TEST(CachedFilterSet, EvictionNeedsStrictlyMoreUsesAndSparesTheBatch) {
  Harness h(20);
  for (int i = 0; i < 2; ++i) h.batch({"a"});  // a: 2, cached
  for (int i = 0; i < 5; ++i) h.batch({"b"});  // b: 5, cached
  EXPECT_EQ(h.set.size(), 2u);
  EXPECT_FALSE(h.batch({"c"}));  // c: 1
  EXPECT_FALSE(h.batch({"c"}));  // c: 2, ties a: nothing goes
  EXPECT_TRUE(h.batch({"c"}));   // c: 3 > a's 2: a (not b, used more) goes
  EXPECT_EQ(h.set.stats().evictions, 1);
  EXPECT_TRUE(h.batch({"b"}));
  EXPECT_FALSE(h.batch({"a"}));  // a: 3 uses, but c has 3 and b 6: no room
  // A batch never evicts its own filters: with c and b cached, {b, c, d} cannot fit.
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(h.batch({"b", "c", "d"}));
  EXPECT_EQ(h.set.size(), 2u);
}

TEST(CachedFilterSet, UseCountsHalveEveryAgingPeriod) {
  Harness h(10);
  const int64_t period = CachedFilterSet::kAgingBatches;
  for (int64_t i = 0; i < period - 1; ++i) h.batch({"a"});
  EXPECT_EQ(h.set.uses("a"), uint32_t(period - 1));
  h.batch({"a"});  // the period's last batch halves the counts before counting its own
  EXPECT_EQ(h.set.uses("a"), uint32_t((period - 1) / 2 + 1));
  // A filter that stops recurring loses its count (and its claim to a place) in a few periods.
  for (int64_t i = 0; i < 12 * period; ++i) h.batch({"b"});
  EXPECT_EQ(h.set.uses("a"), 0u);
  // A filter met in every batch settles near one period's worth of uses (c = (c + period - 1)
  // / 2 + 1 at each period's end).
  EXPECT_NEAR(double(h.set.uses("b")), double(period), 2.0);
}

TEST(CachedFilterSet, TooManyDistinctFiltersHalveTheCounts) {
  Harness h(10);
  for (size_t i = 0; i <= CachedFilterSet::kMaxTracked; ++i) h.batch({"f" + std::to_string(i)});
  // The counts of the one-off filters halved to zero and were dropped.
  EXPECT_EQ(h.set.uses("f0"), 0u);
  EXPECT_EQ(h.set.size(), 0u);
}

TEST(CachedFilterSet, ClearKeepsUseCountsAndCapacityEvictsTheLeastRecentlyUsed) {
  Harness h(30);
  for (const char* k : {"a", "b", "c"}) {
    h.batch({k});
    h.batch({k});
  }
  EXPECT_EQ(h.set.size(), 3u);
  h.batch({"a"});  // a most recent, then c, then b
  h.set.set_capacity(20);
  EXPECT_EQ(h.set.size(), 2u);
  EXPECT_FALSE(h.batch({"x"}));  // (a first use, to check b is gone below)
  EXPECT_EQ(h.builds["b"], 1);
  h.set.clear();
  EXPECT_EQ(h.set.size(), 0u);
  EXPECT_EQ(h.set.bytes(), 0u);
  EXPECT_TRUE(h.batch({"a"}));  // recurring: built again at once
  EXPECT_EQ(h.builds["a"], 2);
  h.set.set_capacity(0);
  EXPECT_FALSE(h.batch({"a"}));
  EXPECT_EQ(h.set.uses("a"), 0u);
}

TEST(CachedFilterSet, AFailedBuildLeavesTheFilterOut) {
  CachedFilterSet set(100);
  auto fail = [](const std::string&) -> std::shared_ptr<CachedFilterSet::Entry> {
    throw std::runtime_error("out of memory");
  };
  EXPECT_TRUE(set.lookup({"a"}, 10, fail).empty());  // first use: no build
  EXPECT_THROW(set.lookup({"a"}, 10, fail), std::runtime_error);
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.bytes(), 0u);
}

// Random batches against a model of the policy.
class CachedFilterSetModelTest : public ::testing::TestWithParam<CachedFilterSet::Serve> {};

TEST_P(CachedFilterSetModelTest, RandomBatchesMatchAModel) {
  const CachedFilterSet::Serve mode = GetParam();
  const bool each = mode == CachedFilterSet::Serve::kEach;
  const uint64_t seed = test::test_seed(77);
  SCOPED_TRACE(test::seed_note(seed));
  test::Rng rng(seed);
  const size_t capacity = 40, entry = 10;
  Harness h(capacity);
  std::map<std::string, uint32_t> uses;
  std::vector<std::string> lru;  // model: cached keys, most recent first
  std::uniform_int_distribution<int> n_keys(1, 3), key(0, 7);
  for (int step = 0; step < 3000; ++step) {
    std::vector<std::string> keys;
    for (int i = n_keys(rng); i > 0; --i) keys.push_back(std::string(1, char('a' + key(rng))));
    std::vector<std::string> distinct;
    for (const auto& k : keys)
      if (std::find(distinct.begin(), distinct.end(), k) == distinct.end()) distinct.push_back(k);
    // The model: counts halve every kAgingBatches batches (8 keys never reach kMaxTracked).
    if ((step + 1) % CachedFilterSet::kAgingBatches == 0)
      for (auto it = uses.begin(); it != uses.end();)
        it = (it->second /= 2) == 0 ? uses.erase(it) : std::next(it);
    std::vector<uint32_t> n;
    for (const auto& k : distinct) n.push_back(++uses[k]);
    auto cached = [&](const std::string& k) {
      return std::find(lru.begin(), lru.end(), k) != lru.end();
    };
    // Evicts least recently used keys outside the batch with fewer than `need_uses` uses until
    // `count` more entries fit; all or nothing.
    auto make_room = [&](size_t count, uint32_t need_uses) {
      std::vector<std::string> victims;
      size_t bytes = lru.size() * entry;
      for (auto it = lru.rbegin(); it != lru.rend() && bytes + count * entry > capacity; ++it) {
        if (std::find(distinct.begin(), distinct.end(), *it) != distinct.end()) continue;
        if (uses[*it] >= need_uses) continue;
        victims.push_back(*it);
        bytes -= entry;
      }
      if (bytes + count * entry > capacity) return false;
      for (const auto& v : victims) lru.erase(std::find(lru.begin(), lru.end(), v));
      return true;
    };
    bool serve = false;
    if (each) {
      for (size_t i = 0; i < distinct.size(); ++i)
        if (!cached(distinct[i]) && n[i] >= 2 && make_room(1, n[i]))
          lru.insert(lru.begin(), distinct[i]);
      for (const auto& k : distinct) serve = serve || cached(k);
    } else {
      std::vector<std::string> missing;
      bool recur = true;
      uint32_t weakest = UINT32_MAX;
      for (size_t i = 0; i < distinct.size(); ++i) {
        if (cached(distinct[i])) continue;
        recur = recur && n[i] >= 2;
        weakest = std::min(weakest, n[i]);
        missing.push_back(distinct[i]);
      }
      serve = recur && distinct.size() * entry <= capacity &&
              (missing.empty() || make_room(missing.size(), weakest));
      if (serve)
        for (const auto& m : missing) lru.insert(lru.begin(), m);
    }
    if (serve)
      for (const auto& k : keys)
        if (cached(k)) {
          lru.erase(std::find(lru.begin(), lru.end(), k));
          lru.insert(lru.begin(), k);
        }
    ASSERT_EQ(h.batch(keys, entry, mode), serve) << "step " << step;
    ASSERT_EQ(h.set.size(), lru.size()) << "step " << step;
    for (const auto& k : distinct) ASSERT_EQ(h.set.uses(k), uses[k]) << "step " << step;
  }
  EXPECT_GT(h.set.stats().evictions, 0);
  EXPECT_GT(h.set.stats().hits, 100);
}

INSTANTIATE_TEST_SUITE_P(Modes, CachedFilterSetModelTest,
                         ::testing::Values(CachedFilterSet::Serve::kAllOrNone,
                                           CachedFilterSet::Serve::kEach));

}  // namespace
}  // namespace argent
