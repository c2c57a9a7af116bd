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

bool CachedFilterSet::make_room(size_t bytes, uint32_t uses,
                                const std::vector<const std::string*>& batch) {
  std::vector<Lru::iterator> victims;
  size_t freed = 0;
  for (auto it = lru_.end(); bytes_ - freed + bytes > max_bytes_ && it != lru_.begin();) {
    --it;
    const bool own = std::any_of(batch.begin(), batch.end(),
                                 [&](const std::string* key) { return *key == it->key; });
    if (own || this->uses(it->key) >= uses) continue;
    victims.push_back(it);
    freed += it->bytes;
  }
  if (bytes_ - freed + bytes > max_bytes_) return false;
  for (Lru::iterator it : victims) {
    bytes_ -= it->bytes;
    by_key_.erase(it->key);
    lru_.erase(it);
    ++stats_.evictions;
  }
  return true;
}

void CachedFilterSet::insert(const std::string& key, size_t bytes, const Build& build) {
  std::shared_ptr<Entry> entry = build(key);
  lru_.push_front(Slot{key, bytes, std::move(entry)});
  by_key_[key] = lru_.begin();
  bytes_ += bytes;
  ++stats_.builds;
}

std::vector<std::shared_ptr<CachedFilterSet::Entry>> CachedFilterSet::lookup(
    const std::vector<std::string>& keys, size_t entry_bytes, const Build& build, Serve serve) {
  if (max_bytes_ == 0 || keys.empty()) return {};
  std::vector<const std::string*> distinct;
  for (const std::string& key : keys)
    if (std::none_of(distinct.begin(), distinct.end(),
                     [&](const std::string* d) { return *d == key; }))
      distinct.push_back(&key);
  auto cached = [&](const std::string& key) { return by_key_.count(key) != 0; };

  if (serve == Serve::kPeek) {
    if (!std::all_of(distinct.begin(), distinct.end(),
                     [&](const std::string* key) { return cached(*key); }))
      return {};
  } else {
    // Count this batch's uses, once per distinct filter, after any halving (so that every
    // count compared below is of the same age).
    if (++batches_ % kAgingBatches == 0 || uses_.size() + distinct.size() > kMaxTracked) age();
    std::vector<uint32_t> n;
    for (const std::string* key : distinct) n.push_back(++uses_[*key]);
    if (serve == Serve::kAllOrNone) {
      // Every missing filter must recur, and all must fit together.
      std::vector<const std::string*> missing;
      uint32_t weakest = UINT32_MAX;  // the fewest uses among the missing filters
      for (size_t i = 0; i < distinct.size(); ++i) {
        if (cached(*distinct[i])) continue;
        if (n[i] < 2) return {};
        weakest = std::min(weakest, n[i]);
        missing.push_back(distinct[i]);
      }
      if (entry_bytes * distinct.size() > max_bytes_) return {};
      if (!missing.empty() && !make_room(entry_bytes * missing.size(), weakest, distinct))
        return {};
      for (const std::string* key : missing) insert(*key, entry_bytes, build);
    } else {
      for (size_t i = 0; i < distinct.size(); ++i)
        if (!cached(*distinct[i]) && n[i] >= 2 && entry_bytes <= max_bytes_ &&
            make_room(entry_bytes, n[i], distinct))
          insert(*distinct[i], entry_bytes, build);
    }
  }

  std::vector<std::shared_ptr<Entry>> out;
  out.reserve(keys.size());
  bool any = false;
  for (const std::string& key : keys) {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) {
      out.push_back(nullptr);
      continue;
    }
    if (serve != Serve::kPeek) lru_.splice(lru_.begin(), lru_, it->second);
    out.push_back(it->second->entry);
    any = true;
  }
  if (!any) return {};
  if (serve != Serve::kPeek) ++stats_.hits;
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
