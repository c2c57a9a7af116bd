// A partition move at the shard level, as the serving ranks run it (coordinator/partition_mover.h):
// the source exports and encodes the partition, later writes to it keep landing on the source and
// are replayed on the destination after it adds the partition, and the source drops it. Against an
// independent reference (one shard holding every partition, given the same writes): the two
// shards together hold exactly the reference's items, bit for bit, each once, and their merged
// exact top-k equals the reference's. The transit encoding rejects damaged bytes by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "common/error.h"
#include "common/hash.h"
#include "shard/index_builder.h"
#include "shard/local_engine.h"
#include "shard/mutation.h"
#include "shard/partition_file.h"
#include "shard/prober.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

using test::Rng;

constexpr int kDim = 12;
constexpr int32_t kPartitions = 8;

class PartitionMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = test::test_seed(88);
    rng_.seed(seed_);
    const std::vector<int64_t> ids = test::random_ids(rng_, 1500);
    build_index(test::random_items(rng_, 1500, kDim, ids, 4, 5, 0.3),
                test::small_index_config(kPartitions, 16), dir_.path());
    meta_ = read_manifest(dir_.path());
    prober_ = std::make_unique<Prober>(meta_);
    all_ = std::make_unique<ShardIndex>(load({0, 1, 2, 3, 4, 5, 6, 7}));
    a_ = std::make_unique<ShardIndex>(load({0, 1, 2, 3}));
    b_ = std::make_unique<ShardIndex>(load({4, 5, 6, 7}));
    live_ = ids;
  }

  ShardIndex load(const std::vector<int32_t>& parts) {
    return ShardIndex::load(dir_.path(), meta_, parts, 0.05);
  }
  ShardIndex& owner(int32_t partition) {
    return std::count(a_->partitions().begin(), a_->partitions().end(), partition) ? *a_ : *b_;
  }

  // A random write (a new id, a replacement, or a delete), applied to the reference and to the
  // shard owning its partition; returned for the destination's replay.
  std::pair<bool, PreparedItem> random_write() {
    const int kind = int(rng_() % 3);
    if (kind == 2 && !live_.empty()) {
      const size_t i = size_t(rng_() % live_.size());
      PreparedItem gone;
      gone.id = live_[i];
      gone.partition = partition_of_id(gone.id, kPartitions);
      live_.erase(live_.begin() + long(i));
      EXPECT_TRUE(all_->remove(gone.id));
      EXPECT_TRUE(owner(gone.partition).remove(gone.id));
      return {false, gone};
    }
    const int64_t id = kind == 1 && !live_.empty() ? live_[size_t(rng_() % live_.size())]
                                                   : int64_t(rng_() >> 20);
    const ItemSet one = test::random_items(rng_, 1, kDim, {id}, 4, 5, 0.3);
    PreparedItem item = prepare_upserts(one, meta_, prober_->centroids()).front();
    if (std::find(live_.begin(), live_.end(), id) == live_.end()) live_.push_back(id);
    all_->upsert(item);
    owner(item.partition).upsert(item);
    return {true, item};
  }

  // Both shards together equal the reference: every item once, same codes, scale, features;
  // merged exact top-k equal.
  void expect_equal_to_reference() {
    const test::StoredItems ra = test::read_back(*a_), rb = test::read_back(*b_),
                            ref = test::read_back(*all_);
    std::map<int64_t, size_t> in_ref;
    for (size_t i = 0; i < ref.ids.size(); ++i) in_ref[ref.ids[i]] = i;
    ASSERT_EQ(ra.ids.size() + rb.ids.size(), ref.ids.size());
    const size_t d_pad = size_t(meta_.d_pad);
    for (const test::StoredItems* s : {&ra, &rb})
      for (size_t i = 0; i < s->ids.size(); ++i) {
        ASSERT_TRUE(in_ref.count(s->ids[i])) << "id " << s->ids[i] << " not in the reference";
        const size_t j = in_ref[s->ids[i]];
        in_ref.erase(s->ids[i]);  // a second copy would not find it
        ASSERT_EQ(s->scales[i], ref.scales[j]);
        ASSERT_TRUE(std::equal(s->codes.begin() + long(i * d_pad),
                               s->codes.begin() + long((i + 1) * d_pad),
                               ref.codes.begin() + long(j * d_pad)));
        ASSERT_EQ(s->features[i], ref.features[j]);
      }
    std::vector<int64_t> sum(static_cast<size_t>(kPartitions));
    const std::vector<int64_t> pa = a_->items_per_partition(), pb = b_->items_per_partition();
    for (int32_t p = 0; p < kPartitions; ++p) sum[size_t(p)] = pa[size_t(p)] + pb[size_t(p)];
    EXPECT_EQ(sum, all_->items_per_partition());

    const int64_t n = 8, k = 30;
    const std::vector<float> x = test::random_normal(rng_, size_t(n) * kDim);
    const QueryBatch q = prepare_queries(x.data(), n, kDim, meta_, {"NOT 1:2"});
    std::vector<float> sa(n * k), sb(n * k), sr(n * k);
    std::vector<int64_t> ia(n * k), ib(n * k), ir(n * k);
    search_shard(*a_, q, nullptr, 0, k, 1, sa.data(), ia.data(), nullptr, nullptr);
    search_shard(*b_, q, nullptr, 0, k, 1, sb.data(), ib.data(), nullptr, nullptr);
    search_shard(*all_, q, nullptr, 0, k, 1, sr.data(), ir.data(), nullptr, nullptr);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<std::pair<float, int64_t>> merged;
      for (int64_t j = 0; j < k; ++j) {
        if (ia[size_t(i * k + j)] >= 0) merged.emplace_back(sa[size_t(i * k + j)], ia[size_t(i * k + j)]);
        if (ib[size_t(i * k + j)] >= 0) merged.emplace_back(sb[size_t(i * k + j)], ib[size_t(i * k + j)]);
      }
      std::sort(merged.begin(), merged.end(), [](const auto& x1, const auto& x2) {
        return x1.first != x2.first ? x1.first > x2.first : x1.second < x2.second;
      });
      for (int64_t j = 0; j < k && ir[size_t(i * k + j)] >= 0; ++j) {
        ASSERT_LT(size_t(j), merged.size());
        ASSERT_EQ(merged[size_t(j)].second, ir[size_t(i * k + j)]) << "query " << i << " rank " << j;
        ASSERT_EQ(merged[size_t(j)].first, sr[size_t(i * k + j)]);
      }
    }
  }

  test::TempDir dir_;
  uint64_t seed_ = 0;
  Rng rng_;
  IndexMeta meta_;
  std::unique_ptr<Prober> prober_;
  std::unique_ptr<ShardIndex> all_, a_, b_;
  std::vector<int64_t> live_;
};

