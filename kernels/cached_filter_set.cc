#include "kernels/cached_filter_set.h"

#include <algorithm>
#include <iterator>

namespace argent {

void CachedFilterSet::age() {
  for (auto it = uses_.begin(); it != uses_.end();) {
    it->second /= 2;
    it = it->second == 0 ? uses_.erase(it) : std::next(it);
  }
}

uint32_t CachedFilterSet::uses(const std::string& key) const {
  auto it = uses_.find(key);
  return it == uses_.end() ? 0 : it->second;
}

std::vector<std::shared_ptr<CachedFilterSet::Entry>> CachedFilterSet::lookup(
    const std::vector<std::string>& keys, size_t entry_bytes, const Build& build) {
  if (max_bytes_ == 0 || keys.empty()) return {};
  std::vector<const std::string*> distinct;
  for (const std::string& key : keys)
    if (std::none_of(distinct.begin(), distinct.end(),
                     [&](const std::string* d) { return *d == key; }))
      distinct.push_back(&key);

  // Count this batch's uses; note which filters are cached and whether every missing one
  // recurs (met in an earlier batch too).
  if (++batches_ % kAgingBatches == 0) age();
  std::vector<const std::string*> missing;
  bool all_recur = true;
  uint32_t weakest = UINT32_MAX;  // the fewest uses among the missing filters
  for (const std::string* key : distinct) {
    const uint32_t n = ++uses_[*key];
    if (by_key_.count(*key) != 0) continue;
    all_recur = all_recur && n >= 2;
    weakest = std::min(weakest, n);
    missing.push_back(key);
  }
  if (uses_.size() > kMaxTracked) age();
  if (entry_bytes * distinct.size() > max_bytes_ || !all_recur) return {};

  if (!missing.empty()) {
    // Room for the missing filters: the least recently used others go, but only those used
    // less often than every newcomer. Either all the room is found or nothing is evicted.
    const size_t needed = entry_bytes * missing.size();
    auto in_batch = [&](const std::string& key) {
      return std::any_of(distinct.begin(), distinct.end(),
                         [&](const std::string* d) { return *d == key; });
    };
    std::vector<Lru::iterator> victims;
    size_t freed = 0;
    for (auto it = lru_.end(); bytes_ - freed + needed > max_bytes_ && it != lru_.begin();) {
      --it;
      if (in_batch(it->key) || uses(it->key) >= weakest) continue;
      victims.push_back(it);
      freed += it->bytes;
    }
    if (bytes_ - freed + needed > max_bytes_) return {};
    for (Lru::iterator it : victims) {
      bytes_ -= it->bytes;
      by_key_.erase(it->key);
      lru_.erase(it);
      ++stats_.evictions;
    }
    for (const std::string* key : missing) {
      std::shared_ptr<Entry> entry = build(*key);
      lru_.push_front(Slot{*key, entry_bytes, std::move(entry)});
      by_key_[*key] = lru_.begin();
      bytes_ += entry_bytes;
      ++stats_.builds;
    }
  }

  std::vector<std::shared_ptr<Entry>> out;
  out.reserve(keys.size());
  for (const std::string& key : keys) {
    const Lru::iterator it = by_key_.at(key);
    lru_.splice(lru_.begin(), lru_, it);
    out.push_back(it->entry);
  }
  ++stats_.hits;
  return out;
}

void CachedFilterSet::clear() {
  by_key_.clear();
  lru_.clear();
  bytes_ = 0;
}

void CachedFilterSet::set_capacity(size_t max_bytes) {
  max_bytes_ = max_bytes;
  while (bytes_ > max_bytes_) {
    bytes_ -= lru_.back().bytes;
    by_key_.erase(lru_.back().key);
    lru_.pop_back();
    ++stats_.evictions;
  }
  if (max_bytes_ == 0) {
    uses_.clear();
    batches_ = 0;
  }
}

std::vector<std::shared_ptr<CachedFilterSet::Entry>> CachedFilterSet::entries() const {
  std::vector<std::shared_ptr<Entry>> out;
  out.reserve(lru_.size());
  for (const Slot& s : lru_) out.push_back(s.entry);
  return out;
}

}  // namespace argent
