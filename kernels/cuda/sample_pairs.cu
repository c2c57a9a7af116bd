// The sample pass of an IVF batch (search_steps.h: launch_sample_pairs). The list-major scan
// (scan_kernel.cu) pays for its query reuse with a CTA-wide staging step per list chunk; an IVF
// sample reads one block in `stride` of a few lists per query, so that overhead, not the reads,
// was its cost. Here one warp takes one (query, probed list) pair and reads only the sampled
// blocks, with dp4a dot products. It draws the very sample the list-major pass draws: blocks
// whose global index is a multiple of the stride, rows inside the list, live and eligible.
#include "common/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxRegGroups = 16;  // query groups a half-warp holds in registers (d_pad <= 128)

struct SampleParams {
  GpuIndexView index;
  GpuQueriesView queries;
  const int32_t* probes;  // [n, nprobe], -1 pads
  int nprobe;
  ScanPass pass;
};

// Lane l computes half (l >> 4) of the dot product of row l & 15 of the block: the groups of
// four dims of that parity. Groups past the register window are read from memory.
__device__ __forceinline__ int32_t half_dot(const int8_t* block, const uint32_t* query_words,
                                            const uint32_t (&q)[kMaxRegGroups], int n_groups,
                                            int lane) {
  const int row = lane & 15, half = lane >> 4;
  const uint32_t* w = reinterpret_cast<const uint32_t*>(block);
  int32_t dot = 0;
#pragma unroll
  for (int i = 0; i < kMaxRegGroups; ++i) {
    const int g = 2 * i + half;
    if (g < n_groups) dot = __dp4a(int(__ldg(w + g * kBlockRows + row)), int(q[i]), dot);
  }
  for (int g = 2 * kMaxRegGroups + half; g < n_groups; g += 2)
    dot = __dp4a(int(__ldg(w + g * kBlockRows + row)), int(query_words[g]), dot);
  return dot;
}

// The sample pass's acceptance (scan_kernel.cu: accept() in sample mode): a row inside the
// list, live, and eligible under the query's plan exactly.
__device__ __forceinline__ bool sample_accepts(const SampleParams& p, int64_t row,
                                               int64_t list_end, const FilterOp* ops,
                                               int n_ops) {
  if (row >= list_end || p.index.scan.ids[row] == kEmptyId) return false;
  if (n_ops == 0) return true;
  const PlanResult b =
      eval_plan_bloom(ops, n_ops, p.index.scan.signatures + row * p.index.scan.bloom_words);
  if (!b.possible) return false;
  if (b.definite) return true;
  const FeatureStoreView& f = p.index.scan.features;
  const int64_t off = f.offset[row];
  return eval_plan_exact(ops, n_ops, f.feature_ids + off, f.values + off, f.count[row]);
}

__global__ void __launch_bounds__(kWarps * 32) sample_pairs_kernel(const __grid_constant__ SampleParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t pair = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (pair >= p.queries.n * p.nprobe) return;
  const int32_t q = int32_t(pair / p.nprobe);
  const int32_t list = p.probes[pair];
  if (list < 0) return;
  const ScanIndexView& s = p.index.scan;
  const int64_t list_begin = s.list_offsets[list], list_end = list_begin + s.list_sizes[list];
  if (list_end == list_begin) return;
  const int stride = p.pass.sample_stride;
  const int64_t first_block = list_begin / kBlockRows;
  const int64_t end_block = (list_end + kBlockRows - 1) / kBlockRows;
  int64_t block = (first_block + stride - 1) / stride * stride;
  if (block >= end_block) return;

  const int d_pad = s.d_pad, n_groups = d_pad / 4;
  const uint32_t* query_words = reinterpret_cast<const uint32_t*>(p.queries.codes + int64_t(q) * d_pad);
  uint32_t qw[kMaxRegGroups];
#pragma unroll
  for (int i = 0; i < kMaxRegGroups; ++i) {
    const int g = 2 * i + (lane >> 4);
    qw[i] = g < n_groups ? __ldg(query_words + g) : 0u;
  }
  const float q_scale = p.queries.scales[q];
  const int32_t plan = p.queries.plan_of_query ? p.queries.plan_of_query[q] : -1;
  const FilterOp* ops = plan >= 0 ? p.queries.plan_ops + p.queries.plan_begin[plan] : nullptr;
  const int n_ops = plan >= 0 ? p.queries.plan_len[plan] : 0;
  const size_t block_bytes = size_t(kBlockRows) * size_t(d_pad);

  for (; block < end_block; block += stride) {
    int32_t dot = half_dot(s.codes + block * block_bytes, query_words, qw, n_groups, lane);
    dot += __shfl_xor_sync(0xFFFFFFFFu, dot, 16);
    const int64_t row = block * kBlockRows + (lane & 15);
    const bool take = lane < 16 && sample_accepts(p, row, list_end, ops, n_ops);
    const uint32_t mask = __ballot_sync(0xFFFFFFFFu, take);
    if (mask == 0) continue;
    uint32_t base = 0;
    if (lane == 0) base = atomicAdd(p.pass.out_count + q, __popc(mask));
    base = __shfl_sync(0xFFFFFFFFu, base, 0);
    if (take) {
      const uint32_t pos = base + __popc(mask & ((1u << lane) - 1u));
      if (pos < p.pass.cap)
        p.pass.out_scores[int64_t(q) * p.pass.cap + pos] = score_of(dot, q_scale, s.scales[row]);
    }
  }
}

}  // namespace

void launch_sample_pairs(const GpuIndexView& index, const GpuQueriesView& queries,
                         const int32_t* probes, int nprobe, const ScanPass& pass,
                         cudaStream_t stream) {
  ARGENT_ASSERT(pass.out_rows == nullptr && pass.sample_stride >= 1,
                "launch_sample_pairs draws samples only");
  const int64_t pairs = queries.n * int64_t(nprobe);
  if (pairs == 0) return;
  SampleParams p{index, queries, probes, nprobe, pass};
  const int64_t grid = (pairs + kWarps - 1) / kWarps;
  sample_pairs_kernel<<<unsigned(grid), kWarps * 32, 0, stream>>>(p);
  ARGENT_CUDA_CHECK_LAUNCH("sample_pairs_kernel");
}

}  // namespace cuda
}  // namespace argent