TEST_F(PartitionMoveTest, MovesWithWritesDuringTheCopyLoseAndDuplicateNothing) {
  SCOPED_TRACE(test::seed_note(seed_));
  for (int i = 0; i < 200; ++i) random_write();
  expect_equal_to_reference();
  // Move partitions 1 and 2 to b and then 5 to a, each with writes between the freeze and the
  // commit that the destination replays.
  for (const auto& [partition, to_b] : {std::pair{1, true}, std::pair{2, true}, std::pair{5, false}}) {
    ShardIndex& from = to_b ? *a_ : *b_;
    ShardIndex& to = to_b ? *b_ : *a_;
    const std::vector<uint8_t> bytes =
        encode_partition(from.export_partitions({partition}).front());
    std::vector<std::pair<bool, PreparedItem>> forwarded;
    for (int i = 0; i < 300; ++i) {
      auto w = random_write();
      if (w.second.partition == partition) forwarded.push_back(std::move(w));
    }
    ASSERT_FALSE(forwarded.empty());
    to.add_partition(decode_partition(bytes, meta_, partition, "test move"));
    for (const auto& [upsert, item] : forwarded) {
      if (upsert)
        to.upsert(item);
      else
        to.remove(item.id);
    }
    from.remove_partition(partition);
    EXPECT_EQ(std::count(from.partitions().begin(), from.partitions().end(), partition), 0);
    EXPECT_EQ(std::count(to.partitions().begin(), to.partitions().end(), partition), 1);
    EXPECT_EQ(from.items_per_partition()[size_t(partition)], 0);
    expect_equal_to_reference();
  }
  // And writes after the moves go to the new owners.
  for (int i = 0; i < 200; ++i) random_write();
  expect_equal_to_reference();
}

TEST_F(PartitionMoveTest, BadMovesAndDamagedBytesAreRejectedByName) {
  SCOPED_TRACE(test::seed_note(seed_));
  auto error_of = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of([&] { a_->add_partition(a_->export_partitions({0}).front()); })
                .find("already holds"),
            std::string::npos);
  EXPECT_NE(error_of([&] { a_->remove_partition(4); }).find("does not hold"), std::string::npos);
  EXPECT_NE(error_of([&] { a_->export_partitions({4}); }).find("does not hold"), std::string::npos);

  PartitionData part = a_->export_partitions({1}).front();
  const std::vector<uint8_t> good = encode_partition(part);
  EXPECT_EQ(decode_partition(good, meta_, 1, "t").ids, part.ids);
  for (size_t at : {size_t(0), size_t(13), good.size() / 2, good.size() - 1}) {
    std::vector<uint8_t> bad = good;
    bad[at] ^= 0x40;
    EXPECT_NE(error_of([&] { decode_partition(bad, meta_, 1, "t"); }).find("CRC32C"),
              std::string::npos)
        << "byte " << at;
  }
  std::vector<uint8_t> cut(good.begin(), good.end() - 9);
  EXPECT_THROW(decode_partition(cut, meta_, 1, "t"), Error);
  EXPECT_NE(error_of([&] { decode_partition(good, meta_, 2, "t"); }).find("holds partition 1"),
            std::string::npos);
  // Well-formed bytes whose items hash elsewhere: the structural check names the item.
  part.partition = 2;
  ASSERT_GT(part.size(), 0);
  EXPECT_NE(error_of([&] { decode_partition(encode_partition(part), meta_, 2, "t"); })
                .find("does not belong to partition 2"),
            std::string::npos);
}

}  // namespace
}  // namespace argent
