// The final top-k of a batch with per-query candidate buffers and k <= kFusedTopKMaxK, in one
// kernel: one CTA per query finds the score bound of its first k valid candidates, takes the
// exact feature check of the flagged ones above it, sorts what is left (about k) in shared
// memory by (score, id) and writes the first k. The general path (select_kernels.cu) runs a
// prune, a segmented radix sort of several passes, a tie pass and an emit: some ten launches,
// most of whose time at K = 1000 is the launches themselves and the sort's passes over memory.
#include <cstdint>

#include "common/cuda_check.h"
#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/resident_grid.h"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kTopKThreads = 1024;
// Candidates sorted in shared memory, at most: room for k and as many again tied with the k-th
// score. A query with more at or above its bound (a long run of equal scores) is sent to the
// stable-ties re-sort.
constexpr int kTopKSlots = 2 * kFusedTopKMaxK;
constexpr size_t kTopKSharedBytes =
    size_t(kTopKSlots) * (sizeof(int64_t) + sizeof(uint32_t) + sizeof(int32_t));
// Candidates a thread reads at once in the first pass (their row -> id lookups in flight
// together, as in prune_keys_kernel).
constexpr int kTopKUnroll = 4;
// Rounds of exact checks that move the bound by the shortfall of the round before; the last
// checks every flagged candidate (a filter whose Bloom words pass mostly false positives).
constexpr int kTopKCheckRounds = 4;

// Ascending (key, id, row): descending score, then id, as the CPU orders results.
__device__ __forceinline__ bool after(uint32_t key_a, int64_t id_a, int32_t row_a, uint32_t key_b,
                                      int64_t id_b, int32_t row_b) {
  if (key_a != key_b) return key_a > key_b;
  if (id_a != id_b) return id_a > id_b;
  return row_a > row_b;
}

// One element of the sort: its key, id and row.
struct Entry {
  uint32_t key;
  int64_t id;
  int32_t row;
};
__device__ __forceinline__ Entry shfl_xor(const Entry& e, int mask) {
  Entry o;
  o.key = __shfl_xor_sync(0xFFFFFFFFu, e.key, mask);
  o.id = __shfl_xor_sync(0xFFFFFFFFu, e.id, mask);
  o.row = __shfl_xor_sync(0xFFFFFFFFu, e.row, mask);
  return o;
}
__device__ __forceinline__ bool after(const Entry& a, const Entry& b) {
  return after(a.key, a.id, a.row, b.key, b.id, b.row);
}

// Elements a warp sorts in registers, two per lane (lane l holds 2l and 2l + 1 of its segment):
// the bitonic steps whose partners are fewer than kSegment apart need no barrier.
constexpr int kSegment = 64;

// The bitonic steps of merge size `size` with strides min(size / 2, kSegment / 2) .. 1, on the
// warp's segments of the first n slots, in registers (shuffles between lanes, a swap within a
// lane for stride 1); every size from `size` to `last_size` when last_size > size (all of them
// below kSegment at once).
__device__ void sort_segments(uint32_t* key, int64_t* id, int32_t* row, int n, int size,
                              int last_size) {
  const int lane = threadIdx.x & 31;
  for (int seg = threadIdx.x >> 5; seg * kSegment < n; seg += blockDim.x >> 5) {
    const int i0 = seg * kSegment + 2 * lane;
    Entry e[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) e[h] = Entry{key[i0 + h], id[i0 + h], row[i0 + h]};
    for (int sz = size; sz <= last_size; sz <<= 1) {
      const bool ascending = (i0 & sz) == 0;  // both of the lane's slots share it
      for (int stride = min(sz >> 1, kSegment >> 1); stride > 1; stride >>= 1) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const Entry other = shfl_xor(e[h], stride >> 1);
          // The lower slot of the pair keeps the first of the two in an ascending run.
          const bool lower = ((i0 + h) & stride) == 0;
          if (after(e[h], other) == (lower == ascending)) e[h] = other;
        }
      }
      if (after(e[0], e[1]) == ascending) {
        const Entry t = e[0];
        e[0] = e[1];
        e[1] = t;
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h)
      key[i0 + h] = e[h].key, id[i0 + h] = e[h].id, row[i0 + h] = e[h].row;
  }
}

// Ascending (key, id, row) over slots [0, n), n a power of two >= kSegment: a bitonic sort whose
// steps of strides >= kSegment go through shared memory with a barrier each, the rest in
// registers (sort_segments): n = 2048 takes 21 barriers instead of 66 (H100, the top-k step
// of IVF B = 1, K = 1000: 0.034 -> 0.026 ms; B = 256: 0.073 -> 0.059).
__device__ void bitonic_sort(uint32_t* key, int64_t* id, int32_t* row, int n) {
  sort_segments(key, id, row, n, 2, kSegment);
  __syncthreads();
  for (int size = 2 * kSegment; size <= n; size <<= 1) {
    for (int stride = size >> 1; stride >= kSegment; stride >>= 1) {
      for (int t = threadIdx.x; t < n / 2; t += blockDim.x) {
        const int i = 2 * t - (t & (stride - 1)), j = i + stride;
        const uint32_t key_i = key[i], key_j = key[j];
        const int64_t id_i = id[i], id_j = id[j];
        const int32_t row_i = row[i], row_j = row[j];
        if (after(key_i, id_i, row_i, key_j, id_j, row_j) == ((i & size) == 0)) {
          key[i] = key_j, key[j] = key_i;
          id[i] = id_j, id[j] = id_i;
          row[i] = row_j, row[j] = row_i;
        }
      }
      __syncthreads();
    }
    sort_segments(key, id, row, n, size, size);
    __syncthreads();
  }
}

