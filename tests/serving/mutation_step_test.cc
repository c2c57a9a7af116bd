// The update path's payloads, against independent references: the mutation step and the log
// record of a request round-trip exactly, truncated or corrupted payloads are rejected with
// DATA_LOSS instead of being read out of bounds, and a rank applying a step with many deletes
// compacts its shard past updates.compact_tombstone_ratio.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "common/error.h"
#include "coordinator/mutation_request.h"
#include "coordinator/mutation_step.h"
#include "shard/index_builder.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using test::Rng;

MutationStep random_step(Rng& rng, int32_t d_pad, int64_t nlist, int ranks) {
  MutationStep s;
  s.n_requests = 5;
  for (int i = 0; i < 40; ++i) {
    StepMutation m;
    m.kind = rng() % 3 == 0 ? MutationKind::kDelete : MutationKind::kUpsert;
    m.rank = int32_t(rng() % uint64_t(ranks));
    m.request = int32_t(rng() % 5);
    m.item.id = int64_t(rng());
    m.item.partition = int32_t(rng() % 64);
    if (m.kind == MutationKind::kUpsert) {
      m.item.list = int32_t(rng() % uint64_t(nlist));
      m.item.scale = float(rng() % 1000) / 999.0f;
      for (int j = 0; j < d_pad; ++j) m.item.codes.push_back(int8_t(int(rng() % 255) - 127));
      m.item.features = test::random_features(rng, 4, 9, 0.4);
    }
    s.mutations.push_back(m);
  }
  return s;
}

TEST(MutationStep, RoundTripsAndRejectsCorruption) {
  const uint64_t seed = test::test_seed(1);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  const MutationStep s = random_step(rng, 20, 50, 3);
  const std::vector<uint8_t> bytes = encode_mutation_step(s);
  const MutationStep d = decode_mutation_step(bytes, 20, 50, 3);
  ASSERT_EQ(d.n_requests, s.n_requests);
  ASSERT_EQ(d.mutations.size(), s.mutations.size());
  for (size_t i = 0; i < s.mutations.size(); ++i) {
    const StepMutation &a = s.mutations[i], &b = d.mutations[i];
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.rank, b.rank);
    EXPECT_EQ(a.request, b.request);
    EXPECT_EQ(a.item.id, b.item.id);
    EXPECT_EQ(a.item.partition, b.item.partition);
    EXPECT_EQ(a.item.list, b.item.list);
    EXPECT_EQ(a.item.scale, b.item.scale);
    EXPECT_EQ(a.item.codes, b.item.codes);
    EXPECT_EQ(a.item.features, b.item.features);
  }
  // Every truncation fails loudly; so do values out of range for the index.
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    const std::vector<uint8_t> part(bytes.begin(), bytes.begin() + long(cut));
    EXPECT_THROW(decode_mutation_step(part, 20, 50, 3), Error) << "cut at " << cut;
  }
  EXPECT_THROW(decode_mutation_step(bytes, 24, 50, 3), Error) << "wrong d_pad";
  EXPECT_THROW(decode_mutation_step(bytes, 20, 10, 3), Error) << "lists beyond nlist";
  EXPECT_THROW(decode_mutation_step(bytes, 20, 50, 2), Error) << "ranks beyond the job";
  std::vector<uint8_t> trailing = bytes;
  trailing.push_back(0);
  EXPECT_THROW(decode_mutation_step(trailing, 20, 50, 3), Error);
}

