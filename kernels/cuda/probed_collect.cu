// The collect of a one-query IVF batch (search_steps.h: launch_probed_collect). The fused scan
// (scan_kernel.cu) is built for many queries per list: a CTA stages a list's queries as mma
// fragments and multiplies each block against eight of them at a time, so one query leaves
// seven eighths of every mma idle and pays the staging for each chunk. Here a warp takes a
// 16-row block, scores its rows with dp4a against the query held in registers and appends
// those at or above the threshold. Under a filter it reads the block's word first and loads
// only the eligible rows' codes: row-major, a row is 128 bytes of its own (four sectors), so a
// 10 % filter reads about a tenth of the codes an unfiltered collect reads. (H100, 80M x 128,
// K = 1000, nprobe 32, ~288k rows, mean of 256 queries, the step: unfiltered 0.032 -> 0.020 ms,
// a 10 % filter 0.032 -> 0.011, 1 % 0.031 -> 0.010, NOT 0.042 -> 0.014; docs/benchmarks.md.)
#include <algorithm>
#include <cstdint>

#include "common/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/resident_grid.h"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kCollectThreads = 256;

// Bit r set: row r of `block` is to be scored. Under a filter (plan_words: its plan's words),
// the block's exact word (possible bits: eligible rows). Without one, the rows before the end
// of the chunk's list (a list's last block is padded), and, with check_live, only live rows.
__device__ __forceinline__ uint32_t rows_to_score(const GpuIndexView& index, const ProbedCollect& c,
                                                  const uint32_t* plan_words, int32_t chunk,
                                                  int64_t block) {
  if (plan_words) return plan_words[block] & 0xFFFFu;
  const int32_t list = index.chunk_list[chunk];
  const int64_t left =
      index.scan.list_offsets[list] + index.scan.list_sizes[list] - block * kBlockRows;
  uint32_t rows = left >= kBlockRows ? 0xFFFFu : (1u << left) - 1u;
  if (c.check_live) {
    const int r = threadIdx.x & 15;
    const bool live = index.scan.ids[block * kBlockRows + r] != kEmptyId;
    rows &= (__ballot_sync(0xFFFFFFFFu, live) & 0xFFFFu);
  }
  return rows;
}

// The warp's hits of one block, scores in lane r's `score` for row r (lanes 0..15): appended
// with one atomic for the warp.
__device__ __forceinline__ void append_block(const ProbedCollect& c, int64_t block, bool hit,
                                             float score) {
  const uint32_t slot = warp_reserve(c.out_count, hit);
  if (hit && slot < c.cap) {
    c.out_scores[slot] = score;
    c.out_rows[slot] = int32_t(block * kBlockRows + (threadIdx.x & 15));
  }
}

// The block's rows to score (rows_to_score, not 0) in row-major codes (d_pad == kRowsLayoutDim):
// a row is eight 16-byte words; lane l holds word l % 8 of the query and scores word l % 8 of
// rows l / 8, 4 + l / 8, ... , so each load of the warp reads four whole rows. Rows not to be
// scored are not loaded.
__device__ __forceinline__ void collect_block_rows(const GpuIndexView& index,
                                                   const ProbedCollect& c, uint32_t rows,
                                                   const int4 query, float query_scale,
                                                   float threshold, int64_t block) {
  const int lane = threadIdx.x & 31, part = lane & 7, sub = lane >> 3;
  const int4* codes = reinterpret_cast<const int4*>(index.scan.codes) + block * kBlockRows * 8;
  constexpr int kLoads = kBlockRows / 4;
  int4 v[kLoads];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int r = 4 * i + sub;
    v[i] = (rows >> r) & 1u ? __ldg(codes + r * 8 + part) : make_int4(0, 0, 0, 0);
  }
  // Lane r < 16 takes row r's scale beside the codes.
  const float item_scale = lane < kBlockRows && ((rows >> lane) & 1u)
                               ? __ldg(index.scan.scales + block * kBlockRows + lane)
                               : 0.f;
  int32_t dot[kLoads];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    int32_t acc = __dp4a(v[i].x, query.x, 0);
    acc = __dp4a(v[i].y, query.y, acc);
    acc = __dp4a(v[i].z, query.z, acc);
    acc = __dp4a(v[i].w, query.w, acc);
    acc += __shfl_xor_sync(0xFFFFFFFFu, acc, 1);
    acc += __shfl_xor_sync(0xFFFFFFFFu, acc, 2);
    acc += __shfl_xor_sync(0xFFFFFFFFu, acc, 4);
    dot[i] = acc;  // row 4i + sub's product, in all eight lanes of the group
  }
  // Lane r < 16 gathers row r's product: load r / 4, group r % 4 (lane 8 * (r % 4)).
  int32_t mine = 0;
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int32_t d = __shfl_sync(0xFFFFFFFFu, dot[i], 8 * (lane & 3));
    if ((lane >> 2) == i) mine = d;
  }
  const bool scored = lane < kBlockRows && ((rows >> lane) & 1u);
  const float score = score_of(mine, query_scale, item_scale);
  append_block(c, block, scored && score >= threshold, score);
}

