// Thresholds from the sample, and the final top-k: one radix sort of all candidate buffers by
// (query, score), equal scores put in id order, the first k of each query written out.
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <cstdint>

#include "common/cuda_check.h"
#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kSelectThreads = 512;

__global__ void __launch_bounds__(kSelectThreads) select_thresholds_kernel(
    const float* sample, const uint32_t* count, int64_t cap, int64_t rank, float* thresholds) {
  __shared__ SelectShared sh;
  const int64_t q = blockIdx.x;
  const int64_t n = min(int64_t(count[q]), cap);
  if (n < rank) {
    if (threadIdx.x == 0) thresholds[q] = -INFINITY;
    return;
  }
  const float* s = sample + q * cap;
  const uint32_t key = block_select<uint32_t>([&](int64_t i) { return descending_key(s[i]); }, n,
                                              rank, sh);
  if (threadIdx.x == 0) thresholds[q] = score_of_key(key);
}

__global__ void sort_keys_kernel(const float* scores, const int32_t* rows, const uint32_t* count,
                                 int64_t n, int64_t cap, uint64_t* keys, int32_t* values) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * cap) return;
  const int64_t q = idx / cap, i = idx % cap;
  const bool valid = i < min(int64_t(count[q]), cap);
  keys[idx] = (uint64_t(q) << 32) | (valid ? descending_key(scores[idx]) : kEmptyKey);
  values[idx] = valid ? rows[idx] : -1;
}

// Runs of equal scores are rare and short: the thread at a run's start sorts it by id.
__global__ void order_ties_kernel(const GpuIndexView index, const uint64_t* keys, int32_t* values,
                                  const uint32_t* count, int64_t cap) {
  const int64_t q = blockIdx.y;
  const int64_t n = min(int64_t(count[q]), cap);
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint64_t* key = keys + q * cap;
  int32_t* val = values + q * cap;
  const uint32_t mine = uint32_t(key[i]);
  if (i > 0 && uint32_t(key[i - 1]) == mine) return;  // not a run start
  if (i + 1 >= n || uint32_t(key[i + 1]) != mine) return;  // no run
  int64_t end = i + 1;
  while (end < n && uint32_t(key[end]) == mine) ++end;
  const int64_t* ids = index.scan.ids;
  for (int64_t a = i + 1; a < end; ++a) {
    const int32_t row = val[a];
    const int64_t id = ids[row & kRowMask];
    int64_t b = a;
    while (b > i && ids[val[b - 1] & kRowMask] > id) {
      val[b] = val[b - 1];
      --b;
    }
    val[b] = row;
  }
}

// One CTA per query walks its sorted candidates in windows of kEmitThreads: a candidate is
// valid when its row is live and, if the scan flagged it (Bloom possible but not definite),
// the exact feature check passes; the first k valid ones are written in order. The exact checks
// run here, in parallel over the few candidates near the top, rather than inside the scan.
constexpr int kEmitThreads = 512;

