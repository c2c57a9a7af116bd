// Top-K selection (TopKReservoir + finish_topk) and the merge of sorted lists (merge_topk) against
// std::sort over every candidate: score descending, ties by id ascending, padding past the
// candidates. The order is total, so the expected output is unique and compared exactly.
#include "kernels/cpu/topk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "coordinator/merge.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

using test::Rng;

struct Candidate {
  float score;
  int64_t id;
  int32_t row;
};

bool better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// n candidates with unique random ids; `tied` draws scores from 7 values so most compare equal.
std::vector<Candidate> make_candidates(Rng& rng, int64_t n, bool tied, std::vector<int64_t>* ids) {
  *ids = test::random_ids(rng, n);
  std::vector<Candidate> c(static_cast<size_t>(n));
  std::uniform_int_distribution<int> level(0, 6);
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < n; ++i)
    c[size_t(i)] = {tied ? float(level(rng)) * 0.25f - 0.5f : normal(rng), (*ids)[size_t(i)],
                    int32_t(i)};
  return c;
}

using TopKParam = std::tuple<int64_t /*candidates*/, int64_t /*k*/, int /*parts*/, bool /*tied*/>;
class TopKTest : public ::testing::TestWithParam<TopKParam> {};

TEST_P(TopKTest, ReservoirsThenFinishEqualStdSort) {
  const auto [n, k, n_parts, tied] = GetParam();
  const uint64_t seed = test::test_seed(uint64_t(n * 31 + k * 7 + n_parts));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  std::vector<int64_t> ids;
  std::vector<Candidate> cands = make_candidates(rng, n, tied, &ids);

  // Candidates arrive in random order, spread over several reservoirs (the scan's threads).
  std::vector<TopKReservoir> parts(static_cast<size_t>(n_parts));
  for (auto& p : parts) p.reset(k);
  std::uniform_int_distribution<int> pick(0, n_parts - 1);
  int64_t rejected_but_needed = 0;
  std::vector<Candidate> expect = cands;
  std::sort(expect.begin(), expect.end(), better);
  const int64_t n_out = std::min(k, n);
  for (const Candidate& c : cands) {
    TopKReservoir& r = parts[size_t(pick(rng))];
    if (r.accepts(c.score, c.id)) {
      r.push(c.score, c.row, ids.data());
    } else if (n_out > 0 && !better(expect[size_t(n_out - 1)], c)) {
      ++rejected_but_needed;  // the threshold turned away a member of the true top-k
    }
  }
  EXPECT_EQ(rejected_but_needed, 0);

  std::vector<const TopKReservoir*> ptrs;
  for (const auto& p : parts) ptrs.push_back(&p);
  ptrs.push_back(nullptr);  // finish_topk skips absent parts (threads that got no work)
  std::vector<float> scores(static_cast<size_t>(k));
  std::vector<int64_t> out_ids(static_cast<size_t>(k));
  std::vector<int64_t> rows(static_cast<size_t>(k));
  finish_topk(ptrs.data(), int(ptrs.size()), k, ids.data(), scores.data(), out_ids.data(),
              rows.data());

  int64_t wrong = 0;
  for (int64_t i = 0; i < k; ++i) {
    const bool pad = i >= n_out;
    const float es = pad ? -std::numeric_limits<float>::infinity() : expect[size_t(i)].score;
    const int64_t eid = pad ? -1 : expect[size_t(i)].id;
    const int64_t erow = pad ? -1 : expect[size_t(i)].row;
    if ((scores[size_t(i)] != es || out_ids[size_t(i)] != eid || rows[size_t(i)] != erow) &&
        wrong++ < 5)
      ADD_FAILURE() << "slot " << i << ": got (" << scores[size_t(i)] << ", id "
                    << out_ids[size_t(i)] << ", row " << rows[size_t(i)] << "), expected (" << es
                    << ", id " << eid << ", row " << erow << ")";
  }
  EXPECT_EQ(wrong, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Edges, TopKTest,
    ::testing::Values(TopKParam{0, 10, 1, false},           // no candidates: all padding
                      TopKParam{1000, 0, 2, false},         // k = 0
                      TopKParam{1000, 1, 3, true},          // k = 1 among heavy ties
                      TopKParam{5000, 10, 1, false},        //
                      TopKParam{5000, 100, 3, true},        //
                      TopKParam{20000, 999, 2, false},      // k not a round number
                      TopKParam{50, 200, 2, true},          // k larger than the candidates
                      TopKParam{1000, 1000, 1, false},      // k equal to the candidates
                      TopKParam{60000, 100000, 2, true},    // k = 100000 > candidates
                      TopKParam{150000, 100000, 3, false},  // k = 100000 < candidates
                      TopKParam{150000, 100000, 2, true}),  // ... with heavy ties
    [](const auto& info) {
      return "n" + std::to_string(std::get<0>(info.param)) + "_k" +
             std::to_string(std::get<1>(info.param)) + "_parts" +
             std::to_string(std::get<2>(info.param)) + (std::get<3>(info.param) ? "_tied" : "");
    });

// A reservoir that was used for another query starts clean after reset.
TEST(TopKReservoir, ResetForgetsThePreviousQuery) {
  std::vector<int64_t> ids = {10, 11, 12};
  TopKReservoir r;
  r.reset(1);
  r.push(5.0f, 0, ids.data());
  r.reset(2);
  EXPECT_TRUE(r.entries().empty());
  EXPECT_EQ(r.k(), 2);
  EXPECT_TRUE(r.accepts(-1e30f, 12));
  r.reset(0);
  EXPECT_FALSE(r.accepts(std::numeric_limits<float>::infinity(), 0));
}

using MergeParam = std::tuple<int /*sources*/, int64_t /*k_in*/, int64_t /*k_out*/>;
class MergeTopKTest : public ::testing::TestWithParam<MergeParam> {};

TEST_P(MergeTopKTest, EqualsStdSortOfAllSources) {
  const auto [n_sources, k_in, k_out] = GetParam();
  const uint64_t seed = test::test_seed(uint64_t(n_sources * 1000 + k_in + k_out));
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int64_t n_queries = 3;
  std::vector<std::vector<float>> scores(static_cast<size_t>(n_sources));
  std::vector<std::vector<int64_t>> ids(static_cast<size_t>(n_sources));
  // expected[q]: (score, id, origin) of every real entry.
  struct Entry {
    float score;
    int64_t id, origin;
  };
  std::vector<std::vector<Entry>> all(static_cast<size_t>(n_queries));
  const std::vector<int64_t> id_pool = test::random_ids(rng, n_sources * n_queries * k_in);
  size_t next_id = 0;
  std::uniform_int_distribution<int64_t> fill(0, k_in);
  std::uniform_int_distribution<int> level(0, 9);
  for (int s = 0; s < n_sources; ++s) {
    scores[size_t(s)].resize(size_t(n_queries * k_in));
    ids[size_t(s)].resize(size_t(n_queries * k_in));
    for (int64_t q = 0; q < n_queries; ++q) {
      // Each source offers a sorted list with a random amount of padding (a shard with few
      // eligible items), and ties across sources.
      const int64_t real = s == 0 ? k_in : fill(rng);
      std::vector<Candidate> list;
      for (int64_t i = 0; i < real; ++i) list.push_back({float(level(rng)), id_pool[next_id++], 0});
      std::sort(list.begin(), list.end(), better);
      for (int64_t i = 0; i < k_in; ++i) {
        const size_t o = size_t(q * k_in + i);
        if (i < real) {
          scores[size_t(s)][o] = list[size_t(i)].score;
          ids[size_t(s)][o] = list[size_t(i)].id;
          all[size_t(q)].push_back({list[size_t(i)].score, list[size_t(i)].id, s * k_in + i});
        } else {
          scores[size_t(s)][o] = -std::numeric_limits<float>::infinity();
          ids[size_t(s)][o] = -1;
        }
      }
    }
  }
  std::vector<const float*> sp;
  std::vector<const int64_t*> ip;
  for (int s = 0; s < n_sources; ++s) {
    sp.push_back(scores[size_t(s)].data());
    ip.push_back(ids[size_t(s)].data());
  }
  std::vector<float> out_scores(static_cast<size_t>(n_queries * k_out));
  std::vector<int64_t> out_ids(static_cast<size_t>(n_queries * k_out)),
      origin(size_t(n_queries * k_out));
  merge_topk(n_sources, sp.data(), ip.data(), n_queries, k_in, k_out, out_scores.data(),
             out_ids.data(), origin.data());
  int64_t wrong = 0;
  for (int64_t q = 0; q < n_queries; ++q) {
    auto& e = all[size_t(q)];
    std::sort(e.begin(), e.end(), [](const Entry& a, const Entry& b) {
      return a.score > b.score || (a.score == b.score && a.id < b.id);
    });
    for (int64_t i = 0; i < k_out; ++i) {
      const size_t o = size_t(q * k_out + i);
      const bool pad = i >= int64_t(e.size());
      const Entry want =
          pad ? Entry{-std::numeric_limits<float>::infinity(), -1, -1} : e[size_t(i)];
      if ((out_scores[o] != want.score || out_ids[o] != want.id || origin[o] != want.origin) &&
          wrong++ < 5)
        ADD_FAILURE() << "query " << q << " slot " << i << ": got (" << out_scores[o] << ", "
                      << out_ids[o] << ", origin " << origin[o] << "), expected (" << want.score
                      << ", " << want.id << ", origin " << want.origin << ")";
    }
  }
  EXPECT_EQ(wrong, 0);
}

INSTANTIATE_TEST_SUITE_P(Edges, MergeTopKTest,
                         ::testing::Values(MergeParam{1, 10, 10}, MergeParam{3, 10, 5},
                                           MergeParam{4, 7, 100},  // k_out > all entries
                                           MergeParam{5, 100, 100}, MergeParam{2, 1, 1},
                                           MergeParam{4, 30000, 100000}),
                         [](const auto& info) {
                           return "sources" + std::to_string(std::get<0>(info.param)) + "_kin" +
                                  std::to_string(std::get<1>(info.param)) + "_kout" +
                                  std::to_string(std::get<2>(info.param));
                         });

// The coordinator's merge of ranks' blocks (coordinator/merge.h) against the same reference, with
// negative ids (valid items: only -1 is padding), padded blocks and excluded ids.
TEST(CoordinatorMerge, EqualsStdSortOfAllRanks) {
  const uint64_t seed = test::test_seed(515);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const int n_ranks = 4;
  const int64_t block_k = 50;
  const std::vector<int64_t> pool = test::random_ids(rng, n_ranks * block_k);
  std::vector<std::vector<float>> scores(n_ranks);
  std::vector<std::vector<int64_t>> ids(n_ranks);
  std::vector<Candidate> all;
  std::uniform_int_distribution<int> level(0, 9);
  for (int r = 0; r < n_ranks; ++r) {
    const int64_t real = r == 3 ? 0 : block_k - 10 * r;  // rank 3 has nothing eligible
    std::vector<Candidate> list;
    for (int64_t i = 0; i < real; ++i)
      list.push_back({float(level(rng)), pool[size_t(r * block_k + i)], 0});
    std::sort(list.begin(), list.end(), better);
    for (int64_t i = 0; i < block_k; ++i) {
      scores[size_t(r)].push_back(i < real ? list[size_t(i)].score
                                           : -std::numeric_limits<float>::infinity());
      ids[size_t(r)].push_back(i < real ? list[size_t(i)].id : -1);
    }
    all.insert(all.end(), list.begin(), list.end());
  }
  std::sort(all.begin(), all.end(), better);
  std::unordered_set<int64_t> excluded = {all[0].id, all[7].id};
  ASSERT_LT(*std::min_element(pool.begin(), pool.end()), -1) << "the test needs negative ids";
  std::vector<const float*> sp;
  std::vector<const int64_t*> ip;
  for (int r = 0; r < n_ranks; ++r) {
    sp.push_back(scores[size_t(r)].data());
    ip.push_back(ids[size_t(r)].data());
  }
  for (int64_t k : {int64_t(1), int64_t(10), int64_t(200)}) {
    SCOPED_TRACE(::testing::Message() << "k " << k);
    const MergedResult m = merge_query(sp, ip, block_k, k, excluded);
    std::vector<int64_t> want_ids;
    std::vector<float> want_scores;
    for (const Candidate& c : all) {
      if (int64_t(want_ids.size()) == k) break;
      if (excluded.count(c.id)) continue;
      want_ids.push_back(c.id);
      want_scores.push_back(c.score);
    }
    EXPECT_EQ(m.ids, want_ids);
    EXPECT_EQ(m.scores, want_scores);
  }
}

}  // namespace
}  // namespace argent
