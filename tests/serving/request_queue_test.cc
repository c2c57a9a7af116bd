// The gateway's queues bounded by bytes (serve.max_queue_bytes) as well as by count: a request
// that would take the bytes held past the budget is refused (the gateway answers OVERLOADED) and
// left intact, the bytes stay charged while a popped request is searched or applied, and they
// all come back once the requests are answered (destroyed). Also the batcher's rule that keeps
// a search with many exclude_ids out of the steps of small ones.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "coordinator/request_queue.h"
#include "coordinator/step_protocol.h"
#include "coordinator/update_queue.h"

namespace argent {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr int kRanks = 3;
constexpr int64_t kBudget = int64_t(4) << 20;

PendingSearch search_with(int64_t k, int64_t excluded, int32_t dim = 24) {
  PendingSearch r;
  r.envelope = {"client-routing-id"};
  r.embedding.assign(size_t(dim), 0.5f);
  r.k = k;
  r.nprobe = 4;
  r.exclude_ids.resize(size_t(excluded));
  for (int64_t i = 0; i < excluded; ++i) r.exclude_ids[size_t(i)] = i * 7919;
  r.candidates = k + excluded;
  r.arrival = SteadyClock::now();
  r.deadline = SteadyClock::time_point::max();
  return r;
}

PendingMutation upsert_of(int64_t items, int32_t dim) {
  PendingMutation m;
  m.envelope = {"writer"};
  m.batch.kind = MutationKind::kUpsert;
  m.batch.items.dim = dim;
  for (int64_t i = 0; i < items; ++i) {
    m.batch.items.ids.push_back(i);
    m.batch.items.feature_offsets.push_back(0);
  }
  m.batch.items.embeddings.assign(size_t(items * dim), 1.0f);
  return m;
}

// Pops until the queue is empty and returns everything popped (still holding its charges).
std::vector<PendingSearch> drain(RequestQueue& queue) {
  std::vector<PendingSearch> all;
  while (queue.depth() > 0)
    for (PendingSearch& r : queue.pop_batch(64, microseconds(0), milliseconds(10)))
      all.push_back(std::move(r));
  return all;
}

TEST(QueueBytes, DecodedSizeCountsExcludedIdsAndTheirCandidates) {
  const PendingSearch small = search_with(10, 0), large = search_with(10, 100000);
  // exclude_ids are 8 bytes each once decoded, whatever their varint length on the wire.
  EXPECT_GE(request_bytes(large) - request_bytes(small), 100000 * 8);
  // Each rank sends back (k + excluded) candidates of a score and an id for the merge.
  EXPECT_EQ(search_bytes(large, kRanks, 0) - request_bytes(large),
            kRanks * int64_t(shard_block_bytes(1, 100010)));
  EXPECT_GE(search_bytes(large, kRanks, 0), 800000 + kRanks * 100010 * 12);
}

TEST(QueueBytes, SearchesPastTheBudgetAreRefusedAndTheBytesComeBackWhenAnswered) {
  RequestQueue queue(/*capacity=*/100000, kBudget);
  const int64_t each = search_bytes(search_with(10, 20000), kRanks, 0);
  const int64_t fits = QueueBudget(kBudget).large_limit() / each;  // large: short of the reserve
  ASSERT_GE(fits, 2) << "the budget must hold a few requests for this test to mean anything";
  for (int64_t i = 0; i < fits; ++i) {
    PendingSearch r = search_with(10, 20000);
    ASSERT_EQ(queue.push(r, each), PushResult::kQueued) << "request " << i;
  }
  EXPECT_EQ(queue.held_bytes(), fits * each);
  // The next one does not fit: refused, and left for the gateway to answer OVERLOADED.
  PendingSearch refused = search_with(10, 20000);
  EXPECT_EQ(queue.push(refused, each), PushResult::kOverBytes);
  EXPECT_EQ(refused.exclude_ids.size(), 20000u);
  EXPECT_EQ(refused.envelope.size(), 1u);
  EXPECT_EQ(queue.depth(), fits);
  EXPECT_LE(queue.held_bytes(), kBudget);
  // A small search still fits in what is left: the budget limits the large one's client, not
  // everyone.
  PendingSearch small = search_with(10, 0);
  const int64_t small_bytes = search_bytes(small, kRanks, 0);
  ASSERT_LE(small_bytes, QueueBudget(kBudget).small_request());
  ASSERT_LE(fits * each + small_bytes, kBudget);
  EXPECT_EQ(queue.push(small, small_bytes), PushResult::kQueued);

  // Popped requests are being searched and merged: their bytes are still held.
  std::vector<PendingSearch> popped = drain(queue);
  EXPECT_EQ(int64_t(popped.size()), fits + 1);
  EXPECT_EQ(queue.depth(), 0);
  EXPECT_EQ(queue.held_bytes(), fits * each + small_bytes);
  PendingSearch still_refused = search_with(10, 20000);
  EXPECT_EQ(queue.push(still_refused, each), PushResult::kOverBytes);
  // Answered (destroyed) one by one, they give their bytes back: nothing leaks.
  popped.pop_back();
  EXPECT_EQ(queue.held_bytes(), fits * each);
  popped.clear();
  EXPECT_EQ(queue.held_bytes(), 0);
  EXPECT_EQ(queue.push(still_refused, each), PushResult::kQueued);
}

// A client that keeps the budget full of large requests cannot refuse everyone else: the last
// eighth is for small ones (the gateway's hostile-client tests flaked on exactly this, answering
// well-behaved searches OVERLOADED).
TEST(QueueBytes, SmallRequestsKeepTheirReserveBesideLargeOnes) {
  QueueBudget budget(kBudget);
  const int64_t large = budget.small_request() + 1, small = budget.small_request();
  int64_t taken = 0;
  while (budget.try_take(large)) taken += large;
  EXPECT_LE(taken, budget.large_limit());
  EXPECT_GT(taken + large, budget.large_limit());
  int64_t small_taken = 0;
  while (budget.try_take(small)) small_taken += small;
  EXPECT_GE(small_taken, kBudget / 8 - large) << "the small requests' reserve was not there";
  EXPECT_LE(budget.held(), kBudget);
  EXPECT_FALSE(budget.try_take(large));
}

TEST(QueueBytes, CountLimitAndCloseStillApply) {
  RequestQueue queue(/*capacity=*/2, kBudget);
  for (int i = 0; i < 2; ++i) {
    PendingSearch r = search_with(10, 0);
    ASSERT_EQ(queue.push(r, 1000), PushResult::kQueued);
  }
  PendingSearch third = search_with(10, 0);
  EXPECT_EQ(queue.push(third, 1000), PushResult::kFull);
  std::vector<PendingSearch> left = queue.close("test");
  EXPECT_EQ(left.size(), 2u);
  EXPECT_EQ(queue.held_bytes(), 2000);  // until the shutdown replies are sent
  EXPECT_EQ(queue.push(third, 1000), PushResult::kClosed);
  left.clear();
  EXPECT_EQ(queue.held_bytes(), 0);
}

TEST(QueueBytes, ARequestLargerThanTheBudgetIsServedAloneNotRefusedForever) {
  RequestQueue queue(100, /*max_bytes=*/1000);
  PendingSearch small = search_with(10, 0), huge = search_with(10, 0);
  ASSERT_EQ(queue.push(small, 10), PushResult::kQueued);
  EXPECT_EQ(queue.push(huge, 5000), PushResult::kOverBytes);
  drain(queue);  // answered: nothing held now
  EXPECT_EQ(queue.push(huge, 5000), PushResult::kQueued);
  EXPECT_EQ(queue.push(small, 10), PushResult::kOverBytes);
  drain(queue);
  EXPECT_EQ(queue.held_bytes(), 0);
}

TEST(QueueBytes, WritesPastTheBudgetAreRefusedAndTheBytesComeBackWhenAcknowledged) {
  MutationQueue queue(/*capacity=*/100000, kBudget, nullptr);
  const int64_t each = request_bytes(upsert_of(1000, 128));
  EXPECT_GE(each, 1000 * 128 * 4);  // the embeddings, decoded
  const int64_t fits = QueueBudget(kBudget).large_limit() / each;
  ASSERT_GE(fits, 2);
  for (int64_t i = 0; i < fits; ++i) {
    PendingMutation m = upsert_of(1000, 128);
    ASSERT_EQ(queue.push(m, each), PushResult::kQueued) << "request " << i;
  }
  PendingMutation refused = upsert_of(1000, 128);
  EXPECT_EQ(queue.push(refused, each), PushResult::kOverBytes);
  EXPECT_EQ(refused.batch.items.size(), 1000);
  EXPECT_EQ(queue.depth(), fits);
  // Popped requests are logged and applied before they are acknowledged: still held.
  std::vector<PendingMutation> popped;
  while (!queue.empty())
    for (PendingMutation& m : queue.pop(1 << 30)) popped.push_back(std::move(m));
  EXPECT_EQ(int64_t(popped.size()), fits);
  EXPECT_EQ(queue.held_bytes(), fits * each);
  EXPECT_EQ(queue.push(refused, each), PushResult::kOverBytes);
  popped.clear();
  EXPECT_EQ(queue.held_bytes(), 0);
  EXPECT_EQ(queue.push(refused, each), PushResult::kQueued);
}

TEST(QueueBytes, SearchesWithManyExcludedIdsDoNotShareSmallOnesSteps) {
  RequestQueue queue(100, int64_t(1) << 30);
  // Oldest first: small, large, small with a larger k, large with a few more excluded ids.
  for (const auto& [k, excluded] : std::vector<std::pair<int64_t, int64_t>>{
           {10, 0}, {10, 100000}, {1000, 0}, {10, 120000}}) {
    PendingSearch r = search_with(k, excluded);
    ASSERT_EQ(queue.push(r, 1000), PushResult::kQueued);
  }
  const std::vector<PendingSearch> first = queue.pop_batch(64, microseconds(0), milliseconds(10));
  ASSERT_EQ(first.size(), 2u);  // ordinary mixes of k still share a step
  EXPECT_EQ(first[0].candidates, 10);
  EXPECT_EQ(first[1].candidates, 1000);
  const std::vector<PendingSearch> second = queue.pop_batch(64, microseconds(0), milliseconds(10));
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].candidates, 100010);
  EXPECT_EQ(second[1].candidates, 120010);
}

// Each joiner is checked against the batch's whole range of candidate counts, not only its first
// request: 400 is within ~2x of 1000 but not of 2900, which the step would gather for it.
TEST(QueueBytes, AStepsCandidateCountsStayWithinItsRange) {
  RequestQueue queue(100, int64_t(1) << 30);
  for (const int64_t k : {int64_t(1000), int64_t(2900), int64_t(400)}) {
    PendingSearch r = search_with(k, 0);
    ASSERT_EQ(queue.push(r, 1000), PushResult::kQueued);
  }
  const std::vector<PendingSearch> first = queue.pop_batch(64, microseconds(0), milliseconds(10));
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].candidates, 2900);
  const std::vector<PendingSearch> second = queue.pop_batch(64, microseconds(0), milliseconds(10));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].candidates, 400);
}

}  // namespace
}  // namespace argent
