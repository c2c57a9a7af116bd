// The IVF probe on the GPU (centroid scores with the scan's int8 arithmetic, best nprobe usable
// lists per query) and the inversion of (query, list) pairs into list-major work.
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_select.cuh>
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <cstdint>

#include "common/cuda_check.h"
#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

// Whether a query under plan `ops` (null: none) may find an eligible row in list l at all.
__device__ __forceinline__ bool list_usable_under(const GpuIndexView& index, int64_t l,
                                                  const FilterOp* ops, int n_ops) {
  if (index.scan.list_sizes[l] <= 0) return false;
  return !ops ||
         eval_plan_summary(ops, n_ops, index.scan.list_summaries + l * index.scan.bloom_words);
}

// Whether query q may find an eligible row in list l at all.
__device__ __forceinline__ bool list_usable(const GpuIndexView& index, const GpuQueriesView& qv,
                                            int64_t q, int64_t l) {
  const int32_t plan = qv.plan_of_query ? qv.plan_of_query[q] : -1;
  if (plan < 0) return list_usable_under(index, l, nullptr, 0);
  return list_usable_under(index, l, qv.plan_ops + qv.plan_begin[plan], qv.plan_len[plan]);
}

// The plans of a probe whose launch carries none: in device memory.
struct PlansInMemory {};

__device__ __forceinline__ bool list_usable(const GpuIndexView& index, const GpuQueriesView& qv,
                                            int64_t q, int64_t l, const PlansInMemory&) {
  return list_usable(index, qv, q, l);
}

// One query's plan from the launch's parameters (CarriedPlans).
__device__ __forceinline__ bool list_usable(const GpuIndexView& index, const GpuQueriesView&,
                                            int64_t, int64_t l, const CarriedPlans& c) {
  if (c.plan < 0) return list_usable_under(index, l, nullptr, 0);
  return list_usable_under(index, l, reinterpret_cast<const FilterOp*>(c.bytes + c.ops_offset),
                           c.n_ops);
}

__device__ __forceinline__ void store_carried(const PlansInMemory&) {}

// The first CTA stores the carried bytes where the later steps read them.
__device__ __forceinline__ void store_carried(const CarriedPlans& c) {
  if (blockIdx.x != 0 || blockIdx.y != 0) return;
  const uint32_t words = c.n_bytes / 16;
  for (uint32_t i = threadIdx.x; i < words; i += blockDim.x)
    reinterpret_cast<uint4*>(c.device)[i] = reinterpret_cast<const uint4*>(c.bytes)[i];
  for (uint32_t i = words * 16 + threadIdx.x; i < c.n_bytes; i += blockDim.x)
    c.device[i] = c.bytes[i];
}

// Warp (centroid block, tile of 8 queries): keys[q, l] = (descending score key << 32) | l for
// usable lists, all ones otherwise; the ascending key order is the probe order. __grid_constant__:
// carried plans are read in place, not copied to each thread's local memory.
template <class Plans>
__global__ void probe_scores_kernel(const GpuIndexView index, const GpuQueriesView qv,
                                    uint64_t* keys, const __grid_constant__ Plans plans) {
  store_carried(plans);
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t block = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  const int64_t n_lists = index.scan.n_lists;
  if (block * kBlockRows >= n_lists) return;
  const int tile = blockIdx.y;
  const int d_pad = index.scan.d_pad, n_groups = d_pad / 4, nc = (d_pad + 31) / 32;
  const int8_t* codes = index.centroid_codes + block * int64_t(kBlockRows) * d_pad;
  const int64_t q = int64_t(tile) * 8 + g;  // the query this lane feeds into B
  int32_t acc[4] = {0, 0, 0, 0};
  for (int c = 0; c < nc; ++c) {
    uint32_t a[4];
    load_a_fragment(codes, c, n_groups, lane, a);
    uint32_t b0 = 0, b1 = 0;
    const int d0 = 32 * c + 4 * t, d1 = d0 + 16;
    if (q < qv.n) {
      const int8_t* qc = qv.codes + q * d_pad;
      if (d0 < d_pad) b0 = *reinterpret_cast<const uint32_t*>(qc + d0);
      if (d1 < d_pad) b1 = *reinterpret_cast<const uint32_t*>(qc + d1);
    }
    mma_s8_16x8x32(acc, a, b0, b1);
  }
  for (int e = 0; e < 4; ++e) {
    const int64_t l = block * kBlockRows + g + (e >= 2 ? 8 : 0);
    const int64_t qq = int64_t(tile) * 8 + 2 * t + (e & 1);
    if (l >= n_lists || qq >= qv.n) continue;
    uint64_t key = ~uint64_t(0);
    if (list_usable(index, qv, qq, l, plans)) {
      const float s = score_of(acc[e], qv.scales[qq], index.centroid_scales[l]);
      key = (uint64_t(descending_key(s)) << 32) | uint64_t(l);
    }
    keys[qq * n_lists + l] = key;
  }
}

