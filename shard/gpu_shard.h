// A shard's tensors copied to one GPU, searched by the CUDA kernels (kernels/cuda/gpu_search.h)
// with the same results as the CPU fused scan over the same ShardIndex. Built only with the CUDA
// backend (ARGENT_WITH_CUDA).
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/cpu/kmeans.h"
#include "kernels/cuda/gpu_search.h"
#include "shard/query_batch.h"
#include "shard/shard_index.h"

namespace argent {

class GpuShard {
 public:
  // Copies `shard` (and the quantized centroids, for the probe) to GPU `device`. The copy is a
  // snapshot of the shard's version(); sync() brings later writes over. Throws Error(kInternal)
  // without a GPU.
  GpuShard(const ShardIndex& shard, const QuantizedCentroids& centroids, int device);

  // Brings the writes made to `shard` since this copy's version over, in place: the 16-row
  // blocks of the rows written (ShardIndex::rows_written_since), the new end of the feature
  // pool and the list tables, then the derived tables. Returns false, copying nothing, when
  // that is not possible (the shard's tensors were reallocated, too many rows changed, the pool
  // outgrew its room here, or `shard` is another object): the caller then builds a new GpuShard.
  bool sync(const ShardIndex& shard);
  // The ShardIndex::version() this copy holds.
  uint64_t version() const;
  ~GpuShard();
  GpuShard(const GpuShard&) = delete;
  GpuShard& operator=(const GpuShard&) = delete;

  // Searches a prepared batch: every list (`exact`), the caller's `lists` [q.n, nprobe] (host),
  // or, with lists == null, the lists the GPU probe picks. Writes host arrays scores/ids [q.n, k]
  // (rows may be null), as fused_scan does. `tuning`: sample_stride and candidate_cap of
  // GpuSearchOptions (0: automatic). Not thread-safe.
  struct Tuning {
    int sample_stride = 0;
    int64_t candidate_cap = 0;
  };
  void search(const QueryBatch& q, bool exact, const int32_t* lists, int nprobe, int64_t k,
              float* scores, int64_t* ids, int64_t* rows, GpuSearchStats* stats,
              const Tuning& tuning);

  // The GPU probe alone: host lists [q.n, nprobe].
  void probe(const QueryBatch& q, int nprobe, int32_t* lists);

  // The filter cache of recurring filters (kernels/cuda/filter_cache.h): at most max_bytes of
  // exact eligibility words (search.filter_cache_mb's default until set), 0 to turn it off.
  // sync() recomputes its words of the blocks it wrote.
  void set_filter_cache_bytes(size_t max_bytes);

  size_t device_bytes() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Whether a CUDA device is usable here (false on machines without a GPU or driver).
bool cuda_device_available();
// CUDA devices visible here (0 without a GPU or driver).
int cuda_device_count();

}  // namespace argent
