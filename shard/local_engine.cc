#include "shard/local_engine.h"

#include <algorithm>
#include <numeric>

#include "common/error.h"

namespace argent {

void search_shard(const ShardIndex& shard, const QueryBatch& q, const int32_t* lists, int nprobe,
                  int64_t k, int threads, float* scores, int64_t* ids, int64_t* rows,
                  ScanStats* stats, const uint16_t* const* plan_masks) {
  ScanProbesView probes;
  probes.lists = lists;
  probes.nprobe = lists ? nprobe : 0;
  ScanQueriesView qv = q.view();
  qv.plan_masks = plan_masks;
  fused_scan(shard.view(), qv, probes, k, scores, ids, rows, stats, threads);
}

LocalEngine::LocalEngine(Config config, ShardIndex shard)
    : config_(std::move(config)),
      shard_(std::move(shard)),
      prober_(shard_.meta()),
      bounds_(shard_, prober_.centroids()),
      scanner_(config_.search, 0) {}

CachedFilterSet::Stats LocalEngine::filter_cache_stats() const {
  const ShardFilterCache* cache = scanner_.filter_cache();
  return cache ? cache->stats() : CachedFilterSet::Stats{};
}

LocalEngine LocalEngine::open(const std::string& dir, const Config& config) {
  const IndexMeta meta = read_manifest(dir);
  std::vector<int32_t> all(size_t(meta.partitions));
  std::iota(all.begin(), all.end(), 0);
  return LocalEngine(config, ShardIndex::load(dir, meta, all, config.index.list_slack));
}

void LocalEngine::upsert(const ItemSet& items) {
  const std::vector<PreparedItem> prepared = prepare_upserts(items, meta(), prober_.centroids());
  scanner_.invalidate();
  try {
    for (const PreparedItem& item : prepared) shard_.upsert(item);
  } catch (...) {
    bounds_.sync(shard_);  // the items written before the failure
    throw;
  }
  bounds_.sync(shard_);
}

int64_t LocalEngine::remove(const std::vector<int64_t>& ids) {
  int64_t removed = 0;
  for (int64_t id : ids) removed += shard_.remove(id) ? 1 : 0;
  bounds_.sync(shard_);
  scanner_.invalidate();
  return removed;
}

void LocalEngine::compact() {
  shard_.compact();
  bounds_.sync(shard_);
  scanner_.invalidate();
}

SearchResults LocalEngine::search(const float* queries, int64_t n, int dim,
                                  const std::vector<std::string>& filters,
                                  const SearchOptions& opts) const {
  ARGENT_CHECK(opts.k >= 1 && opts.k <= config_.search.max_k, "k ", opts.k,
               " is outside [1, search.max_k = ", config_.search.max_k, "]");
  ARGENT_CHECK(opts.batch >= 1, "batch ", opts.batch, " must be >= 1");
  ARGENT_CHECK(opts.exact || opts.nprobe >= 1, "nprobe ", opts.nprobe, " must be >= 1");
  ARGENT_CHECK(filters.size() <= 1 || int64_t(filters.size()) == n, "search: ", filters.size(),
               " filters for ", n, " queries");
  const bool exact = opts.exact || opts.nprobe >= meta().nlist;
  const int nprobe = exact ? 0 : opts.nprobe;

  SearchResults out;
  out.n = n;
  out.k = opts.k;
  out.scores.resize(size_t(n * opts.k));
  out.ids.resize(size_t(n * opts.k));
  const ShardTensors& t = shard_.tensors();
  for (int64_t q0 = 0; q0 < n; q0 += opts.batch) {
    const int64_t m = std::min<int64_t>(opts.batch, n - q0);
    std::vector<std::string> batch_filters;
    if (filters.size() == 1) batch_filters = filters;
    if (filters.size() > 1)
      batch_filters.assign(filters.begin() + q0, filters.begin() + q0 + m);
    const QueryBatch q = prepare_queries(queries + q0 * dim, m, dim, meta(), batch_filters, q0);
    std::vector<int32_t> lists;
    if (!exact)
      lists = prober_.probe(q, nprobe, t.list_sizes.data_ptr<int64_t>(),
                            static_cast<const uint64_t*>(t.list_summaries.data_ptr()));
    ScanStats stats;
    // The GPU scans every list of an exact search at memory speed; the CPU bounds do not apply.
    // A search.module runs its own scan over every list, as the service's shards do.
    if (exact && !opts.exhaustive && !scanner_.on_gpu() && config_.search.module.empty()) {
      // A first pass as wide as the default probe finds most queries' top k; the bounds then
      // name the few other lists that could still hold a better (or tying) item.
      const ShardFilterCache::Masks masks =
          scanner_.filter_cache()->lookup(shard_, q, opts.threads);
      bounds_.search(shard_, q, opts.k, std::max(1, config_.search.nprobe), opts.threads,
                     out.scores.data() + q0 * opts.k, out.ids.data() + q0 * opts.k, nullptr,
                     &stats, masks.plan_masks());
      stats.filters_cached += masks.served();
    } else {
      scanner_.scan(shard_, q, exact ? nullptr : lists.data(), nprobe, opts.k, opts.threads,
                    out.scores.data() + q0 * opts.k, out.ids.data() + q0 * opts.k, nullptr,
                    &stats);
    }
    out.stats.add(stats);
  }
  return out;
}

}  // namespace argent
