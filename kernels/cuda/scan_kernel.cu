// The fused scan pass (search_steps.h: launch_scan). A persistent grid walks the chunks of the
// probed lists; a CTA stages the queries of a chunk's list in shared memory, already in mma
// B-fragment order, and each warp takes 16-row blocks: the block's codes are loaded once into
// A fragments and multiplied against every staged query, 8 at a time (mma m16n8k32 s8). A cheap
// integer test against a per-(block, query) bound on the dot product rejects almost every row;
// the few that might reach the threshold take the exact path: float score, validity, Bloom plan,
// exact feature check, append. No score leaves the registers otherwise.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "common/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr size_t kMaxSharedBytes = 200 * 1024;

struct ScanParams {
  GpuIndexView index;
  GpuQueriesView queries;
  ListQueries lists;
  const int32_t* tasks;
  const int32_t* n_tasks;
  ScanPass pass;
  int n_chunks32;     // k-chunks of 32 dims: ceil(d_pad / 32)
  int n_groups;       // d_pad / 4
  int query_cap;      // queries staged at once (multiple of 8)
};

// The smallest dot product that could still score >= T for a block whose largest item scale is
// 1 / inv_max: x = (T / query_scale) * inv_max, lowered by a margin that covers the float
// roundings of score_of (three roundings of 2^-24 each). Non-positive or NaN x gives INT_MIN
// (every row takes the exact path), which keeps negative thresholds exact too.
__device__ __forceinline__ int32_t dot_floor(float t_over_scale, float inv_max) {
  const float x = t_over_scale * inv_max;
  if (!(x > 0.f)) return INT_MIN;
  if (x >= 2.0e9f) return INT_MAX;
  return __float2int_rd(x * 0.99999f) - 1;
}

struct Staged {
  uint32_t* frag;       // [query_cap / 8][32 lanes][2 * n_chunks32] words
  float* threshold;     // [query_cap]; +inf for padding
  float* t_over_scale;  // [query_cap]
  float* scale;         // [query_cap]
  int32_t* query;       // [query_cap] batch index
};

__device__ void stage_queries(const ScanParams& p, const int32_t* list_queries, int m,
                              const Staged& s) {
  const int nc = p.n_chunks32, d_pad = p.index.scan.d_pad;
  const int m_pad = (m + 7) & ~7;
  // Word (query i, chunk c, half h, t): dims 32c + 16h + 4t .. +3 of query i.
  const int words = m_pad * nc * 8;
  for (int w = threadIdx.x; w < words; w += blockDim.x) {
    const int i = w / (nc * 8), rem = w % (nc * 8);
    const int c = rem / 8, h = (rem / 4) & 1, t = rem & 3;
    uint32_t v = 0;
    const int dim = 32 * c + 16 * h + 4 * t;
    if (i < m && dim < d_pad) {
      const int64_t q = list_queries[i];
      v = *reinterpret_cast<const uint32_t*>(p.queries.codes + q * d_pad + dim);
    }
    const int tile = i / 8, g = i % 8, lane = g * 4 + t;
    s.frag[(size_t(tile) * 32 + lane) * (2 * nc) + 2 * c + h] = v;
  }
  for (int i = threadIdx.x; i < m_pad; i += blockDim.x) {
    if (i < m) {
      const int32_t q = list_queries[i];
      const float t = p.pass.thresholds ? p.pass.thresholds[q] : -INFINITY;
      const float qs = p.queries.scales[q];
      s.threshold[i] = t;
      s.t_over_scale[i] = t > 0.f ? (qs > 0.f ? t / qs : INFINITY) : -INFINITY;
      s.scale[i] = qs;
      s.query[i] = q;
    } else {
      s.threshold[i] = INFINITY;
      s.t_over_scale[i] = INFINITY;
      s.scale[i] = 0.f;
      s.query[i] = -1;
    }
  }
}