TEST(MutationRecord, UpsertAndDeleteRoundTripThroughTheLogPayload) {
  const uint64_t seed = test::test_seed(2);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  MutationBatch up;
  up.kind = MutationKind::kUpsert;
  up.items = test::random_items(rng, 9, 7, test::random_ids(rng, 9), 5, 6, 0.4);
  const std::vector<uint8_t> bytes = encode_mutation(up);
  const MutationBatch u = decode_mutation(bytes.data(), bytes.size(), 7);
  EXPECT_EQ(u.kind, MutationKind::kUpsert);
  EXPECT_EQ(u.items.ids, up.items.ids);
  EXPECT_EQ(u.items.embeddings, up.items.embeddings);
  EXPECT_EQ(u.items.feature_offsets, up.items.feature_offsets);
  EXPECT_EQ(u.items.feature_ids, up.items.feature_ids);
  EXPECT_EQ(u.items.feature_values, up.items.feature_values);
  EXPECT_THROW(decode_mutation(bytes.data(), bytes.size(), 8), Error) << "another dimension";
  for (size_t cut = 0; cut < bytes.size(); cut += 5)
    EXPECT_THROW(decode_mutation(bytes.data(), cut, 7), Error) << "cut at " << cut;

  MutationBatch del;
  del.kind = MutationKind::kDelete;
  del.ids = {5, -7, int64_t(1) << 60};
  const std::vector<uint8_t> dbytes = encode_mutation(del);
  const MutationBatch d = decode_mutation(dbytes.data(), dbytes.size(), 7);
  EXPECT_EQ(d.kind, MutationKind::kDelete);
  EXPECT_EQ(d.ids, del.ids);
}

// A rank applies only its own mutations, counts per request what it applied, and compacts once
// deleted rows pass the configured fraction of its rows in use.
TEST(MutationStep, ApplyCountsPerRequestAndCompactsPastTheRatio) {
  const uint64_t seed = test::test_seed(3);
  SCOPED_TRACE(test::seed_note(seed));
  Rng rng(seed);
  test::TempDir dir;
  const int64_t n = 2000;
  const ItemSet items = test::random_items(rng, n, 8, test::random_ids(rng, n), 3, 3, 0.5);
  build_index(items, test::small_index_config(4, 8), dir.path());
  const IndexMeta meta = read_manifest(dir.path());
  ShardIndex shard = ShardIndex::load(dir.path(), meta, {0, 1, 2, 3}, 0.1);

  MutationStep step;
  step.n_requests = 2;
  for (int64_t i = 0; i < 800; ++i) {  // request 0: 800 deletes for rank 0, one absent id
    StepMutation m;
    m.kind = MutationKind::kDelete;
    m.item.id = i < 799 ? items.ids[size_t(i)] : 424242;
    m.request = 0;
    step.mutations.push_back(m);
  }
  StepMutation other;  // request 1: a delete for rank 1, which rank 0 must not apply
  other.kind = MutationKind::kDelete;
  other.item.id = items.ids[1999];
  other.rank = 1;
  other.request = 1;
  step.mutations.push_back(other);

  const std::vector<uint8_t> ack = apply_mutation_step(step, 0, 0.25, shard);
  ASSERT_EQ(ack.size(), mutation_ack_bytes(2));
  MutationAck a;
  std::memcpy(&a, ack.data(), sizeof a);
  int64_t applied[2];
  std::memcpy(applied, ack.data() + sizeof a, sizeof applied);
  EXPECT_EQ(applied[0], 799);
  EXPECT_EQ(applied[1], 0);
  EXPECT_EQ(a.items, n - 799);
  EXPECT_EQ(shard.n_items(), n - 799);
  EXPECT_EQ(a.tombstones, 0) << "799 of 2000 rows deleted is past 0.25: the shard compacts";
  EXPECT_GE(shard.row_of(items.ids[1999]), 0);

  // Below the ratio nothing is compacted.
  MutationStep few;
  few.n_requests = 1;
  for (int64_t i = 799; i < 1099; ++i) {
    StepMutation m;
    m.kind = MutationKind::kDelete;
    m.item.id = items.ids[size_t(i)];
    few.mutations.push_back(m);
  }
  apply_mutation_step(few, 0, 0.5, shard);
  EXPECT_EQ(shard.tombstones(), 300);
}

}  // namespace
}  // namespace argent
