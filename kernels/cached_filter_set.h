// Which recurring filters a filter cache keeps: the policy shared by the CPU shard's cache
// (shard/filter_cache.h) and the GPU's (kernels/cuda/filter_cache.h), which hold the words.
//
// A search engine caches what a filter selects when the filter recurs (Lucene's query cache):
// here, its exact eligibility over every row of a shard, which costs one pass over the shard to
// compute. Admission: a filter enters on its second batch, so a one-off filter never pays that
// pass. Eviction: least recently used first, but only filters met in fewer batches than every
// filter waiting to come in (as TinyLFU admits by frequency): two filters that take turns in a
// cache with room for one keep the first cached, instead of each evicting the other and being
// computed again on every batch. Use counts halve every kAgingBatches batches, so a filter that
// stops recurring loses its claim to a place.
//
// Filters are keys: the bytes of their compiled plans (identical expressions share one). A batch
// counts one use of each of its distinct filters and never evicts one of its own. The GPU serves
// a batch from the cache only when all its filters are cached together (its scan takes one set
// of words or none); the CPU serves each filter on its own. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/filter_plan.h"

namespace argent {

// A filter's key: the bytes of its compiled plan.
inline std::string filter_key(const FilterOp* ops, int n_ops) {
  return std::string(reinterpret_cast<const char*>(ops), size_t(n_ops) * sizeof(FilterOp));
}

class CachedFilterSet {
 public:
  // What a cache keeps for one filter (its words); the cache's own type derives from it.
  struct Entry {
    virtual ~Entry() = default;
  };
  using Build = std::function<std::shared_ptr<Entry>(const std::string& key)>;

  static constexpr int64_t kAgingBatches = 1024;
  static constexpr size_t kMaxTracked = 4096;  // use counts kept; more halve them early

  // max_bytes: all entries together; 0 turns the cache off (nothing is counted or kept).
  explicit CachedFilterSet(size_t max_bytes) : max_bytes_(max_bytes) {}

  enum class Serve {
    kAllOrNone,  // every filter of the batch, or none
    kEach,       // each filter on its own
    kPeek,       // all or none of what is cached now: no use counted, nothing built or evicted
                 // (a query's re-run inside a batch already looked up)
  };
  // One batch's filters (`keys`, one per plan, in plan order; repeats allowed), each entry
  // taking `entry_bytes`. Returns an entry per key, in `keys` order (null for a key not served,
  // kEach only), or an empty vector when nothing is served. A missing filter is served once it
  // enters: met in an earlier batch too, fitting (with the batch's others under kAllOrNone), and
  // with room, made if need be by evicting least recently used filters that are used less often
  // than it; it is then built by `build`, after those evictions (so their memory is free
  // first). An exception from `build` propagates: the evictions stay done, the filters built
  // before it stay cached, that filter is not.
  std::vector<std::shared_ptr<Entry>> lookup(const std::vector<std::string>& keys,
                                             size_t entry_bytes, const Build& build,
                                             Serve serve = Serve::kAllOrNone);

  // Drops every entry (their rows changed); use counts stay, so a recurring filter is built
  // again, from the new rows, on its next batch.
  void clear();
  // A new capacity; entries that no longer fit go, least recently used first.
  void set_capacity(size_t max_bytes);

  // The entries, most recently used first (to bring their words up to date after writes).
  std::vector<std::shared_ptr<Entry>> entries() const;
  size_t bytes() const { return bytes_; }
  size_t capacity() const { return max_bytes_; }
  size_t size() const { return lru_.size(); }
  // Batches that met `key` (aged), whether cached or not.
  uint32_t uses(const std::string& key) const;

  struct Stats {
    int64_t hits = 0;       // batches served (under kEach, in part or whole)
    int64_t builds = 0;     // filters computed over the whole shard
    int64_t evictions = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Slot {
    std::string key;
    size_t bytes;
    std::shared_ptr<Entry> entry;
  };
  using Lru = std::list<Slot>;  // most recently used first
  void age();
  // Evicts, least recently used first, filters not in `batch` used fewer than `uses` times
  // until `bytes` more fit; either all the room is found or nothing is evicted.
  bool make_room(size_t bytes, uint32_t uses, const std::vector<const std::string*>& batch);
  void insert(const std::string& key, size_t bytes, const Build& build);

  size_t max_bytes_;
  size_t bytes_ = 0;
  Lru lru_;
  std::unordered_map<std::string, Lru::iterator> by_key_;
  std::unordered_map<std::string, uint32_t> uses_;
  int64_t batches_ = 0;
  Stats stats_;
};

}  // namespace argent