// The exact path for one (row, query) pair that passed the integer bound.
__device__ void consider(const ScanParams& p, const Staged& s, int qi, int64_t row,
                         int64_t list_end, int32_t dot) {
  if (row >= list_end || s.query[qi] < 0) return;
  const float score = score_of(dot, s.scale[qi], p.index.scan.scales[row]);
  if (!(score >= s.threshold[qi])) return;
  if (p.index.scan.ids[row] == kEmptyId) return;
  const int32_t q = s.query[qi];
  if (p.queries.plan_of_query) {
    const int32_t plan = p.queries.plan_of_query[q];
    if (plan >= 0) {
      const FilterOp* ops = p.queries.plan_ops + p.queries.plan_begin[plan];
      const int n_ops = p.queries.plan_len[plan];
      const int words = p.index.scan.bloom_words;
      const PlanResult b = eval_plan_bloom(ops, n_ops, p.index.scan.signatures + row * words);
      if (!b.possible) return;
      if (!b.definite) {
        const FeatureStoreView& f = p.index.scan.features;
        const int64_t off = f.offset[row];
        if (!eval_plan_exact(ops, n_ops, f.feature_ids + off, f.values + off, f.count[row]))
          return;
      }
    }
  }
  const uint32_t pos = atomicAdd(p.pass.out_count + q, 1u);
  if (pos < p.pass.cap) {
    const int64_t slot = int64_t(q) * p.pass.cap + pos;
    p.pass.out_scores[slot] = score;
    if (p.pass.out_rows) p.pass.out_rows[slot] = int32_t(row);
  }
}

__device__ __forceinline__ void epilogue(const ScanParams& p, const Staged& s, int tile,
                                         int64_t block, int64_t list_end, float inv_max,
                                         const int32_t (&acc)[4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int qa = tile * 8 + 2 * t, qb = qa + 1;
  const int32_t da = dot_floor(s.t_over_scale[qa], inv_max);
  const int32_t db = dot_floor(s.t_over_scale[qb], inv_max);
  if (acc[0] >= da || acc[1] >= db || acc[2] >= da || acc[3] >= db) {
    const int64_t r0 = block * kBlockRows + g, r1 = r0 + 8;
    if (acc[0] >= da) consider(p, s, qa, r0, list_end, acc[0]);
    if (acc[1] >= db) consider(p, s, qb, r0, list_end, acc[1]);
    if (acc[2] >= da) consider(p, s, qa, r1, list_end, acc[2]);
    if (acc[3] >= db) consider(p, s, qb, r1, list_end, acc[3]);
  }
}

// KC > 0: the dimension fits KC chunks of 32 (d_pad <= 128) and a block's A fragments stay in
// registers across all staged queries. KC == 0: any dimension; fragments are reloaded (from L1)
// for each tile of 8 queries.
template <int KC>
__device__ void scan_block(const ScanParams& p, const Staged& s, int m_pad, int64_t block,
                           int64_t list_end) {
  const int lane = threadIdx.x & 31;
  const int8_t* codes = p.index.scan.codes + block * int64_t(kBlockRows) * p.index.scan.d_pad;
  const float inv_max = p.index.block_inv_max_scale[block];
  const int tiles = m_pad / 8;
  if constexpr (KC > 0) {
    uint32_t a[KC][4];
#pragma unroll
    for (int c = 0; c < KC; ++c) load_a_fragment(codes, c, p.n_groups, lane, a[c]);
    for (int tile = 0; tile < tiles; ++tile) {
      const uint32_t* b = s.frag + (size_t(tile) * 32 + lane) * (2 * KC);
      // 16- or 8-byte shared loads: each lane's words for the tile are contiguous.
      uint32_t bf[2 * KC];
      if constexpr (KC % 2 == 0) {
#pragma unroll
        for (int i = 0; i < KC / 2; ++i) {
          const uint4 v = reinterpret_cast<const uint4*>(b)[i];
          bf[4 * i] = v.x, bf[4 * i + 1] = v.y, bf[4 * i + 2] = v.z, bf[4 * i + 3] = v.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < KC; ++i) {
          const uint2 v = reinterpret_cast<const uint2*>(b)[i];
          bf[2 * i] = v.x, bf[2 * i + 1] = v.y;
        }
      }
      int32_t acc[4] = {0, 0, 0, 0};
#pragma unroll
      for (int c = 0; c < KC; ++c) mma_s8_16x8x32(acc, a[c], bf[2 * c], bf[2 * c + 1]);
      epilogue(p, s, tile, block, list_end, inv_max, acc);
    }
  } else {
    const int nc = p.n_chunks32;
    for (int tile = 0; tile < tiles; ++tile) {
      const uint32_t* b = s.frag + (size_t(tile) * 32 + lane) * (2 * nc);
      int32_t acc[4] = {0, 0, 0, 0};
      for (int c = 0; c < nc; ++c) {
        uint32_t a[4];
        load_a_fragment(codes, c, p.n_groups, lane, a);
        mma_s8_16x8x32(acc, a, b[2 * c], b[2 * c + 1]);
      }
      epilogue(p, s, tile, block, list_end, inv_max, acc);
    }
  }
}

template <int KC>
__global__ void __launch_bounds__(kThreads, 2) scan_kernel(ScanParams p) {
  extern __shared__ uint4 shared[];
  const int cap = p.query_cap, nc = p.n_chunks32;
  Staged s;
  s.frag = reinterpret_cast<uint32_t*>(shared);
  s.threshold = reinterpret_cast<float*>(s.frag + size_t(cap) * nc * 8);
  s.t_over_scale = s.threshold + cap;
  s.scale = s.t_over_scale + cap;
  s.query = reinterpret_cast<int32_t*>(s.scale + cap);

  const int64_t n_tasks = *p.n_tasks;
  const int64_t begin = n_tasks * blockIdx.x / gridDim.x;
  const int64_t end = n_tasks * (blockIdx.x + 1) / gridDim.x;
  const int warp = threadIdx.x >> 5;
  int staged_list = -1, staged_base = -1;
  for (int64_t task = begin; task < end; ++task) {
    const int32_t chunk = p.tasks[task];
    const int32_t list = p.index.chunk_list[chunk];
    const int64_t first = p.index.chunk_first_block[chunk];
    const int nblk = p.index.chunk_blocks[chunk];
    const int64_t list_end = p.index.scan.list_offsets[list] + p.index.scan.list_sizes[list];
    const int32_t qcount = p.lists.count[list];
    const int32_t* qlist = p.lists.queries + p.lists.start[list];
    for (int base = 0; base < qcount; base += cap) {
      const int m = min(cap, qcount - base);
      if (list != staged_list || base != staged_base) {
        __syncthreads();
        stage_queries(p, qlist + base, m, s);
        __syncthreads();
        staged_list = list;
        staged_base = base;
      }
      const int m_pad = (m + 7) & ~7;
      for (int i = warp; i < nblk; i += kWarps) {
        const int64_t block = first + i;
        if (p.pass.sample_stride > 1 && block % p.pass.sample_stride != 0) continue;
        scan_block<KC>(p, s, m_pad, block, list_end);
      }
    }
  }
}

template <int KC>
void launch_kernel(const ScanParams& p, size_t smem, cudaStream_t stream) {
  ARGENT_CUDA_CHECK(cudaFuncSetAttribute(scan_kernel<KC>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(kMaxSharedBytes)));
  int per_sm = 0, device = 0, sms = 0;
  ARGENT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, scan_kernel<KC>,
                                                                  kThreads, smem));
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int grid = std::max(1, per_sm) * sms * 4;  // more tasks than CTAs balances uneven chunks
  scan_kernel<KC><<<grid, kThreads, smem, stream>>>(p);
  ARGENT_CUDA_CHECK_LAUNCH("scan_kernel");
}

}  // namespace

