// GpuFilterCache (kernels/cuda/filter_cache.h): exact eligibility words of recurring filters.
#include "kernels/cuda/filter_cache.h"

#include <algorithm>
#include <cstring>

#include "common/cuda_check.h"
#include "kernels/cuda/device_array.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/layout.h"

namespace argent {
namespace {

constexpr int kWordsThreads = 256;  // 16 blocks of 16 rows per CTA, one thread per row

// Whether `row` is live and passes the plan exactly: the Bloom plan (its truth table when it
// compiled) first, the feature check only for the rows Bloom leaves uncertain. Rows outside
// every list (spare rows, padding) are empty and never eligible.
__device__ __forceinline__ bool row_eligible(const ScanIndexView& index,
                                             const cuda::CompiledPlan& compiled,
                                             const FilterOp* ops, int n_ops, int64_t row) {
  if (index.ids[row] == kEmptyId) return false;
  const int words = index.bloom_words;
  const uint64_t* sig = index.signatures + row * words;
  const cuda::PlanResult b = compiled.n_terms >= 0 && words <= 2
                                 ? compiled.eval(sig[0], words == 2 ? sig[1] : 0)
                                 : cuda::eval_plan_bloom(ops, n_ops, sig);
  return b.possible && (b.definite || cuda::row_passes_exactly(index.features, ops, n_ops, row));
}

// The words of blocks[0 .. n_blocks) (every block when blocks is null; listed blocks must be
// distinct), one thread per row and a half-warp's ballot per block word. counts[0], the
// eligible rows, moves by the change (on a refresh the old word is read first); a build (blocks
// null) also counts the live rows into counts[1], which a refresh leaves to its caller.
__global__ void __launch_bounds__(kWordsThreads) exact_filter_words_kernel(
    const __grid_constant__ ScanIndexView index, const FilterOp* ops, int n_ops,
    const int64_t* blocks, int64_t n_blocks, uint32_t* out, unsigned long long* counts) {
  __shared__ cuda::CompiledPlan compiled;
  __shared__ long long cta_change;
  __shared__ unsigned long long cta_live;
  if (threadIdx.x == 0) {
    compiled.compile(ops, n_ops);
    cta_change = 0;
    cta_live = 0;
  }
  __syncthreads();
  long long change = 0;
  unsigned long long live = 0;
  // The loop bound is the CTA's first row, so whole warps iterate together (the ballot).
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
       i - threadIdx.x < n_blocks * kBlockRows; i += int64_t(gridDim.x) * blockDim.x) {
    const bool valid = i < n_blocks * kBlockRows;
    const int64_t block = !valid ? 0 : blocks ? blocks[i / kBlockRows] : i / kBlockRows;
    const int64_t row = block * kBlockRows + i % kBlockRows;
    const bool ok = valid && row_eligible(index, compiled, ops, n_ops, row);
    if (!blocks && valid && index.ids[row] != kEmptyId) ++live;
    const uint32_t bits = (__ballot_sync(0xFFFFFFFFu, ok) >> (threadIdx.x & 16)) & 0xFFFFu;
    if (valid && (threadIdx.x & 15) == 0) {
      const uint32_t old = blocks ? out[block] & 0xFFFFu : 0u;
      out[block] = bits | bits << 16;
      change += __popc(bits) - __popc(old);
    }
  }
  if (change) atomicAdd(reinterpret_cast<unsigned long long*>(&cta_change),
                        static_cast<unsigned long long>(change));
  if (live) atomicAdd(&cta_live, live);
  __syncthreads();
  // Two's complement: adding a negative change as unsigned subtracts it.
  if (threadIdx.x == 0 && cta_change)
    atomicAdd(counts, static_cast<unsigned long long>(cta_change));
  if (threadIdx.x == 0 && cta_live) atomicAdd(counts + 1, cta_live);
}

void launch_words(const ScanIndexView& index, const FilterOp* ops, int n_ops,
                  const int64_t* blocks, int64_t n_blocks, uint32_t* out,
                  unsigned long long* counts, cudaStream_t stream) {
  if (n_blocks <= 0) return;
  const int64_t ctas = std::min<int64_t>(
      (n_blocks * kBlockRows + kWordsThreads - 1) / kWordsThreads, int64_t(1) << 20);
  exact_filter_words_kernel<<<unsigned(ctas), kWordsThreads, 0, stream>>>(
      index, ops, n_ops, blocks, n_blocks, out, counts);
  ARGENT_CUDA_CHECK_LAUNCH("exact_filter_words_kernel");
}

}  // namespace

struct GpuFilterCache::Entry : CachedFilterSet::Entry {
  DeviceArray ops, words, counts;  // counts: {eligible rows, live rows}
  int n_ops = 0;
};

struct GpuFilterCache::Scratch {
  DeviceArray words, counts;
};

