// The single-process engine: one shard holding every partition, the prober, and batched search.
// `argent search` and `argent bench` run it; the distributed service must return exactly what it
// returns for the same index and queries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "shard/exact_search.h"
#include "shard/filter_cache.h"
#include "shard/prober.h"
#include "shard/shard_index.h"
#include "shard/shard_scanner.h"

namespace argent {

struct SearchOptions {
  int64_t k = 100;
  int32_t nprobe = 32;  // lists per query; >= nlist (or exact) scans every list
  bool exact = false;
  // With exact: scan every list instead of skipping those whose score bound rules them out
  // (shard/exact_search.h). Same results; for measuring the plain scan.
  bool exhaustive = false;
  int32_t batch = 64;   // queries searched together
  int32_t threads = 0;  // 0: OpenMP default
};

struct SearchResults {
  int64_t n = 0, k = 0;
  std::vector<float> scores;  // [n, k], descending; -inf pads
  std::vector<int64_t> ids;   // [n, k]; -1 pads
  ScanStats stats;
};

// Searches one shard for a prepared batch: the fused scan over `lists` [q.n, nprobe] (null: all
// lists). Writes scores/ids/rows [q.n, k] (rows may be null). plan_masks: the plans' exact
// masks from the shard's filter cache (ShardFilterCache::Masks::plan_masks), or null.
void search_shard(const ShardIndex& shard, const QueryBatch& q, const int32_t* lists, int nprobe,
                  int64_t k, int threads, float* scores, int64_t* ids, int64_t* rows,
                  ScanStats* stats, const uint16_t* const* plan_masks = nullptr);

class LocalEngine {
 public:
  // Opens the index in `dir` with every partition in this process.
  static LocalEngine open(const std::string& dir, const Config& config);

  // Searches `n` queries [n, dim]; `filters` as in prepare_queries.
  SearchResults search(const float* queries, int64_t n, int dim,
                       const std::vector<std::string>& filters, const SearchOptions& opts) const;

  // Streaming updates in one process, applied in place exactly as a serving rank applies them
  // (shard/shard_index.h); not thread-safe against concurrent searches. upsert validates the
  // whole set first (dimension, finite values, unique ids, features), so a bad item changes
  // nothing. remove returns how many of `ids` were present.
  void upsert(const ItemSet& items);
  int64_t remove(const std::vector<int64_t>& ids);
  void compact();

  const IndexMeta& meta() const { return shard_.meta(); }
  const ShardIndex& shard() const { return shard_; }
  const Config& config() const { return config_; }
  // The CPU scans' filter cache (search.filter_cache_mb): hits, builds, evictions (zeros on the
  // GPU or with a module).
  CachedFilterSet::Stats filter_cache_stats() const;

 private:
  LocalEngine(Config config, ShardIndex shard);
  Config config_;
  ShardIndex shard_;
  Prober prober_;
  ListBounds bounds_;
  // search.device; the GPU copy and the CPU's filter cache are caches of shard_.
  mutable ShardScanner scanner_;
};

}  // namespace argent