constexpr int kMaxProbe = 1024;

// One CTA of kProbeSelectThreads per query: with 256, the radix select's passes over ~9k
// centroid keys at 80M took most of the probe (H100, IVF B = 1: the probe step 0.044-0.047 ->
// 0.030-0.035 ms with 1024).
constexpr int kProbeSelectThreads = 1024;
__global__ void __launch_bounds__(kProbeSelectThreads) probe_select_kernel(
    const uint64_t* keys, int64_t n_lists, int nprobe, int32_t* lists, uint32_t* clear,
    int clear_words) {
  if (blockIdx.x == 0)
    for (int i = threadIdx.x; i < clear_words; i += blockDim.x) clear[i] = 0;
  __shared__ SelectShared sh;
  __shared__ uint32_t usable;
  __shared__ uint64_t picked[kMaxProbe];
  __shared__ uint32_t n_picked;
  const int64_t q = blockIdx.x;
  const uint64_t* k = keys + q * n_lists;
  if (threadIdx.x == 0) usable = 0, n_picked = 0;
  __syncthreads();
  uint32_t mine = 0;
  for (int64_t l = threadIdx.x; l < n_lists; l += blockDim.x) mine += k[l] != ~uint64_t(0);
  atomicAdd(&usable, mine);
  __syncthreads();
  const int64_t r = min(int64_t(nprobe), int64_t(usable));
  if (r > 0) {
    const uint64_t kth = block_select<uint64_t>([&](int64_t i) { return k[i]; }, n_lists, r, sh);
    for (int64_t l = threadIdx.x; l < n_lists; l += blockDim.x)
      if (k[l] <= kth) picked[atomicAdd(&n_picked, 1u)] = k[l];  // keys are unique: r of them
  }
  __syncthreads();
  for (int i = threadIdx.x; i < nprobe; i += blockDim.x) {
    if (i >= r) lists[q * nprobe + i] = -1;
  }
  for (int i = threadIdx.x; i < r; i += blockDim.x) {
    const uint64_t key = picked[i];
    int rank = 0;
    for (int j = 0; j < r; ++j) rank += picked[j] < key;
    lists[q * nprobe + rank] = int32_t(key & 0xFFFFFFFFu);
  }
}

// (q, s): with probes, the list in slot s of query q; without, list s.
struct PairList {
  const int32_t* probes;
  int width;
  __device__ int64_t list(int64_t q, int64_t s) const {
    return probes ? probes[q * width + s] : s;
  }
};

__global__ void count_pairs_kernel(const GpuIndexView index, const GpuQueriesView qv,
                                   PairList pairs, int32_t* list_count) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= qv.n * pairs.width) return;
  const int64_t q = idx / pairs.width, l = pairs.list(q, idx % pairs.width);
  if (l < 0 || !list_usable(index, qv, q, l)) return;
  atomicAdd(list_count + l, 1);
}

// Exact search: a list that every query scans points at the shared identity list
// list_queries[0 .. n) (so the scan stages the queries once); the others get their own range.
__global__ void shared_lists_kernel(const int32_t* list_count, int64_t n_lists, int64_t n,
                                    int32_t* own_count, int32_t* list_queries) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx < n_lists) own_count[idx] = list_count[idx] == n ? 0 : list_count[idx];
  if (idx < n) list_queries[idx] = int32_t(idx);
}