// The same in blocked codes (kernels/layout.h): group g of the block's 16 rows is 64 bytes, one
// 4-byte word per row; lane l reads word l of each pair of groups (row l % 16, group 2j + l / 16),
// so each load of the warp reads two whole lines, and the half-warps' sums meet by one shuffle.
__device__ __forceinline__ void collect_block_groups(const GpuIndexView& index,
                                                     const ProbedCollect& c, uint32_t rows,
                                                     const int32_t* query_words, float query_scale,
                                                     float threshold, int64_t block) {
  const int lane = threadIdx.x & 31, r = lane & 15, half = lane >> 4;
  const int groups = index.scan.d_pad / kGroupDims;
  const int32_t* words = reinterpret_cast<const int32_t*>(
      index.scan.codes + block * int64_t(kBlockRows) * index.scan.d_pad);
  int32_t acc = 0;
#pragma unroll 4
  for (int g = half; g < groups; g += 2)
    acc = __dp4a(__ldg(words + g * kBlockRows + r), query_words[g], acc);
  acc += __shfl_xor_sync(0xFFFFFFFFu, acc, 16);
  const bool scored = lane < kBlockRows && ((rows >> r) & 1u);
  const float item_scale = scored ? __ldg(index.scan.scales + block * kBlockRows + r) : 0.f;
  const float score = score_of(acc, query_scale, item_scale);
  append_block(c, block, scored && score >= threshold, score);
}

// A warp per block of the tasks' chunks (kChunkBlocks blocks a task; those past a chunk's end
// are skipped), striding by the grid's warps.
template <bool kRows>
__global__ void __launch_bounds__(kCollectThreads)
    probed_collect_kernel(const __grid_constant__ GpuIndexView index,
                          const __grid_constant__ GpuQueriesView queries, const int32_t* tasks,
                          const int32_t* n_tasks, const ProbedCollect c) {
  const int32_t plan = queries.plan_of_query ? queries.plan_of_query[0] : -1;
  const uint32_t* plan_words =
      plan >= 0 ? c.words + int64_t(plan) * (index.scan.n_rows / kBlockRows) : nullptr;
  __shared__ int32_t query_words[kRows ? 1 : kMaxDim / kGroupDims];
  int4 query = make_int4(0, 0, 0, 0);
  if constexpr (kRows) {
    query = __ldg(reinterpret_cast<const int4*>(queries.codes) + (threadIdx.x & 7));
  } else {
    for (int i = threadIdx.x; i < index.scan.d_pad / kGroupDims; i += kCollectThreads)
      query_words[i] = __ldg(reinterpret_cast<const int32_t*>(queries.codes) + i);
    __syncthreads();
  }
  const float query_scale = __ldg(queries.scales);
  const float threshold = *c.threshold;
  const int64_t items = int64_t(*n_tasks) * kChunkBlocks;
  const int64_t warps = int64_t(gridDim.x) * (kCollectThreads / 32);
  for (int64_t item = int64_t(blockIdx.x) * (kCollectThreads / 32) + threadIdx.x / 32; item < items;
       item += warps) {  // warp-uniform
    const int32_t chunk = tasks[item / kChunkBlocks];
    const int b = int(item % kChunkBlocks);
    if (b >= index.chunk_blocks[chunk]) continue;
    const int64_t block = int64_t(index.chunk_first_block[chunk]) + b;
    const uint32_t rows = rows_to_score(index, c, plan_words, chunk, block);
    if (rows == 0) continue;  // warp-uniform
    if constexpr (kRows)
      collect_block_rows(index, c, rows, query, query_scale, threshold, block);
    else
      collect_block_groups(index, c, rows, query_words, query_scale, threshold, block);
  }
}

}  // namespace

void launch_probed_collect(const GpuIndexView& index, const GpuQueriesView& queries,
                           const int32_t* tasks, const int32_t* n_tasks, int64_t most_tasks,
                           const ProbedCollect& c, cudaStream_t stream) {
  ARGENT_CHECK(queries.n == 1, "launch_probed_collect: one query, not ", queries.n);
  ARGENT_CHECK(c.threshold && c.out_scores && c.out_rows && c.out_count && c.cap >= 1,
               "launch_probed_collect: the threshold and the candidate buffers are required");
  ARGENT_CHECK(c.words || !queries.plan_of_query,
               "launch_probed_collect: a filtered query needs its rows' exact words");
  ARGENT_CHECK(!index.rows_layout || index.scan.d_pad == kRowsLayoutDim,
               "launch_probed_collect: row-major codes need d_pad ", kRowsLayoutDim);
  if (most_tasks <= 0) return;
  auto launch = [&](auto kernel) {
    const int resident = resident_ctas(reinterpret_cast<const void*>(kernel), kCollectThreads, 0);
    const int64_t most_blocks = most_tasks * kChunkBlocks;
    const int grid = int(std::min<int64_t>(
        resident, (most_blocks + kCollectThreads / 32 - 1) / (kCollectThreads / 32)));
    kernel<<<grid, kCollectThreads, 0, stream>>>(index, queries, tasks, n_tasks, c);
  };
  if (index.rows_layout)
    launch(probed_collect_kernel<true>);
  else
    launch(probed_collect_kernel<false>);
  ARGENT_CUDA_CHECK_LAUNCH("probed_collect_kernel");
}

}  // namespace cuda
}  // namespace argent
