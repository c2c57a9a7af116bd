#include "shard/shard_scanner.h"

#include "common/error.h"
#include "shard/local_engine.h"
#include "shard/filter_cache.h"
#include "shard/module_scanner.h"
#if defined(ARGENT_WITH_CUDA)
#include "kernels/cpu/kmeans.h"
#include "shard/gpu_shard.h"
#endif

namespace argent {

#if !defined(ARGENT_WITH_CUDA)
// Only the pointer is held; the type is complete in CUDA builds.
class GpuShard {};
#endif

ShardScanner::ShardScanner(const SearchConfig& search, int gpu)
    : gpu_(gpu), filter_cache_bytes_(size_t(search.filter_cache_mb) << 20) {
  const std::string& device = search.device;
  ARGENT_CHECK(device == "cpu" || device == "cuda", "search.device '", device,
               "' is not cpu or cuda");
  cuda_ = device == "cuda";
#if defined(ARGENT_WITH_CUDA)
  ARGENT_CHECK(!cuda_ || cuda_device_available(),
               "search.device: cuda, but no CUDA device is available here");
  // A node may run more ranks than it has GPUs (a scale test on one GPU): they share the GPUs
  // round-robin, as the NCCL communicator assigns them.
  if (cuda_) gpu_ = gpu % cuda_device_count();
#else
  ARGENT_CHECK(!cuda_, "search.device: cuda, but this build has no CUDA backend "
                       "(configure with -DARGENT_CUDA=ON where nvcc is installed)");
#endif
  if (!search.module.empty()) {
    ARGENT_CHECK(!cuda_, "search.module runs the module over the shard's CPU tensors; it needs "
                         "search.device: cpu");
    module_ = std::make_unique<ModuleScanner>(search.module);
  }
  if (!cuda_ && !module_) filter_cache_ = std::make_unique<ShardFilterCache>(filter_cache_bytes_);
}

ShardScanner::~ShardScanner() = default;
ShardScanner::ShardScanner(ShardScanner&&) noexcept = default;
ShardScanner& ShardScanner::operator=(ShardScanner&&) noexcept = default;

void ShardScanner::scan(const ShardIndex& shard, const QueryBatch& q, const int32_t* lists,
                        int nprobe, int64_t k, int threads, float* scores, int64_t* ids,
                        int64_t* rows, ScanStats* stats) {
  if (module_) {
    if (stale_) module_->bind(shard);
    stale_ = false;
    module_->scan(q, lists, nprobe, k, scores, ids, rows);
    if (stats) *stats = ScanStats{};
    return;
  }
  if (!cuda_) {
    const ShardFilterCache::Masks masks = filter_cache_->lookup(shard, q, threads);
    search_shard(shard, q, lists, nprobe, k, threads, scores, ids, rows, stats,
                 masks.plan_masks());
    if (stats) stats->filters_cached += masks.served();
    return;
  }
#if defined(ARGENT_WITH_CUDA)
  // The copy is current when it holds the shard's version (versions are unique to a shard
  // object). Writes since go over in place when they can (GpuShard::sync); a reallocated shard
  // is copied again whole.
  if (gpu_shard_ && gpu_shard_->version() != shard.version()) gpu_shard_->sync(shard);
  if (!gpu_shard_ || gpu_shard_->version() != shard.version()) {
    gpu_shard_.reset();  // free the old copy first: two copies of a large shard may not fit
    const IndexMeta& m = shard.meta();
    const QuantizedCentroids c = quantize_centroids(m.centroids.data(), m.nlist, m.dim);
    gpu_shard_ = std::make_unique<GpuShard>(shard, c, gpu_);
    gpu_shard_->set_filter_cache_bytes(filter_cache_bytes_);
  }
  stale_ = false;
  gpu_shard_->search(q, lists == nullptr, lists, nprobe, k, scores, ids, rows, nullptr,
                     GpuShard::Tuning{});
  if (stats) *stats = ScanStats{};
#endif
}

}  // namespace argent