__global__ void place_lists_kernel(const int32_t* list_count, const int32_t* own_count,
                                   int64_t n_lists, int64_t n, int32_t* list_start) {
  const int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (l >= n_lists) return;
  list_start[l] = list_count[l] == n ? 0 : list_start[l] + int32_t(n);
}

// Exact search without filters: every non-empty list is scanned by every query, all of them
// through the shared identity list list_queries[0 .. n): one kernel, where counting, placing
// and scattering the n x n_lists pairs took seven launches (memsets and a scan included):
// H100, exact B = 16 4.43 -> 4.36 ms, B = 256 11.97 -> 11.90 (invert 0.05-0.1 -> 0.04 ms).
// The tasks are every chunk, in order: GpuIndexTables makes chunks only for lists with rows.
__global__ void every_list_kernel(const GpuIndexView index, int64_t n, int32_t* list_count,
                                  int32_t* list_start, int32_t* list_queries, int32_t* tasks,
                                  int32_t* n_tasks) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx < index.scan.n_lists) {
    list_count[idx] = index.scan.list_sizes[idx] > 0 ? int32_t(n) : 0;
    list_start[idx] = 0;
  }
  if (idx < n) list_queries[idx] = int32_t(idx);
  if (idx < index.n_chunks) tasks[idx] = int32_t(idx);
  if (idx == 0) *n_tasks = int32_t(index.n_chunks);
}

__global__ void scatter_pairs_kernel(const GpuIndexView index, const GpuQueriesView qv,
                                     PairList pairs, const int32_t* list_count,
                                     const int32_t* list_start, int32_t* list_fill,
                                     int32_t* list_queries) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= qv.n * pairs.width) return;
  const int64_t q = idx / pairs.width, l = pairs.list(q, idx % pairs.width);
  if (l < 0 || !list_usable(index, qv, q, l)) return;
  if (!pairs.probes && list_count[l] == qv.n) return;  // the shared identity list
  list_queries[list_start[l] + atomicAdd(list_fill + l, 1)] = int32_t(q);
}

// One block per query row; a repeat is a slot whose list occurs in an earlier slot of the row.
__global__ void check_probes_kernel(const int32_t* probes, int nprobe, int64_t n_lists,
                                    int32_t* out, int32_t* n_bad) {
  const int32_t* row = probes + int64_t(blockIdx.x) * nprobe;
  int bad = 0;
  for (int s = threadIdx.x; s < nprobe; s += blockDim.x) {
    const int32_t l = row[s];
    bool ok = l >= -1 && l < n_lists;
    for (int t = 0; ok && l >= 0 && t < s; ++t) ok = row[t] != l;
    out[int64_t(blockIdx.x) * nprobe + s] = ok ? l : -1;
    bad += !ok;
  }
  if (bad) atomicAdd(n_bad, bad);
}

