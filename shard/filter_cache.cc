#include "shard/filter_cache.h"

#include <omp.h>

#include <algorithm>
#include <string>

#include "common/error.h"
#include "kernels/cpu/bloom.h"
#include "kernels/layout.h"

namespace argent {
namespace {

struct PlanMasks : CachedFilterSet::Entry {
  FilterPlan plan;
  std::vector<uint16_t> masks;  // [n_rows / 16]
};

// masks[b] for the blocks b in blocks[0, n) (every block [0, n) when blocks is null): the rows
// of block b that are live and pass `plan` exactly. The Bloom plan decides most rows; those it
// leaves uncertain are checked against the feature store, as the scan checks its candidates.
void compute_masks(const ScanIndexView& v, const FilterPlanView& plan, const int64_t* blocks,
                   int64_t n, uint16_t* masks, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : omp_get_max_threads())
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = blocks ? blocks[i] : i;
    const int64_t first = b * kBlockRows;
    uint16_t live = 0;
    for (int r = 0; r < kBlockRows; ++r)
      if (v.ids[first + r] != kEmptyId) live |= uint16_t(1u << r);
    uint16_t m = 0;
    if (live != 0) {
      const BlockEligibility e =
          eval_plan_block(plan, v.signatures + first * v.bloom_words, v.bloom_words);
      m = uint16_t(e.possible & e.definite & live);
      for (uint32_t u = e.possible & ~e.definite & live; u != 0; u &= u - 1) {
        const int r = __builtin_ctz(u);
        if (eval_plan_exact(plan, v.features, first + r)) m |= uint16_t(1u << r);
      }
    }
    masks[b] = m;
  }
}

}  // namespace

void ShardFilterCache::follow_writes(const ShardIndex& shard, int threads) {
  if (shard.version() == version_) return;
  std::vector<int64_t> rows;
  const int64_t n_blocks = shard.n_rows() / kBlockRows;
  if (set_.size() > 0 && shard.rows_written_since(version_, &rows)) {
    std::vector<int64_t> blocks;  // rows are sorted: their blocks come in order
    for (int64_t row : rows)
      if (blocks.empty() || blocks.back() != row / kBlockRows) blocks.push_back(row / kBlockRows);
    const ScanIndexView v = shard.view();
    for (const auto& entry : set_.entries()) {
      auto& e = static_cast<PlanMasks&>(*entry);
      ARGENT_ASSERT(int64_t(e.masks.size()) == n_blocks, "filter cache: masks of ",
                    e.masks.size(), " blocks for a shard of ", n_blocks);
      compute_masks(v, e.plan.view(), blocks.data(), int64_t(blocks.size()), e.masks.data(),
                    threads);
    }
  } else {
    set_.clear();  // reallocated (or another shard): every filter is built again
  }
  version_ = shard.version();
}

ShardFilterCache::Masks ShardFilterCache::lookup(const ShardIndex& shard, const QueryBatch& q,
                                                 int threads) {
  Masks out;
  std::lock_guard<std::mutex> lock(mu_);
  if (set_.capacity() == 0 || q.plans.empty()) return out;
  follow_writes(shard, threads);
  const int64_t n_blocks = shard.n_rows() / kBlockRows;
  const size_t entry_bytes = size_t(n_blocks) * sizeof(uint16_t);
  // One lookup for the batch: each distinct filter counts one use, whatever number of plans
  // (texts) compiled to it.
  std::vector<size_t> plan_of_key;
  std::vector<std::string> keys;
  for (size_t p = 0; p < q.plans.size(); ++p) {
    if (q.plans[p].empty()) continue;
    plan_of_key.push_back(p);
    keys.push_back(filter_key(q.plans[p].ops.data(), int(q.plans[p].ops.size())));
  }
  auto build = [&](const std::string& key) {
    const size_t i = size_t(std::find(keys.begin(), keys.end(), key) - keys.begin());
    auto e = std::make_shared<PlanMasks>();
    e->plan = q.plans[plan_of_key[i]];
    e->masks.resize(size_t(n_blocks));
    compute_masks(shard.view(), e->plan.view(), nullptr, n_blocks, e->masks.data(), threads);
    return e;
  };
  const auto got = set_.lookup(keys, entry_bytes, build, CachedFilterSet::Serve::kEach);
  if (got.empty()) return out;
  out.masks_.assign(q.plans.size(), nullptr);
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i]) continue;
    out.masks_[plan_of_key[i]] = static_cast<const PlanMasks&>(*got[i]).masks.data();
    out.hold_.push_back(got[i]);
    ++out.served_;
  }
  return out;
}

CachedFilterSet::Stats ShardFilterCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return set_.stats();
}

}  // namespace argent
