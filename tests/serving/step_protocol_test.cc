// The coordinator's step payload and merge, against independent references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <random>

#include "common/error.h"
#include "coordinator/merge.h"
#include "coordinator/partition_map.h"
#include "coordinator/step_protocol.h"
#include "shard/filter.h"

namespace argent {
namespace {

SearchStep random_step(std::mt19937_64& rng, int64_t n, int32_t d_pad, int32_t nprobe) {
  SearchStep s;
  s.k = 37;
  s.nprobe = nprobe;
  QueryBatch& q = s.queries;
  q.n = n;
  q.d_pad = d_pad;
  for (int64_t i = 0; i < n * d_pad; ++i) q.codes.push_back(int8_t(rng() % 255 - 127));
  for (int64_t i = 0; i < n; ++i) {
    q.scales.push_back(float(rng() % 1000) / 997.0f);
    q.bias.push_back(int32_t(rng() % 100000));
  }
  BloomParams bloom;
  q.plans.push_back(compile_filter("1:2 AND NOT (3:4 OR 5:6)", bloom));
  q.plans.push_back(compile_filter("7:8", bloom));
  for (int64_t i = 0; i < n; ++i) q.plan_of_query.push_back(int32_t(rng() % 3) - 1);
  for (int64_t i = 0; i < n * nprobe; ++i) s.lists.push_back(int32_t(rng() % 50) - 1);
  return s;
}

TEST(StepProtocol, SearchStepRoundTrips) {
  std::mt19937_64 rng(1);
  const SearchStep s = random_step(rng, 13, 20, 5);
  const SearchStep d = decode_search_step(encode_search_step(s), 20, 2, 50);
  EXPECT_EQ(d.k, s.k);
  EXPECT_EQ(d.nprobe, s.nprobe);
  EXPECT_EQ(d.lists, s.lists);
  EXPECT_EQ(d.queries.codes, s.queries.codes);
  EXPECT_EQ(d.queries.scales, s.queries.scales);
  EXPECT_EQ(d.queries.bias, s.queries.bias);
  EXPECT_EQ(d.queries.plan_of_query, s.queries.plan_of_query);
  ASSERT_EQ(d.queries.plans.size(), 2u);
  for (size_t p = 0; p < 2; ++p) {
    ASSERT_EQ(d.queries.plans[p].ops.size(), s.queries.plans[p].ops.size());
    for (size_t i = 0; i < s.queries.plans[p].ops.size(); ++i) {
      EXPECT_EQ(d.queries.plans[p].ops[i].kind, s.queries.plans[p].ops[i].kind);
      EXPECT_EQ(d.queries.plans[p].ops[i].mask, s.queries.plans[p].ops[i].mask);
    }
  }
}

TEST(StepProtocol, CorruptPayloadsAreRejected) {
  std::mt19937_64 rng(2);
  const std::vector<uint8_t> bytes = encode_search_step(random_step(rng, 4, 8, 3));
  // Every truncation fails with DATA_LOSS, never reads past the end.
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    const std::vector<uint8_t> truncated(bytes.begin(), bytes.begin() + long(cut));
    EXPECT_THROW(decode_search_step(truncated, 8, 2, 50), Error) << "cut at " << cut;
  }
  std::vector<uint8_t> trailing = bytes;
  trailing.push_back(0);
  EXPECT_THROW(decode_search_step(trailing, 8, 2, 50), Error);
  EXPECT_THROW(decode_search_step(bytes, 12, 2, 50), Error);  // wrong d_pad
  EXPECT_THROW(decode_search_step(bytes, 8, 2, 10), Error);   // list numbers out of range
}

// A message names the rank and both values, so an operator can tell who diverged and how.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    return e.what();
  }
  return "";
}

TEST(StepChecks, HeaderSequenceMustBeTheNextStep) {
  StepHeader h;
  h.op = int32_t(StepOp::kSearch);
  h.step = 8;
  EXPECT_EQ(error_of([&] { check_step_header(h, 7, 1); }), "");
  const std::string skipped = error_of([&] { check_step_header(h, 6, 2); });
  EXPECT_NE(skipped.find("rank 2: received step 8 (search) after step 6, expected step 7"),
            std::string::npos) << skipped;
  const std::string repeated = error_of([&] { check_step_header(h, 8, 1); });
  EXPECT_NE(repeated.find("expected step 9"), std::string::npos) << repeated;
  h.magic ^= 1;
  EXPECT_NE(error_of([&] { check_step_header(h, 7, 1); }).find("magic"), std::string::npos);
}

TEST(StepChecks, PayloadSizesMustMatchTheHeader) {
  std::mt19937_64 rng(3);
  const SearchStep s = random_step(rng, 5, 16, 2);
  StepHeader h;
  h.step = 4;
  h.batch = 2;
  h.n = 5;
  h.k = s.k;
  EXPECT_EQ(error_of([&] { check_search_step(h, s, 1); }), "");
  h.k = s.k + 1;
  const std::string k = error_of([&] { check_search_step(h, s, 1); });
  EXPECT_NE(k.find("rank 1: step 4 (batch 2) payload has k = 37, header k = 38"), std::string::npos)
      << k;
  h.k = s.k;
  h.n = 6;
  EXPECT_NE(error_of([&] { check_search_step(h, s, 2); }).find("n = 5, header n = 6"),
            std::string::npos);
}

