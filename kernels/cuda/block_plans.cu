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
// Chunks a CTA works on at once. One at a time, each chunk was a chain of dependent loads (its
// task, its blocks, the rows' signatures) and the pass ran far below the memory bandwidth.
// Eight measured slower than four (H200, exact B = 64: 0.81 against 0.52 ms).
#ifndef ARGENT_PLANS_IN_FLIGHT
#define ARGENT_PLANS_IN_FLIGHT 4
#endif
constexpr int kChunksInFlight = ARGENT_PLANS_IN_FLIGHT;

// A grid of CTAs strides over the tasks (chunks), kChunksInFlight at a time: one thread per row
// of each, whose signatures (of one or two words) are read first for all of them; then ballots
// over each half-warp (one block of 16 rows) build each block's word: possible bits in the low
// half, definite bits in the high half.
__global__ void __launch_bounds__(kThreads) block_plans_kernel(
    const __grid_constant__ GpuIndexView index, const __grid_constant__ GpuQueriesView queries,
    const int32_t* tasks, const int32_t* n_tasks, int n_plans, uint32_t* out,
    unsigned long long* row_counts) {
  // The CTA's rows possibly eligible under each plan, then its rows evaluated.
  __shared__ unsigned int cta_counts[kMaxBlockPlans + 1];
  if (threadIdx.x <= kMaxBlockPlans) cta_counts[threadIdx.x] = 0;
  __syncthreads();
  const int n = *n_tasks;
  const int b = threadIdx.x / kBlockRows;
  const int64_t n_blocks = index.scan.n_rows / kBlockRows;
  const int words = index.scan.bloom_words;
  const int shift = threadIdx.x & 16;  // this half-warp's bits in the warp's ballot
  for (int task0 = blockIdx.x * kChunksInFlight; task0 < n;
       task0 += gridDim.x * kChunksInFlight) {
    int64_t block[kChunksInFlight];
    bool live[kChunksInFlight];
    const uint64_t* sig[kChunksInFlight];
    uint64_t w0[kChunksInFlight], w1[kChunksInFlight];  // signatures of <= 2 words
#pragma unroll
    for (int u = 0; u < kChunksInFlight; ++u) {
      const int task = task0 + u;
      const int32_t chunk = task < n ? tasks[task] : 0;
      // The chunk's last blocks may be absent.
      live[u] = task < n && b < index.chunk_blocks[chunk];
      block[u] = task < n ? index.chunk_first_block[chunk] + b : 0;
      sig[u] = index.scan.signatures + (block[u] * kBlockRows + threadIdx.x % kBlockRows) * words;
      w0[u] = live[u] && words <= 2 ? __ldg(sig[u]) : 0;
      w1[u] = live[u] && words == 2 ? __ldg(sig[u] + 1) : 0;
    }
    for (int plan = 0; plan < n_plans; ++plan) {
      const FilterOp* ops = queries.plan_ops + queries.plan_begin[plan];
      const int n_ops = queries.plan_len[plan];
      PlanResult r[kChunksInFlight];
#pragma unroll
      for (int u = 0; u < kChunksInFlight; ++u) {
        const uint64_t a = w0[u], c = w1[u];
        if (!live[u])
          r[u] = PlanResult{false, false};
        else if (words <= 2)
          r[u] = eval_plan_bloom_words(ops, n_ops, [a, c](int32_t w) { return w == 0 ? a : c; });
        else
          r[u] = eval_plan_bloom(ops, n_ops, sig[u]);
      }
#pragma unroll
      for (int u = 0; u < kChunksInFlight; ++u) {
        const uint32_t possible = (__ballot_sync(0xFFFFFFFFu, r[u].possible) >> shift) & 0xFFFFu;
        const uint32_t definite = (__ballot_sync(0xFFFFFFFFu, r[u].definite) >> shift) & 0xFFFFu;
        if (live[u] && threadIdx.x % kBlockRows == 0) {
          out[int64_t(plan) * n_blocks + block[u]] = possible | definite << 16;
          atomicAdd(&cta_counts[plan], __popc(possible));
          if (plan == 0) atomicAdd(&cta_counts[kMaxBlockPlans], kBlockRows);
        }
      }
    }
  }
  // One global atomic per CTA and counter (per-block atomics on one address would serialize).
  __syncthreads();
  if (threadIdx.x < n_plans) atomicAdd(row_counts + threadIdx.x, cta_counts[threadIdx.x]);
  if (threadIdx.x == 0) atomicAdd(row_counts + n_plans, cta_counts[kMaxBlockPlans]);
}

}  // namespace

void launch_block_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                        const int32_t* tasks, const int32_t* n_tasks, int n_plans, uint32_t* out,
                        unsigned long long* row_counts, cudaStream_t stream) {
  ARGENT_CUDA_CHECK(
      cudaMemsetAsync(row_counts, 0, sizeof(unsigned long long) * (n_plans + 1), stream));
  if (index.n_chunks == 0 || n_plans == 0) return;
  // The task count is known only on the device: a grid that fills the GPU strides over it
  // (IVF batches have few tasks, so a CTA per possible chunk would mostly launch idle CTAs).
  int device = 0, sms = 0;
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t grid =
      std::min<int64_t>((index.n_chunks + kChunksInFlight - 1) / kChunksInFlight, int64_t(sms) * 4);
  block_plans_kernel<<<unsigned(grid), kThreads, 0, stream>>>(index, queries, tasks, n_tasks,
                                                              n_plans, out, row_counts);
  ARGENT_CUDA_CHECK_LAUNCH("block_plans_kernel");
}

}  // namespace cuda
}  // namespace argent
