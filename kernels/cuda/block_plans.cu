// The row-eligibility pre-pass (search_steps.h: launch_block_plans). When a batch has few
// distinct filter plans, each row's Bloom plan is evaluated once here, for every plan, over the
// chunks the scan will read; the scan then reads one word per (block, plan) instead of
// evaluating signatures inside its tensor-core loop, where the dependent loads and the plan
// evaluation stalled the mma pipeline.
#include <algorithm>

#include "common/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kThreads = kChunkBlocks * kBlockRows;  // one thread per row of a chunk

// One chunk: one thread per row.
__device__ __forceinline__ void plans_of_chunk(const GpuIndexView& index,
                                               const GpuQueriesView& queries, int32_t chunk,
                                               int n_plans, uint32_t* out) {
  const int b = threadIdx.x / kBlockRows;
  const bool live = b < index.chunk_blocks[chunk];  // the chunk's last blocks may be absent
  const int64_t block = index.chunk_first_block[chunk] + b;
  const int64_t row = block * kBlockRows + threadIdx.x % kBlockRows;
  const uint64_t* sig = index.scan.signatures + row * index.scan.bloom_words;
  const int64_t n_blocks = index.scan.n_rows / kBlockRows;
  const int shift = threadIdx.x & 16;  // this half-warp's bits in the warp's ballot
  for (int plan = 0; plan < n_plans; ++plan) {
    PlanResult r{false, false};
    if (live)
      r = eval_plan_bloom(queries.plan_ops + queries.plan_begin[plan], queries.plan_len[plan],
                          sig);
    const uint32_t possible = (__ballot_sync(0xFFFFFFFFu, r.possible) >> shift) & 0xFFFFu;
    const uint32_t definite = (__ballot_sync(0xFFFFFFFFu, r.definite) >> shift) & 0xFFFFu;
    if (live && threadIdx.x % kBlockRows == 0)
      out[int64_t(plan) * n_blocks + block] = possible | definite << 16;
  }
}

// A CTA per task (chunk), grid-strided; ballots over each half-warp (one
// block of 16 rows) build the block's word: possible bits in the low half, definite bits in the
// high half.
__global__ void __launch_bounds__(kThreads) block_plans_kernel(
    const __grid_constant__ GpuIndexView index, const __grid_constant__ GpuQueriesView queries,
    const int32_t* tasks, const int32_t* n_tasks, int n_plans, uint32_t* out) {
  for (int task = blockIdx.x; task < *n_tasks; task += gridDim.x)
    plans_of_chunk(index, queries, tasks[task], n_plans, out);
}

}  // namespace

void launch_block_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                        const int32_t* tasks, const int32_t* n_tasks, int n_plans, uint32_t* out,
                        cudaStream_t stream) {
  if (index.n_chunks == 0 || n_plans == 0) return;
  // The task count is known only on the device: a grid that fills the GPU strides over it
  // (IVF batches have few tasks, so a CTA per possible chunk would mostly launch idle CTAs).
  int device = 0, sms = 0;
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t grid = std::min<int64_t>(index.n_chunks, int64_t(sms) * 4);
  block_plans_kernel<<<unsigned(grid), kThreads, 0, stream>>>(index, queries, tasks, n_tasks,
                                                              n_plans, out);
  ARGENT_CUDA_CHECK_LAUNCH("block_plans_kernel");
}

}  // namespace cuda
}  // namespace argent