void launch_scan(const GpuIndexView& index, const GpuQueriesView& queries,
                 const ListQueries& lists, const int32_t* tasks, const int32_t* n_tasks,
                 int max_queries_per_list, const ScanPass& pass, cudaStream_t stream) {
  ScanParams p;
  p.index = index;
  p.queries = queries;
  p.lists = lists;
  p.tasks = tasks;
  p.n_tasks = n_tasks;
  p.pass = pass;
  const int d_pad = index.scan.d_pad;
  p.n_chunks32 = (d_pad + 31) / 32;
  p.n_groups = d_pad / 4;
  const size_t per_query = size_t(p.n_chunks32) * 32 + 16;
  const int fit = int(kMaxSharedBytes / per_query) / 8 * 8;
  ARGENT_ASSERT(fit >= 8, "dimension ", d_pad, " leaves no room for 8 staged queries");
  const int wanted = (std::max(1, max_queries_per_list) + 7) / 8 * 8;
  p.query_cap = std::min(fit, wanted);
  const size_t smem = per_query * size_t(p.query_cap);
  switch (p.n_chunks32) {
    case 1: launch_kernel<1>(p, smem, stream); break;
    case 2: launch_kernel<2>(p, smem, stream); break;
    case 3: launch_kernel<3>(p, smem, stream); break;
    case 4: launch_kernel<4>(p, smem, stream); break;
    default: launch_kernel<0>(p, smem, stream); break;
  }
}

}  // namespace cuda
}  // namespace argent