GpuFilterCache::GpuFilterCache(size_t max_bytes)
    : set_(max_bytes), scratch_(std::make_unique<Scratch>()) {}
GpuFilterCache::~GpuFilterCache() = default;

void GpuFilterCache::clear() { set_.clear(); }

void GpuFilterCache::refresh_blocks(const ScanIndexView& index, const int64_t* blocks,
                                    int64_t n_blocks, int64_t live_rows, cudaStream_t stream) {
  if (index.codes != codes_ || index.n_rows != n_rows_) {
    clear();
    return;
  }
  const unsigned long long live = static_cast<unsigned long long>(live_rows);
  for (const auto& entry : set_.entries()) {
    auto& e = static_cast<Entry&>(*entry);
    auto* counts = static_cast<unsigned long long*>(e.counts.data());
    launch_words(index, static_cast<const FilterOp*>(e.ops.data()), e.n_ops, blocks, n_blocks,
                 static_cast<uint32_t*>(e.words.data()), counts, stream);
    // Staged before the call returns (pageable source).
    ARGENT_CUDA_CHECK(
        cudaMemcpyAsync(counts + 1, &live, sizeof(live), cudaMemcpyHostToDevice, stream));
  }
}

void GpuFilterCache::set_capacity(size_t max_bytes) { set_.set_capacity(max_bytes); }

size_t GpuFilterCache::device_bytes() const {
  size_t b = scratch_->words.bytes() + scratch_->counts.bytes();
  for (const auto& entry : set_.entries()) {
    const auto& e = static_cast<const Entry&>(*entry);
    b += e.ops.bytes() + e.words.bytes() + e.counts.bytes();
  }
  return b;
}

bool GpuFilterCache::lookup(const GpuIndexView& index, const FilterOp* ops, const int32_t* begin,
                            const int32_t* len, int n_plans, cudaStream_t stream,
                            const uint32_t** words, const unsigned long long** counts,
                            bool peek) {
  if (set_.capacity() == 0 || n_plans < 1) return false;
  if (index.scan.codes != codes_ || index.scan.n_rows != n_rows_) {
    clear();
    codes_ = index.scan.codes;
    n_rows_ = index.scan.n_rows;
  }
  const int64_t n_blocks = index.scan.n_rows / kBlockRows;
  const size_t plan_bytes = size_t(n_blocks) * sizeof(uint32_t);

  std::vector<std::string> keys;
  for (int p = 0; p < n_plans; ++p) keys.push_back(filter_key(ops + begin[p], len[p]));
  auto build = [&](const std::string& key) {
    auto e = std::make_shared<Entry>();
    e->n_ops = int(key.size() / sizeof(FilterOp));
    const FilterOp* d_ops = upload_async(
        e->ops, reinterpret_cast<const FilterOp*>(key.data()), size_t(e->n_ops), stream);
    auto* w = e->words.reserve_as<uint32_t>(size_t(n_blocks));
    auto* c = e->counts.reserve_as<unsigned long long>(2);
    ARGENT_CUDA_CHECK(cudaMemsetAsync(c, 0, 2 * sizeof(unsigned long long), stream));
    launch_words(index.scan, d_ops, e->n_ops, nullptr, n_blocks, w, c, stream);
    return e;
  };
  const std::vector<std::shared_ptr<CachedFilterSet::Entry>> batch =
      set_.lookup(keys, plan_bytes, build,
                  peek ? CachedFilterSet::Serve::kPeek : CachedFilterSet::Serve::kAllOrNone);
  if (batch.empty()) return false;

  // A single plan's words in place; several copied one after another (launch_block_plans'
  // layout).
  auto entry = [&](int p) -> const Entry& { return static_cast<const Entry&>(*batch[size_t(p)]); };
  if (n_plans == 1) {
    *words = static_cast<const uint32_t*>(entry(0).words.data());
    *counts = static_cast<const unsigned long long*>(entry(0).counts.data());
    return true;
  }
  auto* w = scratch_->words.reserve_as<uint32_t>(size_t(n_plans) * size_t(n_blocks));
  auto* c = scratch_->counts.reserve_as<unsigned long long>(size_t(n_plans) + 1);
  for (int p = 0; p < n_plans; ++p) {
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(w + size_t(p) * size_t(n_blocks), entry(p).words.data(),
                                      plan_bytes, cudaMemcpyDeviceToDevice, stream));
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(c + p, entry(p).counts.data(), sizeof(unsigned long long),
                                      cudaMemcpyDeviceToDevice, stream));
  }
  // The rows the plans' shares are of: the index's live rows, the second count of any entry.
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(
      c + n_plans, static_cast<const unsigned long long*>(entry(0).counts.data()) + 1,
      sizeof(unsigned long long), cudaMemcpyDeviceToDevice, stream));
  *words = w;
  *counts = c;
  return true;
}

}  // namespace argent