__global__ void __launch_bounds__(kEmitThreads) verify_emit_kernel(
    const GpuIndexView index, const GpuQueriesView qv, const uint64_t* keys,
    const int32_t* values, const uint32_t* count, const float* thresholds, int64_t cap, int64_t k,
    float* scores, int64_t* ids, int64_t* rows, int32_t* rescue, int32_t* n_rescue) {
  using BlockScan = cub::BlockScan<int, kEmitThreads>;
  __shared__ typename BlockScan::TempStorage scan_tmp;
  __shared__ int total;
  const int64_t q = blockIdx.x;
  const int64_t n = min(int64_t(count[q]), cap);
  const int32_t plan = qv.plan_of_query ? qv.plan_of_query[q] : -1;
  const FilterOp* ops = plan >= 0 ? qv.plan_ops + qv.plan_begin[plan] : nullptr;
  const int n_ops = plan >= 0 ? qv.plan_len[plan] : 0;
  const FeatureStoreView& f = index.scan.features;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  for (int64_t base = 0; base < n && total < k; base += kEmitThreads) {
    const int64_t i = base + threadIdx.x;
    int ok = 0;
    int32_t row = 0;
    if (i < n) {
      const int32_t v = values[q * cap + i];
      row = v & kRowMask;
      ok = index.scan.ids[row] != kEmptyId;
      if (ok && (v & kNeedsCheck)) {
        const int64_t off = f.offset[row];
        ok = eval_plan_exact(ops, n_ops, f.feature_ids + off, f.values + off, f.count[row]);
      }
    }
    int rank = 0, found = 0;
    BlockScan(scan_tmp).ExclusiveSum(ok, rank, found);
    const int64_t out_rank = total + rank;
    if (ok && out_rank < k) {
      const int64_t out = q * k + out_rank;
      scores[out] = score_of_key(uint32_t(keys[q * cap + i]));
      ids[out] = index.scan.ids[row];
      if (rows) rows[out] = row;
    }
    __syncthreads();
    if (threadIdx.x == 0) total += found;
    __syncthreads();
  }
  const int64_t got = min(int64_t(total), k);
  for (int64_t i = got + threadIdx.x; i < k; i += kEmitThreads) {
    scores[q * k + i] = -INFINITY;
    ids[q * k + i] = kEmptyId;
    if (rows) rows[q * k + i] = -1;
  }
  if (threadIdx.x == 0) {
    const bool overflow = int64_t(count[q]) > cap;
    const bool short_of_k = got < k && thresholds[q] > -INFINITY;
    rescue[q] = overflow || short_of_k;
    if (overflow || short_of_k) atomicAdd(n_rescue, 1);
  }
}

int key_bits(int64_t n) {
  int bits = 32;
  while ((int64_t(1) << (bits - 32)) < n) ++bits;
  return bits;
}

}  // namespace

void launch_select_thresholds(const float* sample_scores, const uint32_t* sample_count,
                              int64_t cap, int64_t n, int64_t rank, float* thresholds,
                              cudaStream_t stream) {
  select_thresholds_kernel<<<unsigned(n), kSelectThreads, 0, stream>>>(
      sample_scores, sample_count, cap, rank, thresholds);
  ARGENT_CUDA_CHECK_LAUNCH("select_thresholds_kernel");
}

size_t sort_temp_bytes(int64_t n, int64_t cap) {
  size_t bytes = 0;
  cub::DoubleBuffer<uint64_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> values(nullptr, nullptr);
  ARGENT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, values, n * cap, 0,
                                                    key_bits(n)));
  return bytes;
}

void launch_sort_and_emit(const GpuIndexView& index, const GpuQueriesView& queries,
                          const float* cand_scores,
                          const int32_t* cand_rows, const uint32_t* cand_count,
                          const float* thresholds, int64_t n, int64_t cap, int64_t k,
                          const SortBuffers& b, float* scores, int64_t* ids, int64_t* rows,
                          int32_t* rescue, int32_t* n_rescue, cudaStream_t stream) {
  const int64_t items = n * cap;
  constexpr int kThreads = 256;
  sort_keys_kernel<<<unsigned((items + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      cand_scores, cand_rows, cand_count, n, cap, b.keys[0], b.values[0]);
  ARGENT_CUDA_CHECK_LAUNCH("sort_keys_kernel");
  cub::DoubleBuffer<uint64_t> keys(b.keys[0], b.keys[1]);
  cub::DoubleBuffer<int32_t> values(b.values[0], b.values[1]);
  size_t temp = b.cub_temp_bytes;
  ARGENT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(b.cub_temp, temp, keys, values, items, 0,
                                                    key_bits(n), stream));
  const dim3 tie_grid(unsigned((cap + kThreads - 1) / kThreads), unsigned(n));
  order_ties_kernel<<<tie_grid, kThreads, 0, stream>>>(index, keys.Current(), values.Current(),
                                                       cand_count, cap);
  ARGENT_CUDA_CHECK_LAUNCH("order_ties_kernel");
  verify_emit_kernel<<<unsigned(n), kEmitThreads, 0, stream>>>(
      index, queries, keys.Current(), values.Current(), cand_count, thresholds, cap, k, scores,
      ids, rows, rescue, n_rescue);
  ARGENT_CUDA_CHECK_LAUNCH("verify_emit_kernel");
}

}  // namespace cuda
}  // namespace argent
