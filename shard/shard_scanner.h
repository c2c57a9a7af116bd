// Where a shard's scans run: the CPU fused scan, or the CUDA search over a GPU copy of the
// shard (search.device: cuda). Both give the same ids and scores; callers do not care which.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/config.h"
#include "shard/query_batch.h"
#include "shard/shard_index.h"

namespace argent {

class GpuShard;
class ModuleScanner;
class ShardFilterCache;

class ShardScanner {
 public:
  // search.device: "cpu" or "cuda" (GPU `gpu`). Throws Error(kInvalidArgument) for "cuda" in a
  // build without the CUDA backend or on a machine without a GPU.
  // search.module: a saved ArgentRetrieval whose scan runs instead of the built-in one over
  // this shard's tensors (shard/module_scanner.h); "" for none. It needs device "cpu".
  // search.filter_cache_mb: the filter cache of the CPU scan (shard/filter_cache.h) or of the
  // GPU copy (kernels/cuda/filter_cache.h).
  ShardScanner(const SearchConfig& search, int gpu);
  ~ShardScanner();
  ShardScanner(ShardScanner&&) noexcept;
  ShardScanner& operator=(ShardScanner&&) noexcept;

  // Scans `lists` [q.n, nprobe] (null: every list) of `shard` for q's top k into host arrays
  // scores/ids/rows [q.n, k] (rows may be null), as search_shard does. On the GPU the shard is
  // copied on first use; when its version() moves on, the rows written since are copied over in
  // place (GpuShard::sync), or the whole shard again after a reallocation. Not thread-safe.
  void scan(const ShardIndex& shard, const QueryBatch& q, const int32_t* lists, int nprobe,
            int64_t k, int threads, float* scores, int64_t* ids, int64_t* rows, ScanStats* stats);

  // The shard is about to be modified (upserts, deletes, compaction): rebind the module's
  // buffers before the next scan (a write may reallocate them). The GPU copy follows the
  // shard's version() and needs no call.
  void invalidate() { stale_ = true; }
  bool on_gpu() const { return cuda_; }
  // The CPU scan's filter cache (shard/filter_cache.h), for callers that run the CPU scan
  // themselves (LocalEngine's bounded exact search); null on the GPU (whose copy keeps its own)
  // or with a module.
  ShardFilterCache* filter_cache() const { return filter_cache_.get(); }

 private:
  bool cuda_ = false;
  int gpu_ = 0;
  size_t filter_cache_bytes_ = 0;
  bool stale_ = true;
  std::unique_ptr<ShardFilterCache> filter_cache_;  // the CPU scan's
  std::unique_ptr<GpuShard> gpu_shard_;
  std::unique_ptr<ModuleScanner> module_;
};

}  // namespace argent