TEST(StepChecks, BlocksMustEchoTheirStep) {
  StepHeader h;
  h.step = 18;
  h.batch = 9;
  h.n = 3;
  h.k = 10;
  std::vector<uint8_t> block(shard_block_bytes(h.n, h.k));
  ShardBlockHeader* header;
  float* scores;
  int64_t* ids;
  shard_block_pointers(block.data(), h.n, h.k, &header, &scores, &ids);
  header->rank = 2;
  stamp_shard_block(block, h);
  ShardBlockHeader b;
  std::memcpy(&b, block.data(), sizeof b);
  EXPECT_EQ(shard_block_mismatch(b, 2, h), "");
  EXPECT_EQ(shard_block_mismatch(b, 1, h), "rank 1 answered step 18 (batch 9) with rank = 2, "
                                           "expected rank = 1");
  // Each echoed field on its own, as a rank that misread or skipped the step would send it.
  auto with = [&](auto mutate) {
    ShardBlockHeader c = b;
    mutate(c);
    return shard_block_mismatch(c, 2, h);
  };
  EXPECT_EQ(with([](ShardBlockHeader& c) { c.k = 11; }),
            "rank 2 answered step 18 (batch 9) with k = 11, expected k = 10");
  EXPECT_EQ(with([](ShardBlockHeader& c) { c.n = 4; }),
            "rank 2 answered step 18 (batch 9) with n = 4, expected n = 3");
  EXPECT_EQ(with([](ShardBlockHeader& c) { c.step = 17; }),
            "rank 2 answered step 18 (batch 9) with step = 17, expected step = 18");
  EXPECT_EQ(with([](ShardBlockHeader& c) { c.batch = 8; }),
            "rank 2 answered step 18 (batch 9) with batch = 8, expected batch = 9");
}

// The merger reads rank r's block in place at r * shard_block_bytes of the gathered buffer: with
// n * k odd an unpadded plain block (48 + 12 n k bytes) put rank 1's header and ids 4 bytes off
// their alignment (UBSan: misaligned ShardBlockHeader in Merger::answer).
TEST(StepChecks, GatheredBlocksStayAligned) {
  for (const int32_t code_dims : {0, 32})
    for (int64_t n = 1; n <= 3; ++n)
      for (int64_t k = 1; k <= 7; ++k) {
        const size_t bytes = shard_block_bytes(n, k, code_dims);
        ASSERT_EQ(bytes % alignof(ShardBlockHeader), 0u) << "n " << n << " k " << k;
        std::vector<uint8_t> gathered(3 * bytes);
        for (size_t r = 0; r < 3; ++r) {
          const ShardBlockView v = shard_block(gathered.data() + r * bytes, n, k, code_dims);
          EXPECT_EQ(reinterpret_cast<uintptr_t>(v.header) % alignof(ShardBlockHeader), 0u);
          EXPECT_EQ(reinterpret_cast<uintptr_t>(v.ids) % alignof(int64_t), 0u);
          EXPECT_EQ(reinterpret_cast<uintptr_t>(v.scores) % alignof(float), 0u);
        }
      }
}

TEST(Merge, EqualsSortOfTheUnion) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    const int ranks = 1 + int(rng() % 4);
    const int64_t block_k = 1 + int64_t(rng() % 30);
    std::vector<std::vector<float>> scores(static_cast<size_t>(ranks));
    std::vector<std::vector<int64_t>> ids(static_cast<size_t>(ranks));
    std::vector<std::pair<float, int64_t>> all;
    int64_t next_id = 0;
    for (int r = 0; r < ranks; ++r) {
      const int64_t filled = int64_t(rng() % uint64_t(block_k + 1));
      std::vector<std::pair<float, int64_t>> mine;
      for (int64_t i = 0; i < filled; ++i) {
        // Few distinct scores: many ties, broken by id.
        mine.push_back({float(rng() % 5), next_id += 1 + int64_t(rng() % 3)});
      }
      std::sort(mine.begin(), mine.end(), [](auto& a, auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
      });
      for (auto& m : mine) {
        scores[size_t(r)].push_back(m.first);
        ids[size_t(r)].push_back(m.second);
        all.push_back(m);
      }
      scores[size_t(r)].resize(size_t(block_k), -INFINITY);
      ids[size_t(r)].resize(size_t(block_k), -1);
    }
    std::unordered_set<int64_t> excluded;
    for (auto& a : all)
      if (rng() % 7 == 0) excluded.insert(a.second);
    std::vector<std::pair<float, int64_t>> want;
    for (auto& a : all)
      if (!excluded.count(a.second)) want.push_back(a);
    std::sort(want.begin(), want.end(), [](auto& a, auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    const int64_t k = 1 + int64_t(rng() % 40);
    if (int64_t(want.size()) > k) want.resize(size_t(k));

    std::vector<const float*> sp;
    std::vector<const int64_t*> ip;
    for (int r = 0; r < ranks; ++r) {
      sp.push_back(scores[size_t(r)].data());
      ip.push_back(ids[size_t(r)].data());
    }
    const MergedResult got = merge_query(sp, ip, block_k, k, excluded);
    ASSERT_EQ(got.ids.size(), want.size()) << "trial " << trial;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got.ids[i], want[i].second);
      EXPECT_EQ(got.scores[i], want[i].first);
    }
  }
}

TEST(PartitionMap, RoundRobinCoversEveryPartitionOnce) {
  for (bool coordinator_serves : {true, false}) {
    const PartitionMap map = PartitionMap::round_robin(64, 3, coordinator_serves);
    std::vector<int> seen(64, 0);
    for (int r = 0; r < 3; ++r)
      for (int32_t p : map.partitions_of(r)) {
        ++seen[size_t(p)];
        EXPECT_EQ(map.rank_of(p), r);
      }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 64);
    if (!coordinator_serves) EXPECT_TRUE(map.partitions_of(0).empty());
  }
  EXPECT_THROW(PartitionMap::round_robin(8, 1, false), Error);
}

}  // namespace
}  // namespace argent
