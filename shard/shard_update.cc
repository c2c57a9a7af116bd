// ShardIndex's streaming updates: in-place upserts, tombstone deletes, growth and compaction.
//
// Invariants every scan relies on (kernels/cpu/fused_scan.h) hold after each call: list l owns
// rows [list_offsets[l], list_offsets[l] + list_capacity[l]), starting at a multiple of 16; its
// first list_sizes[l] rows are in use (live, or tombstoned with id -1); rows beyond are free
// (id -1, zero codes); list_summaries[l] covers the signature of every live row in it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <tuple>

#include "common/error.h"
#include "kernels/cpu/bloom.h"
#include "kernels/cpu/layout_pack.h"
#include "kernels/layout.h"
#include "shard/shard_index.h"

namespace argent {
namespace {

template <typename T>
T* ptr(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// Capacity of a list holding `live` items: the same rule as ShardIndex::load.
int64_t list_capacity_for(int64_t live, double slack) {
  const int64_t spare = int64_t(std::ceil(double(live) * slack));
  int64_t cap = round_up_rows(live + spare);
  if (slack > 0) cap = std::max<int64_t>(cap, kBlockRows);
  return cap;
}

// When a full list forces a reallocation, every list gets at least this fraction of spare rows,
// so a stream of upserts spread over the lists reallocates once per ~25 % of growth instead of
// once per list that fills up (each reallocation copies the whole shard).
constexpr double kGrowthHeadroom = 0.25;

// Rows the change journal lists before a consumer is told to rebuild its copy whole instead
// (at 16 bytes an entry, 1 MiB).
constexpr size_t kMaxJournalRows = 65536;

}  // namespace

uint64_t ShardIndex::first_version() {
  static std::atomic<uint64_t> objects{1};
  return objects.fetch_add(1) << 40;
}

void ShardIndex::note_row_written(int64_t row) {
  journal_.emplace_back(++version_, row);
  if (journal_.size() > kMaxJournalRows) {
    rebuilt_at_ = journal_.front().first;  // a copy older than the dropped row must rebuild
    journal_.pop_front();
  }
}

void ShardIndex::note_reallocated() {
  rebuilt_at_ = ++version_;
  journal_.clear();
}

bool ShardIndex::rows_written_since(uint64_t version, std::vector<int64_t>* rows) const {
  rows->clear();
  if (version < rebuilt_at_ || version > version_) return false;
  for (auto it = journal_.rbegin(); it != journal_.rend() && it->first > version; ++it)
    rows->push_back(it->second);
  std::sort(rows->begin(), rows->end());
  rows->erase(std::unique(rows->begin(), rows->end()), rows->end());
  return true;
}

void ShardIndex::tombstone(int64_t row) {
  const int words = meta_.bloom.words;
  id_to_row_.erase(ptr<int64_t>(t_.ids)[row]);
  ptr<int64_t>(t_.ids)[row] = kEmptyId;
  ptr<int32_t>(t_.row_partition)[row] = -1;
  ptr<float>(t_.scales)[row] = 0;
  ptr<int32_t>(t_.feature_count)[row] = 0;
  std::fill_n(ptr<uint64_t>(t_.signatures) + row * words, words, uint64_t(0));
  clear_row(ptr<int8_t>(t_.codes), meta_.d_pad, row);
  // The list's Bloom summary keeps the dead row's bits: a summary may over-approximate (it only
  // costs a scan of the list), never under-approximate. Compaction recomputes it exactly.
  ++tombstones_;
  note_row_written(row);
}

void ShardIndex::append_features(int64_t row,
                                 const std::vector<std::pair<int32_t, int64_t>>& features) {
  const int64_t need = pool_used_ + int64_t(features.size());
  if (need > t_.feature_ids.size(0)) {
    // Amortized doubling: the pool is append-only between compactions.
    const int64_t cap = std::max<int64_t>(need, 2 * t_.feature_ids.size(0) + 64);
    at::Tensor ids = at::empty({cap}, at::kInt), values = at::empty({cap}, at::kLong);
    // An empty pool (a shard that held no partition) has null data pointers, and memcpy from
    // null is undefined even for 0 bytes.
    if (pool_used_ > 0) {
      std::memcpy(ids.data_ptr(), t_.feature_ids.data_ptr(),
                  size_t(pool_used_) * sizeof(int32_t));
      std::memcpy(values.data_ptr(), t_.feature_values.data_ptr(),
                  size_t(pool_used_) * sizeof(int64_t));
    }
    t_.feature_ids = ids;
    t_.feature_values = values;
  }
  for (size_t j = 0; j < features.size(); ++j) {
    ptr<int32_t>(t_.feature_ids)[pool_used_ + int64_t(j)] = features[j].first;
    ptr<int64_t>(t_.feature_values)[pool_used_ + int64_t(j)] = features[j].second;
  }
  ptr<int64_t>(t_.feature_offset)[row] = pool_used_;
  ptr<int32_t>(t_.feature_count)[row] = int32_t(features.size());
  pool_used_ = need;
}

int64_t ShardIndex::upsert(const PreparedItem& item) {
  ARGENT_CHECK(item.id != kEmptyId, "upsert: id -1 is reserved");
  ARGENT_CHECK(int64_t(item.codes.size()) == meta_.d_pad, "upsert: item ", item.id, " has ",
               item.codes.size(), " codes, the index has d_pad ", meta_.d_pad);
  ARGENT_CHECK(item.list >= 0 && item.list < meta_.nlist, "upsert: item ", item.id, " list ",
               item.list, " outside [0, ", meta_.nlist, ")");
  ARGENT_CHECK(std::isfinite(item.scale) && item.scale >= 0, "upsert: item ", item.id,
               " has scale ", item.scale);
  ARGENT_CHECK(std::find(partitions_.begin(), partitions_.end(), item.partition) !=
                   partitions_.end(),
               "upsert: item ", item.id, " belongs to partition ", item.partition,
               ", which this shard does not hold");
  for (size_t j = 1; j < item.features.size(); ++j)
    ARGENT_CHECK(item.features[j - 1] < item.features[j], "upsert: features of item ", item.id,
                 " are not sorted and unique");

  const int64_t old = row_of(item.id);
  if (old >= 0) tombstone(old);
  const int64_t l = item.list;
  if (ptr<int64_t>(t_.list_sizes)[l] == ptr<int64_t>(t_.list_capacity)[l]) rebuild(l);

  const int64_t row = ptr<int64_t>(t_.list_offsets)[l] + ptr<int64_t>(t_.list_sizes)[l];
  const int words = meta_.bloom.words;
  pack_rows(item.codes.data(), 1, meta_.d_pad, ptr<int8_t>(t_.codes), row);
  ptr<float>(t_.scales)[row] = item.scale;
  ptr<int32_t>(t_.row_partition)[row] = item.partition;
  append_features(row, item.features);
  std::vector<int32_t> fids;
  std::vector<int64_t> fvals;
  for (const auto& [f, v] : item.features) {
    fids.push_back(f);
    fvals.push_back(v);
  }
  uint64_t* sig = ptr<uint64_t>(t_.signatures) + row * words;
  bloom_signature(meta_.bloom, fids.data(), fvals.data(), int32_t(fids.size()), sig);
  uint64_t* summary = ptr<uint64_t>(t_.list_summaries) + l * words;
  for (int w = 0; w < words; ++w) summary[w] |= sig[w];
  // The id last: the row is complete before anything could treat it as live.
  ptr<int64_t>(t_.ids)[row] = item.id;
  ++ptr<int64_t>(t_.list_sizes)[l];
  id_to_row_[item.id] = row;
  note_row_written(row);
  return row;
}

bool ShardIndex::remove(int64_t id) {
  const int64_t row = row_of(id);
  if (row < 0) return false;
  tombstone(row);
  return true;
}

void ShardIndex::compact() { rebuild(-1); }

void ShardIndex::rebuild(int64_t grow, const std::vector<int64_t>* incoming) {
  const int64_t nlist = meta_.nlist;
  const int d_pad = meta_.d_pad;
  const int words = meta_.bloom.words;
  const int64_t* old_offset = ptr<int64_t>(t_.list_offsets);
  const int64_t* old_size = ptr<int64_t>(t_.list_sizes);
  const int64_t* old_ids = ptr<int64_t>(t_.ids);

  std::vector<int64_t> live(static_cast<size_t>(nlist), 0), capacity(live), offset(live);
  int64_t pool = 0;
  for (int64_t l = 0; l < nlist; ++l)
    for (int64_t r = old_offset[l]; r < old_offset[l] + old_size[l]; ++r)
      if (old_ids[r] != kEmptyId) {
        ++live[size_t(l)];
        pool += ptr<int32_t>(t_.feature_count)[r];
      }
  int64_t rows = 0;
  for (int64_t l = 0; l < nlist; ++l) {
    capacity[size_t(l)] = list_capacity_for(live[size_t(l)], list_slack_);
    if (grow >= 0)
      capacity[size_t(l)] = std::max(capacity[size_t(l)],
                                     list_capacity_for(live[size_t(l)], kGrowthHeadroom));
    if (incoming != nullptr)
      capacity[size_t(l)] = std::max(
          capacity[size_t(l)],
          list_capacity_for(live[size_t(l)] + (*incoming)[size_t(l)], kGrowthHeadroom));
    if (l == grow)
      capacity[size_t(l)] = std::max(capacity[size_t(l)],
                                     round_up_rows(std::max<int64_t>(2 * live[size_t(l)],
                                                                     live[size_t(l)] + 1)));
    offset[size_t(l)] = rows;
    rows += capacity[size_t(l)];
  }
  ARGENT_CHECK(rows < (int64_t(1) << 31), "shard: ", rows,
               " rows exceed the 2^31 rows a shard holds");

  ShardTensors n;
  n.codes = at::zeros({rows * d_pad}, at::kChar);
  n.scales = at::zeros({rows}, at::kFloat);
  n.ids = at::full({rows}, kEmptyId, at::kLong);
  n.signatures = at::zeros({rows, words}, at::kLong);
  n.row_partition = at::full({rows}, -1, at::kInt);
  n.feature_offset = at::zeros({rows}, at::kLong);
  n.feature_count = at::zeros({rows}, at::kInt);
  n.feature_ids = at::empty({pool}, at::kInt);
  n.feature_values = at::empty({pool}, at::kLong);
  n.list_offsets = at::from_blob(offset.data(), {nlist}, at::kLong).clone();
  n.list_sizes = at::from_blob(live.data(), {nlist}, at::kLong).clone();
  n.list_capacity = at::from_blob(capacity.data(), {nlist}, at::kLong).clone();
  n.list_summaries = at::zeros({nlist, words}, at::kLong);

  std::vector<int8_t> code(static_cast<size_t>(d_pad));
  int64_t pool_used = 0;
  id_to_row_.clear();
  for (int64_t l = 0; l < nlist; ++l) {
    int64_t dst = offset[size_t(l)];
    uint64_t* summary = ptr<uint64_t>(n.list_summaries) + l * words;
    // A list without tombstones keeps its rows in place relative to its start, and both starts
    // are multiples of 16: its code blocks move with one copy instead of row by row.
    const bool dense = live[size_t(l)] == old_size[l];
    if (dense && old_size[l] > 0)
      std::memcpy(ptr<int8_t>(n.codes) + size_t(offset[size_t(l)]) * size_t(d_pad),
                  ptr<int8_t>(t_.codes) + size_t(old_offset[l]) * size_t(d_pad),
                  size_t(round_up_rows(old_size[l])) * size_t(d_pad));
    for (int64_t r = old_offset[l]; r < old_offset[l] + old_size[l]; ++r) {
      const int64_t id = old_ids[r];
      if (id == kEmptyId) continue;
      if (!dense) {
        unpack_row(ptr<int8_t>(t_.codes), d_pad, r, code.data());
        pack_rows(code.data(), 1, d_pad, ptr<int8_t>(n.codes), dst);
      }
      ptr<float>(n.scales)[dst] = ptr<float>(t_.scales)[r];
      ptr<int64_t>(n.ids)[dst] = id;
      ptr<int32_t>(n.row_partition)[dst] = ptr<int32_t>(t_.row_partition)[r];
      const uint64_t* sig = ptr<uint64_t>(t_.signatures) + r * words;
      std::copy_n(sig, words, ptr<uint64_t>(n.signatures) + dst * words);
      for (int w = 0; w < words; ++w) summary[w] |= sig[w];
      const int64_t fb = ptr<int64_t>(t_.feature_offset)[r];
      const int32_t fc = ptr<int32_t>(t_.feature_count)[r];
      std::copy_n(ptr<int32_t>(t_.feature_ids) + fb, fc, ptr<int32_t>(n.feature_ids) + pool_used);
      std::copy_n(ptr<int64_t>(t_.feature_values) + fb, fc,
                  ptr<int64_t>(n.feature_values) + pool_used);
      ptr<int64_t>(n.feature_offset)[dst] = pool_used;
      ptr<int32_t>(n.feature_count)[dst] = fc;
      pool_used += fc;
      id_to_row_[id] = dst;
      ++dst;
    }
  }
  t_ = std::move(n);
  pool_used_ = pool_used;
  tombstones_ = 0;
  note_reallocated();
}

std::vector<PartitionData> ShardIndex::export_partitions(const std::vector<int32_t>& only) const {
  const int64_t nlist = meta_.nlist;
  const int d_pad = meta_.d_pad;
  const std::vector<int32_t>& wanted = only.empty() ? partitions_ : only;
  for (int32_t p : wanted)
    ARGENT_CHECK(std::find(partitions_.begin(), partitions_.end(), p) != partitions_.end(),
                 "shard: export of partition ", p, ", which this shard does not hold");
  // (list, id, row) of every live row, per partition, in the file's order.
  std::vector<std::vector<std::tuple<int64_t, int64_t, int64_t>>> rows(wanted.size());
  const int64_t* offsets = ptr<int64_t>(t_.list_offsets);
  const int64_t* sizes = ptr<int64_t>(t_.list_sizes);
  for (int64_t l = 0; l < nlist; ++l)
    for (int64_t r = offsets[l]; r < offsets[l] + sizes[l]; ++r) {
      const int64_t id = ptr<int64_t>(t_.ids)[r];
      if (id == kEmptyId) continue;
      const int32_t p = ptr<int32_t>(t_.row_partition)[r];
      const size_t slot = size_t(std::find(wanted.begin(), wanted.end(), p) - wanted.begin());
      if (slot < wanted.size()) rows[slot].emplace_back(l, id, r);
    }
  std::vector<PartitionData> out(wanted.size());
  for (size_t s = 0; s < wanted.size(); ++s) {
    std::sort(rows[s].begin(), rows[s].end());
    PartitionData& p = out[s];
    p.partition = wanted[s];
    const size_t n = rows[s].size();
    p.ids.resize(n);
    p.scales.resize(n);
    p.codes.resize(n * size_t(d_pad));
    p.list_offsets.assign(size_t(nlist) + 1, 0);
    p.feature_offsets.assign(1, 0);
    for (size_t i = 0; i < n; ++i) {
      const auto [l, id, r] = rows[s][i];
      p.ids[i] = id;
      p.scales[i] = ptr<float>(t_.scales)[r];
      unpack_row(ptr<int8_t>(t_.codes), d_pad, r, p.codes.data() + i * size_t(d_pad));
      ++p.list_offsets[size_t(l) + 1];
      for (const auto& [f, v] : features_of_row(r)) {
        p.feature_ids.push_back(f);
        p.feature_values.push_back(v);
      }
      p.feature_offsets.push_back(int64_t(p.feature_ids.size()));
    }
    for (int64_t l = 0; l < nlist; ++l) p.list_offsets[size_t(l) + 1] += p.list_offsets[size_t(l)];
  }
  return out;
}

void ShardIndex::add_partition(PartitionData part) {
  ARGENT_CHECK(std::find(partitions_.begin(), partitions_.end(), part.partition) ==
                   partitions_.end(),
               "shard: add_partition ", part.partition, ", which this shard already holds");
  ARGENT_CHECK(int64_t(part.list_offsets.size()) == meta_.nlist + 1 &&
                   int64_t(part.codes.size()) == part.size() * meta_.d_pad,
               "shard: add_partition ", part.partition, " does not fit this index");
  for (int64_t id : part.ids)
    ARGENT_CHECK(row_of(id) < 0, "shard: add_partition ", part.partition, ": id ", id,
                 " is already live here");
  // Each row goes in like an upsert, into its list's spare rows. Lists without room for the
  // partition's rows grow first, all in one reallocation (upserting into a full list would
  // reallocate once per list that fills).
  std::vector<int64_t> incoming(static_cast<size_t>(meta_.nlist), 0);
  bool fits = true;
  for (int64_t l = 0; l < meta_.nlist; ++l) {
    incoming[size_t(l)] = part.list_offsets[size_t(l) + 1] - part.list_offsets[size_t(l)];
    fits &= ptr<int64_t>(t_.list_sizes)[l] + incoming[size_t(l)] <=
            ptr<int64_t>(t_.list_capacity)[l];
  }
  if (!fits) rebuild(-1, &incoming);
  partitions_.push_back(part.partition);
  PreparedItem item;
  item.partition = part.partition;
  for (int64_t l = 0; l < meta_.nlist; ++l)
    for (int64_t i = part.list_offsets[size_t(l)]; i < part.list_offsets[size_t(l) + 1]; ++i) {
      item.id = part.ids[size_t(i)];
      item.list = int32_t(l);
      item.scale = part.scales[size_t(i)];
      item.codes.assign(part.codes.begin() + i * meta_.d_pad,
                        part.codes.begin() + (i + 1) * meta_.d_pad);
      item.features.clear();
      for (int64_t e = part.feature_offsets[size_t(i)]; e < part.feature_offsets[size_t(i) + 1];
           ++e)
        item.features.emplace_back(part.feature_ids[size_t(e)], part.feature_values[size_t(e)]);
      upsert(item);
    }
}

void ShardIndex::remove_partition(int32_t partition) {
  auto held = std::find(partitions_.begin(), partitions_.end(), partition);
  ARGENT_CHECK(held != partitions_.end(), "shard: remove_partition ", partition,
               ", which this shard does not hold");
  const int64_t* offsets = ptr<int64_t>(t_.list_offsets);
  const int64_t* sizes = ptr<int64_t>(t_.list_sizes);
  for (int64_t l = 0; l < meta_.nlist; ++l)
    for (int64_t r = offsets[l]; r < offsets[l] + sizes[l]; ++r)
      if (ptr<int64_t>(t_.ids)[r] != kEmptyId && ptr<int32_t>(t_.row_partition)[r] == partition)
        tombstone(r);
  partitions_.erase(held);
}

std::vector<int64_t> ShardIndex::items_per_partition() const {
  std::vector<int64_t> out(size_t(meta_.partitions), 0);
  const int64_t* ids = ptr<int64_t>(t_.ids);
  const int32_t* part = ptr<int32_t>(t_.row_partition);
  for (int64_t r = 0; r < n_rows(); ++r)
    if (ids[r] != kEmptyId) ++out[size_t(part[r])];
  return out;
}

}  // namespace argent
