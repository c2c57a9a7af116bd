// The CPU shard's filter cache: for a filter that recurs across batches ("in stock AND region
// 3", shared by most queries), its exact eligibility over every row of the shard, kept between
// batches, so a batch's scan neither evaluates the filter's Bloom plan nor checks candidates
// against the feature store (ScanQueriesView::plan_masks).
//
// One mask per 16-row block (bit r: row r is live and passes the filter exactly): n_rows / 8
// bytes per filter, 125 KB per million rows. Which filters stay is kernels/cached_filter_set.h's
// policy (enter on the second batch, least recently used out among the less used), serving
// each filter on its own: a batch's cached plans use their masks, the others the Bloom path. Before each lookup the masks
// follow the shard's writes: the 16-row blocks of the rows written in place since are computed
// again (ShardIndex::rows_written_since); after a reallocation every filter is dropped and built
// again on its next batch. Results are the same with or without the cache, bit for bit.
//
// Thread-safe (one lock, held while a filter is built: concurrent searches wait for it); a
// lookup must not run concurrently with a write to the shard.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cached_filter_set.h"
#include "shard/query_batch.h"
#include "shard/shard_index.h"

namespace argent {

class ShardFilterCache {
 public:
  // max_bytes: every filter's masks together; 0 turns the cache off.
  explicit ShardFilterCache(size_t max_bytes) : set_(max_bytes) {}

  // The masks of a batch's plans over `shard`, for ScanQueriesView::plan_masks.
  class Masks {
   public:
    // [q.plans.size()]: a plan's masks or null; null when no plan of the batch is served.
    const uint16_t* const* plan_masks() const { return served_ ? masks_.data() : nullptr; }
    int served() const { return served_; }

   private:
    friend class ShardFilterCache;
    std::vector<std::shared_ptr<CachedFilterSet::Entry>> hold_;  // alive while in use
    std::vector<const uint16_t*> masks_;
    int served_ = 0;
  };
  // Looks up every plan of `q` (computing, with `threads` OpenMP threads, the filters that enter
  // now). The masks are valid while `shard` is not written.
  Masks lookup(const ShardIndex& shard, const QueryBatch& q, int threads);

  CachedFilterSet::Stats stats() const;

 private:
  // Brings every cached filter up to date with `shard`'s writes since version_.
  void follow_writes(const ShardIndex& shard, int threads);

  mutable std::mutex mu_;
  CachedFilterSet set_;      // GUARDED_BY(mu_)
  uint64_t version_ = 0;     // GUARDED_BY(mu_): the shard version the masks describe
};

}  // namespace argent