// A one-query IVF batch: its lists and their chunks straight from its probes, in one CTA,
// where counting, placing and scattering the pairs and selecting the chunks took some seven
// launches (memsets and cub's included). Tasks come in probe order, each list's chunks in
// order; the scan needs no order.
constexpr int kOneQueryThreads = 1024;
static_assert(kMaxProbe <= kOneQueryThreads, "one probe slot per thread");
__global__ void __launch_bounds__(kOneQueryThreads) one_query_invert_kernel(
    const GpuIndexView index, const GpuQueriesView qv, const int32_t* probes, int nprobe,
    int32_t* list_count, int32_t* list_start, int32_t* list_queries, int32_t* tasks,
    int32_t* n_tasks) {
  __shared__ int32_t slot_end[kMaxProbe];    // chunks of slots 0 .. s
  __shared__ int32_t slot_first[kMaxProbe];  // the slot's list's first chunk
  const int64_t n_lists = index.scan.n_lists;
  for (int64_t l = threadIdx.x; l < n_lists; l += blockDim.x) list_count[l] = 0;
  __syncthreads();  // the zeros land before a probed list's count
  for (int s = threadIdx.x; s < nprobe; s += blockDim.x) {
    const int32_t l = probes[s];
    const bool usable = l >= 0 && list_usable(index, qv, 0, l);
    slot_end[s] = usable ? index.list_first_chunk[l + 1] - index.list_first_chunk[l] : 0;
    slot_first[s] = usable ? index.list_first_chunk[l] : 0;
    // A place of its own for each (query, list) pair, as the general path gives: per-pair
    // words are found by it (launch_pair_plans, for a re-run query of a batch of many plans).
    if (usable) list_count[l] = 1, list_start[l] = s, list_queries[s] = 0;
  }
  __syncthreads();
  // The slots' chunk counts to running ends, a slot per thread.
  using SlotScan = cub::BlockScan<int32_t, kOneQueryThreads>;
  __shared__ typename SlotScan::TempStorage scan_storage;
  int32_t end = threadIdx.x < nprobe ? slot_end[threadIdx.x] : 0;
  SlotScan(scan_storage).InclusiveSum(end, end);
  if (threadIdx.x < nprobe) slot_end[threadIdx.x] = end;
  __syncthreads();
  const int32_t total = slot_end[nprobe - 1];
  if (threadIdx.x == 0) *n_tasks = total;
  for (int32_t t = threadIdx.x; t < total; t += blockDim.x) {
    int lo = 0, hi = nprobe - 1;  // the first slot whose end is past t
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (slot_end[mid] > t)
        hi = mid;
      else
        lo = mid + 1;
    }
    tasks[t] = slot_first[lo] + (t - (lo > 0 ? slot_end[lo - 1] : 0));
  }
}

struct ChunkIsScanned {
  const int32_t* chunk_list;
  const int32_t* list_count;
  __device__ bool operator()(int32_t chunk) const { return list_count[chunk_list[chunk]] > 0; }
};

// The chunks of the lists some query scans, in order: the scan pass's tasks.
void select_tasks(const GpuIndexView& index, const InvertBuffers& b, cudaStream_t stream) {
  size_t bytes = b.cub_temp_bytes;
  ARGENT_CUDA_CHECK(cub::DeviceSelect::If(b.cub_temp, bytes, thrust::counting_iterator<int32_t>(0),
                                          b.tasks, b.n_tasks, int(index.n_chunks),
                                          ChunkIsScanned{index.chunk_list, b.list_count}, stream));
}

}  // namespace

void launch_probe(const GpuIndexView& index, const GpuQueriesView& queries, int nprobe,
                  float* dense, int32_t* lists, cudaStream_t stream, uint32_t* clear,
                  int clear_words, const CarriedPlans* carried) {
  ARGENT_CHECK(nprobe >= 1 && nprobe <= kMaxProbe, "nprobe ", nprobe, " outside [1, ",
               kMaxProbe, "] on the GPU");
  uint64_t* keys = reinterpret_cast<uint64_t*>(dense);
  const int64_t blocks = (index.scan.n_lists + kBlockRows - 1) / kBlockRows;
  const dim3 grid(unsigned((blocks + 7) / 8), unsigned((queries.n + 7) / 8));
  if (carried) {
    ARGENT_CHECK(queries.n == 1, "carried plans are one query's, not ", queries.n, "'s");
    probe_scores_kernel<<<grid, 256, 0, stream>>>(index, queries, keys, *carried);
  } else {
    probe_scores_kernel<<<grid, 256, 0, stream>>>(index, queries, keys, PlansInMemory{});
  }
  ARGENT_CUDA_CHECK_LAUNCH("probe_scores_kernel");
  probe_select_kernel<<<unsigned(queries.n), kProbeSelectThreads, 0, stream>>>(
      keys, index.scan.n_lists, nprobe, lists, clear, clear_words);
  ARGENT_CUDA_CHECK_LAUNCH("probe_select_kernel");
}

void launch_check_probes(const int32_t* probes, int64_t n, int nprobe, int64_t n_lists,
                         int32_t* out, int32_t* n_bad, cudaStream_t stream) {
  ARGENT_CUDA_CHECK(cudaMemsetAsync(n_bad, 0, sizeof(int32_t), stream));
  if (n == 0 || nprobe == 0) return;
  check_probes_kernel<<<unsigned(n), 128, 0, stream>>>(probes, nprobe, n_lists, out, n_bad);
  ARGENT_CUDA_CHECK_LAUNCH("check_probes_kernel");
}