// keys/values [n * cap]: scratch, query q's from q * cap. Writes scores/ids/rows [n, k] and
// rescue[q] (kRescueRerun: the buffer overflowed, or fewer than k valid candidates although
// the threshold was finite; kRescueResort: more than kTopKSlots candidates at or above the
// bound, which only ties at the bound make possible; nothing written), counting flagged
// queries in *n_rescue.
__global__ void __launch_bounds__(kTopKThreads) fused_top_k_kernel(
    const GpuIndexView index, const GpuQueriesView qv, const float* cand_scores,
    const int32_t* cand_rows, const uint32_t* count, int64_t cap, const float* thresholds,
    int64_t k, uint32_t* keys, int32_t* values, float* scores, int64_t* ids, int64_t* rows,
    int32_t* rescue, int32_t* n_rescue) {
  extern __shared__ int64_t top_k_shared[];
  int64_t* s_id = top_k_shared;
  uint32_t* s_key = reinterpret_cast<uint32_t*>(s_id + kTopKSlots);
  int32_t* s_row = reinterpret_cast<int32_t*>(s_key + kTopKSlots);
  __shared__ SelectShared sh;
  __shared__ uint32_t n_failed, n_listed, n_kept;
  const int64_t q = blockIdx.x, base = q * cap;
  const int64_t n = min(int64_t(count[q]), cap);
  cand_scores += base;
  cand_rows += base;
  keys += base;
  values += base;
  const int64_t* item_ids = index.scan.ids;

  // Keys of the live candidates; dead rows (deleted since the collect's read, or replaced) get
  // the empty key, which sorts after every score.
  bool any_flagged = false;
  for (int64_t first = threadIdx.x; first < n; first += int64_t(blockDim.x) * kTopKUnroll) {
    int32_t v[kTopKUnroll];
#pragma unroll
    for (int u = 0; u < kTopKUnroll; ++u) {
      const int64_t i = first + int64_t(u) * blockDim.x;
      v[u] = i < n ? cand_rows[i] : 0;
    }
    bool live[kTopKUnroll];
#pragma unroll
    for (int u = 0; u < kTopKUnroll; ++u) {
      const int64_t i = first + int64_t(u) * blockDim.x;
      live[u] = i < n && item_ids[v[u] & kRowMask] != kEmptyId;
    }
#pragma unroll
    for (int u = 0; u < kTopKUnroll; ++u) {
      const int64_t i = first + int64_t(u) * blockDim.x;
      if (i >= n) continue;
      keys[i] = live[u] ? descending_key(cand_scores[i]) : kEmptyKey;
      values[i] = v[u];
      any_flagged |= live[u] && (v[u] & kNeedsCheck);
    }
  }
  const bool flagged = __syncthreads_or(any_flagged);

  // The flagged candidates with keys at or under `bound` take the exact check (a failure's key
  // becomes empty, a pass clears the flag); returns the failures. They are listed in shared
  // memory first, so that the checks, each a chain of dependent loads, spread evenly over the
  // threads.
  const int32_t plan = qv.plan_of_query ? qv.plan_of_query[q] : -1;
  const FilterOp* ops = plan >= 0 ? qv.plan_ops + qv.plan_begin[plan] : nullptr;
  const int n_ops = plan >= 0 ? qv.plan_len[plan] : 0;
  const FeatureStoreView& features = index.scan.features;
  auto check_under = [&](uint32_t bound) {
    if (threadIdx.x == 0) n_failed = 0;
    for (;;) {
      if (threadIdx.x == 0) n_listed = 0;
      __syncthreads();
      for (int64_t first = 0; first < n; first += blockDim.x) {  // whole warps (warp_reserve)
        const int64_t i = first + threadIdx.x;
        bool due = false;
        if (i < n) due = (values[i] & kNeedsCheck) && keys[i] <= bound;
        const uint32_t at = warp_reserve(&n_listed, due);
        if (due && at < kTopKSlots) s_row[at] = int32_t(i);
      }
      __syncthreads();
      const uint32_t listed = n_listed;
      for (uint32_t j = threadIdx.x; j < min(listed, uint32_t(kTopKSlots)); j += blockDim.x) {
        const int32_t i = s_row[j];
        const int32_t row = values[i] & kRowMask;
        if (pairs_pass_exactly(features, ops, n_ops, features.offset[row], features.count[row])) {
          values[i] = row;
        } else {
          keys[i] = kEmptyKey;
          atomicAdd(&n_failed, 1u);
        }
      }
      __syncthreads();  // (every thread has read n_listed before it is reset)
      if (listed <= uint32_t(kTopKSlots)) break;
    }
    const uint32_t failed = n_failed;
    __syncthreads();
    return int64_t(failed);
  };

  // The bound: the rank-th smallest key. Without flagged candidates rank k. With them, k and a
  // margin for the Bloom false positives among the first k (each a check that fails); when
  // more fail than the margin covers, another round asks for twice the shortfall more. `all`:
  // the bound takes every candidate left.
  const int64_t margin = k / 8 + 32;
  int64_t rank = flagged ? k + margin : k;
  uint32_t bound = kEmptyKey - 1;
  bool all = true;
  for (int round = 0;; ++round) {
    bound = kEmptyKey - 1;
    all = true;
    if (n > rank) {
      const uint32_t kth = block_select<uint32_t>([&](int64_t i) { return keys[i]; }, n, rank, sh);
      if (kth != kEmptyKey) bound = kth, all = false;
    }
    if (!flagged) break;
    // At least rank candidates are under the bound; all of them are now known valid but the
    // failures.
    const int64_t valid = rank - check_under(bound);
    if (all || valid >= k) break;
    rank = round + 1 < kTopKCheckRounds ? valid + 2 * (k - valid) + margin : n;
  }
  // Rounds with a margin (or one that took them all) leave more than k valid candidates under
  // the bound: the k-th of them is the tighter one (every candidate under it is known valid).
  if (n > k && (rank > k || (all && flagged))) {
    const uint32_t kth = block_select<uint32_t>([&](int64_t i) { return keys[i]; }, n, k, sh);
    if (kth != kEmptyKey) bound = kth;
  }

  // The candidates under the bound, in no order, to shared memory.
  if (threadIdx.x == 0) n_kept = 0;
  __syncthreads();
  for (int64_t first = 0; first < n; first += blockDim.x) {  // whole warps (warp_reserve)
    const int64_t i = first + threadIdx.x;
    const uint32_t key = i < n ? keys[i] : kEmptyKey;
    const bool keep = key <= bound;
    const uint32_t at = warp_reserve(&n_kept, keep);
    if (keep && at < kTopKSlots) {
      s_key[at] = key;
      s_row[at] = values[i] & kRowMask;
    }
  }
  __syncthreads();
  const int64_t kept = n_kept;
  const int64_t got = min(kept, k);
  const bool rerun = int64_t(count[q]) > cap || (got < k && thresholds[q] > -INFINITY);
  const int32_t flag = rerun ? kRescueRerun : kept > kTopKSlots ? kRescueResort : 0;
  if (threadIdx.x == 0) {
    rescue[q] = flag;
    if (flag) atomicAdd(n_rescue, 1);
  }
  if (kept > kTopKSlots) return;  // the re-sort or the re-run writes this query's results

  // The next power of two of slots (at least a warp's segment), padding last, sorted.
  int sorted = kSegment;
  while (sorted < kept) sorted <<= 1;
  for (int i = threadIdx.x; i < sorted; i += blockDim.x) {
    if (i < kept) {
      s_id[i] = item_ids[s_row[i]];
    } else {
      s_key[i] = kEmptyKey;
      s_id[i] = INT64_MAX;
      s_row[i] = INT32_MAX;
    }
  }
  __syncthreads();
  bitonic_sort(s_key, s_id, s_row, sorted);

  for (int64_t i = threadIdx.x; i < k; i += blockDim.x) {
    const int64_t out = q * k + i;
    const bool valid = i < got;
    scores[out] = valid ? score_of_key(s_key[i]) : -INFINITY;
    ids[out] = valid ? s_id[i] : kEmptyId;
    if (rows) rows[out] = valid ? s_row[i] : -1;
  }
}

}  // namespace