size_t invert_temp_bytes(const GpuIndexView& index) {
  size_t scan_bytes = 0, select_bytes = 0;
  ARGENT_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, (int32_t*)nullptr,
                                                  (int32_t*)nullptr, int(index.scan.n_lists)));
  ChunkIsScanned pred{nullptr, nullptr};
  ARGENT_CUDA_CHECK(cub::DeviceSelect::If(nullptr, select_bytes,
                                          thrust::counting_iterator<int32_t>(0),
                                          (int32_t*)nullptr, (int32_t*)nullptr,
                                          int(index.n_chunks), pred));
  return std::max(scan_bytes, select_bytes);
}

void launch_invert(const GpuIndexView& index, const GpuQueriesView& queries,
                   const int32_t* probes, int nprobe, const InvertBuffers& b,
                   cudaStream_t stream) {
  const int64_t n_lists = index.scan.n_lists;
  constexpr int kThreads = 256;
  // H100, IVF B = 1, K = 1000: the step 0.025 -> 0.006 ms, search 0.174 -> 0.155 ms.
  if (probes && queries.n == 1 && nprobe >= 1 && nprobe <= kMaxProbe) {
    one_query_invert_kernel<<<1, kOneQueryThreads, 0, stream>>>(index, queries, probes, nprobe,
                                                                b.list_count, b.list_start,
                                                                b.list_queries, b.tasks, b.n_tasks);
    ARGENT_CUDA_CHECK_LAUNCH("one_query_invert_kernel");
    return;
  }
  if (!probes && !queries.plan_of_query) {
    const int64_t m = std::max({n_lists, queries.n, index.n_chunks});
    every_list_kernel<<<unsigned((m + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        index, queries.n, b.list_count, b.list_start, b.list_queries, b.tasks, b.n_tasks);
    ARGENT_CUDA_CHECK_LAUNCH("every_list_kernel");
    return;
  }
  ARGENT_CUDA_CHECK(cudaMemsetAsync(b.list_count, 0, sizeof(int32_t) * n_lists, stream));
  ARGENT_CUDA_CHECK(cudaMemsetAsync(b.list_fill, 0, sizeof(int32_t) * n_lists, stream));
  const PairList pairs{probes, probes ? nprobe : int(n_lists)};
  const int64_t total = queries.n * pairs.width;
  const unsigned grid = unsigned((total + kThreads - 1) / kThreads);
  count_pairs_kernel<<<grid, kThreads, 0, stream>>>(index, queries, pairs, b.list_count);
  ARGENT_CUDA_CHECK_LAUNCH("count_pairs_kernel");
  size_t bytes = b.cub_temp_bytes;
  if (probes) {
    ARGENT_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(b.cub_temp, bytes, b.list_count,
                                                    b.list_start, int(n_lists), stream));
  } else {
    const int64_t m = std::max(n_lists, queries.n);
    const unsigned g2 = unsigned((m + kThreads - 1) / kThreads);
    shared_lists_kernel<<<g2, kThreads, 0, stream>>>(b.list_count, n_lists, queries.n,
                                                     b.list_fill, b.list_queries);
    ARGENT_CUDA_CHECK_LAUNCH("shared_lists_kernel");
    ARGENT_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(b.cub_temp, bytes, b.list_fill, b.list_start,
                                                    int(n_lists), stream));
    place_lists_kernel<<<g2, kThreads, 0, stream>>>(b.list_count, b.list_fill, n_lists, queries.n,
                                                    b.list_start);
    ARGENT_CUDA_CHECK_LAUNCH("place_lists_kernel");
    ARGENT_CUDA_CHECK(cudaMemsetAsync(b.list_fill, 0, sizeof(int32_t) * n_lists, stream));
  }
  scatter_pairs_kernel<<<grid, kThreads, 0, stream>>>(index, queries, pairs, b.list_count,
                                                      b.list_start, b.list_fill, b.list_queries);
  ARGENT_CUDA_CHECK_LAUNCH("scatter_pairs_kernel");
  select_tasks(index, b, stream);
}

}  // namespace cuda
}  // namespace argent