bool fused_top_k(const Candidates& c, int64_t k, bool stable_ties) {
  return !c.flat && !stable_ties && k <= kFusedTopKMaxK;
}

void launch_fused_top_k(const GpuIndexView& index, const GpuQueriesView& queries,
                        const Candidates& c, const float* thresholds, int64_t k,
                        const SortBuffers& b, float* scores, int64_t* ids, int64_t* rows,
                        int32_t* rescue, int32_t* n_rescue, cudaStream_t stream) {
  ARGENT_CHECK(fused_top_k(c, k, false),
               "GPU search: the fused top-k takes per-query buffers and k <= ", kFusedTopKMaxK,
               ", not k ", k);
  // The kernel's shared memory passes the 48 KiB a launch gets without asking.
  allow_dynamic_shared_memory(reinterpret_cast<const void*>(fused_top_k_kernel),
                              int(kTopKSharedBytes));
  fused_top_k_kernel<<<unsigned(c.n), kTopKThreads, kTopKSharedBytes, stream>>>(
      index, queries, c.scores, c.rows, c.count, c.cap, thresholds, k,
      reinterpret_cast<uint32_t*>(b.keys[0]), b.values[0], scores, ids, rows, rescue, n_rescue);
  ARGENT_CUDA_CHECK_LAUNCH("fused_top_k_kernel");
}

}  // namespace cuda
}  // namespace argent
