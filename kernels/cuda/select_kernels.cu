// Thresholds from the sample, and the final top-k: each query's candidates sorted by score (a
// segmented radix sort over the filled part of each buffer, or one radix sort of all of them by
// (query, score) for few queries or large k), equal scores put in id order, the first k of each
// query written out. Long runs of equal scores are ranked by id one warp per run; runs longer
// than a warp ranks take a second, stable path (a radix sort by id first).
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <cstdint>

#include "common/cuda_check.h"
#include "common/error.h"
#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kSelectThreads = 1024;

// Keys kept in shared memory for the second stage of select_thresholds_kernel, and the sample
// scores a thread loads at once (independent loads in flight, not one latency per score).
constexpr int kThresholdPool = 4096;
constexpr int kThresholdUnroll = 8;
// Smaller samples (IVF at 80M, nprobe 32: ~4,500 a query) take the radix select: there the two
// selects of the two-stage path cost more than the reads they save (H100, the step at IVF B = 1
// 0.010 -> 0.012 ms, B = 256 0.018 -> 0.024).
constexpr int64_t kTwoStageMinSample = 8192;

// T_q = the rank-th best of query q's sample scores. For a rank of at most a quarter of the
// threads: the rank-th smallest of the threads' smallest keys, t0, has at least rank keys at or
// below it, so the rank-th smallest key overall is among the keys <= t0 (a thread's keys are
// blockDim apart, from different sampled blocks, so these are usually little more than rank).
// Two reads of the sample and a select of at most kThresholdPool keys in shared memory, where the
// radix select alone reads the sample once per 8-bit digit with a shared atomic per key (exact
// search at 80M, the step: B = 1 0.078 -> 0.028 ms, B = 64 0.089 -> 0.030, B = 256 0.173 ->
// 0.089, H100). Larger ranks, smaller samples and a pool that overflows (many equal scores) take
// the radix select over the whole sample.
__global__ void __launch_bounds__(kSelectThreads) select_thresholds_kernel(
    const float* sample, const uint32_t* count, int64_t cap, int64_t rank, float* thresholds) {
  __shared__ SelectShared sh;
  const int64_t q = blockIdx.x;
  const int64_t n = count ? min(int64_t(count[q]), cap) : cap;
  if (n < rank) {
    if (threadIdx.x == 0) thresholds[q] = -INFINITY;
    return;
  }
  const float* s = sample + q * cap;
  // A dense sample's slots that no scanned block wrote are 0xFF bytes: empty keys.
  auto key_at = [&](int64_t i) {
    const float v = s[i];
    return __float_as_uint(v) == 0xFFFFFFFFu ? kEmptyKey : descending_key(v);
  };
  // The rank-th best sample or worse is -inf (or empty): fewer than rank scores, -inf.
  auto threshold_of = [](uint32_t key) {
    return key >= descending_key(-INFINITY) ? -INFINITY : score_of_key(key);
  };
  constexpr int64_t kStep = int64_t(kSelectThreads) * kThresholdUnroll;
  // The thread's keys first, first + blockDim, ... (kThresholdUnroll of them; UINT32_MAX past n).
  auto load_keys = [&](int64_t first, uint32_t (&key)[kThresholdUnroll]) {
#pragma unroll
    for (int u = 0; u < kThresholdUnroll; ++u) {
      const int64_t i = first + int64_t(u) * kSelectThreads;
      key[u] = i < n ? key_at(i) : UINT32_MAX;
    }
  };
  if (rank * 4 <= kSelectThreads && n >= kTwoStageMinSample) {
    __shared__ uint32_t minima[kSelectThreads];
    __shared__ uint32_t pool[kThresholdPool];
    __shared__ uint32_t pooled;
    uint32_t mine = UINT32_MAX;
    for (int64_t first = threadIdx.x; first < n; first += kStep) {
      uint32_t key[kThresholdUnroll];
      load_keys(first, key);
#pragma unroll
      for (int u = 0; u < kThresholdUnroll; ++u) mine = min(mine, key[u]);
    }
    minima[threadIdx.x] = mine;
    if (threadIdx.x == 0) pooled = 0;
    __syncthreads();
    const uint32_t t0 =
        block_select<uint32_t>([&](int64_t i) { return minima[i]; }, kSelectThreads, rank, sh);
    // Every thread runs the same trip count: whole warps reserve.
    for (int64_t base = 0; base < n; base += kStep) {
      uint32_t key[kThresholdUnroll];
      load_keys(base + threadIdx.x, key);
#pragma unroll
      for (int u = 0; u < kThresholdUnroll; ++u) {
        const int64_t i = base + int64_t(u) * kSelectThreads + threadIdx.x;
        const bool keep = i < n && key[u] <= t0;
        const uint32_t at = warp_reserve(&pooled, keep);
        if (keep && at < kThresholdPool) pool[at] = key[u];
      }
    }
    __syncthreads();
    const uint32_t kept = pooled;
    if (kept <= kThresholdPool) {
      const uint32_t key =
          block_select<uint32_t>([&](int64_t i) { return pool[i]; }, kept, rank, sh);
      if (threadIdx.x == 0) thresholds[q] = threshold_of(key);
      return;
    }
  }
  const uint32_t key = block_select<uint32_t>(key_at, n, rank, sh);
  if (threadIdx.x == 0) thresholds[q] = threshold_of(key);
}

// The sort keys (query, descending score). With segment bounds (the segmented sort), only the
// filled slots, each query's segment being [q * cap, q * cap + min(count[q], cap)); without (one
// sort of the whole batch), every slot, the empty ones keyed to sort last in their query.
__global__ void sort_keys_kernel(const float* scores, const int32_t* rows, const uint32_t* count,
                                 int64_t n, int64_t cap, uint64_t* keys, int32_t* values,
                                 int32_t* segment_begin, int32_t* segment_end) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * cap) return;
  const int64_t q = idx / cap, i = idx % cap;
  const int64_t filled = min(int64_t(count[q]), cap);
  const bool valid = i < filled;
  if (segment_begin) {
    if (i == 0) {
      segment_begin[q] = int32_t(idx);
      segment_end[q] = int32_t(idx + filled);
    }
    if (!valid) return;
  }
  keys[idx] = (uint64_t(q) << 32) | (valid ? descending_key(scores[idx]) : kEmptyKey);
  values[idx] = valid ? rows[idx] : -1;
}

// The segmented sort's input, pruned (one CTA per query): of a query's filled slots, the live
// rows scoring at or above the k-th best score among its rows certain to be valid (live, and
// not flagged for the exact check), ties included. No row below that score can be among the
// first k valid candidates the emit step takes; what is sorted shrinks from the sample's margin
// (exact search, K = 1000: ~13,000 candidates a query) to about k. Flagged rows above the bound
// stay for the emit step to check; with fewer than k certain rows every live row stays. Keys
// and rows go to keys/values first (the select reads them from there), the kept ones to
// kept_keys/kept_values, from q * cap in any order (the sort orders them).
constexpr int kPruneThreads = 1024;
constexpr int kPruneUnroll = 4;

__global__ void __launch_bounds__(kPruneThreads) prune_keys_kernel(
    const GpuIndexView index, const float* scores, const int32_t* rows, const uint32_t* count,
    int64_t cap, int64_t k, uint64_t* keys, int32_t* values, uint64_t* kept_keys,
    int32_t* kept_values, int32_t* segment_begin, int32_t* segment_end) {
  __shared__ SelectShared sh;
  __shared__ uint32_t n_kept;
  const int64_t q = blockIdx.x, base = q * cap;
  const int64_t n = min(int64_t(count[q]), cap);
  const uint64_t query_bits = uint64_t(q) << 32;
  // kPruneUnroll candidates at a time: their row -> id lookups are independent loads in flight,
  // not one dependent pair of latencies per candidate (one CTA per query: at B = 64 half the
  // SMs are idle, and each thread has ~15 candidates).
  for (int64_t first = threadIdx.x; first < n; first += int64_t(blockDim.x) * kPruneUnroll) {
    int32_t v[kPruneUnroll];
#pragma unroll
    for (int u = 0; u < kPruneUnroll; ++u) {
      const int64_t i = first + int64_t(u) * blockDim.x;
      v[u] = i < n ? rows[base + i] : 0;
    }
    bool live[kPruneUnroll];
#pragma unroll
    for (int u = 0; u < kPruneUnroll; ++u) {
      const int64_t i = first + int64_t(u) * blockDim.x;
      live[u] = i < n && index.scan.ids[v[u] & kRowMask] != kEmptyId;
    }
#pragma unroll
    for (int u = 0; u < kPruneUnroll; ++u) {
      const int64_t i = first + int64_t(u) * blockDim.x;
      if (i >= n) continue;
      keys[base + i] = query_bits | (live[u] ? descending_key(scores[base + i]) : kEmptyKey);
      values[base + i] = v[u];
    }
  }
  if (threadIdx.x == 0) n_kept = 0;
  __syncthreads();
  uint32_t bound = kEmptyKey - 1;  // every live row's key (-inf's included)
  if (n > k) {
    const uint32_t kth = block_select<uint32_t>(
        [&](int64_t i) {
          return (values[base + i] & kNeedsCheck) ? kEmptyKey : uint32_t(keys[base + i]);
        },
        n, k, sh);
    if (kth != kEmptyKey) bound = kth;
  }
  // Whole warps run every trip (warp_reserve).
  for (int64_t first = 0; first < n; first += blockDim.x) {
    const int64_t i = first + threadIdx.x;
    const uint64_t key = i < n ? keys[base + i] : ~uint64_t(0);
    const bool keep = i < n && uint32_t(key) <= bound;
    const uint32_t at = warp_reserve(&n_kept, keep);
    if (keep) {
      kept_keys[base + at] = key;
      kept_values[base + at] = values[base + i];
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    segment_begin[q] = int32_t(base);
    segment_end[q] = int32_t(base + n_kept);
  }
}

// The segmented sort takes one CTA per query: many queries with small buffers. With few queries
// (or flat candidates) one sort of the whole batch uses the GPU better (H200, K = 1000, B =
// 256: 0.65 ms segmented, 1.01 whole-batch; K = 100,000, B = 64, per query: 3.44 and 2.25).
bool segmented_sort(const Candidates& c) { return !c.flat && c.n >= 16; }

// Where each query's candidates are once sorted: per query, from q * cap; flat, where
// flat_segments_kernel found them.
struct Segments {
  const uint32_t* count = nullptr;  // per query (> cap: overflow)
  int64_t cap = 0;                  // per query; flat: slots in all
  const int32_t* flat = nullptr;    // [2n] begin, then size; null: per query
  const uint32_t* dropped = nullptr;  // flat: candidates that found no slot, per query
  const int32_t* ends = nullptr;    // per query, after a segmented sort: its sorted entries' end
  int64_t n = 0;
  __device__ int64_t start(int64_t q) const { return flat ? flat[q] : q * cap; }
  __device__ int64_t size(int64_t q) const {
    return flat ? flat[n + q] : ends ? ends[q] - q * cap : min(int64_t(count[q]), cap);
  }
  __device__ bool overflow(int64_t q) const {
    return flat ? dropped[q] > 0 : int64_t(count[q]) > cap;
  }
};

// A flat slot no candidate took (the caller sets every byte to 0xff). Its low 32 bits are
// kEmptyKey, which no score maps to, and the query bits the sort looks at are all ones, at
// least the batch's last query: sorted, the empty slots follow every candidate, and the keys
// stay in order as whole 64-bit values (flat_segments_kernel's binary searches).
constexpr uint64_t kFlatEmpty = ~uint64_t(0);

// Each query's entries in the sorted flat keys: one binary search for its first, one for the
// next query's.
__device__ int64_t lower_bound_key(const uint64_t* keys, int64_t n, uint64_t key) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (keys[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

__global__ void flat_segments_kernel(const uint64_t* keys, int64_t slots, int64_t n,
                                     int32_t* segments) {
  const int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (q >= n) return;
  const int64_t begin = lower_bound_key(keys, slots, uint64_t(q) << 32);
  const int64_t end = lower_bound_key(keys, slots, uint64_t(q + 1) << 32);
  segments[q] = int32_t(begin);
  segments[n + q] = int32_t(end - begin);
}

// Runs of equal scores: the thread at a run's start sorts a short one by id in place. A longer
// run (large k over scores of one global scale meets many of tens to hundreds) is listed for
// rank_long_runs_kernel, one warp per run. Longer still (many items with one embedding, or a
// query that scores every item the same, such as a zero vector) it is left unsorted, and its
// start goes to first_long_run[q] so that the emit step can send the query to the stable-ties
// re-sort when the run reaches the results.
constexpr int64_t kMaxTieRun = 32;
constexpr int kRankWarps = 4;
constexpr int64_t kMaxRankedRun = 512;

struct TieRun {
  int32_t start, len;  // start: the run's first entry in the sorted values
};

// Per query: grid (cap / threads, n), thread i of query blockIdx.y. Flat: one thread per slot.
__global__ void order_ties_kernel(const GpuIndexView index, const uint64_t* keys, int32_t* values,
                                  const Segments seg, TieRun* runs, int32_t* n_runs,
                                  int32_t* first_long_run) {
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t q = blockIdx.y, i = thread;
  if (seg.flat) {
    if (thread >= seg.cap || keys[thread] == kFlatEmpty) return;
    q = int64_t(keys[thread] >> 32);
    i = thread - seg.start(q);
  }
  const int64_t n = seg.size(q);
  if (i >= n) return;
  const uint64_t* key = keys + seg.start(q);
  int32_t* val = values + seg.start(q);
  const uint32_t mine = uint32_t(key[i]);
  if (i > 0 && uint32_t(key[i - 1]) == mine) return;  // not a run start
  if (i + 1 >= n || uint32_t(key[i + 1]) != mine) return;  // no run
  int64_t end = i + 1;
  while (end < n && end - i <= kMaxRankedRun && uint32_t(key[end]) == mine) ++end;
  if (end - i > kMaxRankedRun) {
    atomicMin(first_long_run + q, int32_t(i));
    return;
  }
  if (end - i > kMaxTieRun) {
    runs[atomicAdd(n_runs, 1)] = TieRun{int32_t(seg.start(q) + i), int32_t(end - i)};
    return;
  }
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

// Each listed run put in id order by one warp: every candidate's place is the number of the
// run's candidates before it in (id, position) order (dead rows share kEmptyId): O(len^2 / 32)
// work, little for the runs of tens to hundreds that reach this step. A grid-stride loop over
// the runs, whose number only the device knows.
__global__ void __launch_bounds__(kRankWarps * 32) rank_long_runs_kernel(
    const GpuIndexView index, const TieRun* runs, const int32_t* n_runs, int32_t* values) {
  __shared__ int64_t run_ids[kRankWarps][kMaxRankedRun];
  __shared__ int32_t run_rows[kRankWarps][kMaxRankedRun];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int64_t* my_ids = run_ids[warp];
  int32_t* my_rows = run_rows[warp];
  const int32_t total = *n_runs;
  for (int32_t r = blockIdx.x * kRankWarps + warp; r < total; r += gridDim.x * kRankWarps) {
    const TieRun run = runs[r];
    int32_t* val = values + run.start;
    for (int j = lane; j < run.len; j += 32) {
      my_rows[j] = val[j];
      my_ids[j] = index.scan.ids[my_rows[j] & kRowMask];
    }
    __syncwarp();
    for (int j = lane; j < run.len; j += 32) {
      const int64_t id = my_ids[j];
      int place = 0;
      for (int o = 0; o < run.len; ++o) place += my_ids[o] < id || (my_ids[o] == id && o < j);
      val[place] = my_rows[j];
    }
    __syncwarp();  // the buffers are reused by the warp's next run
  }
}

// The stable-ties order: candidates first sorted by id (signed order), then stably by (query,
// score), so equal scores stay in id order however long their runs.
__global__ void id_keys_kernel(const GpuIndexView index, const int32_t* rows,
                               const uint32_t* count, int64_t n, int64_t cap, uint64_t* keys,
                               int32_t* positions) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * cap) return;
  const int64_t q = idx / cap, i = idx % cap;
  const bool valid = i < min(int64_t(count[q]), cap);
  const int64_t id = valid ? index.scan.ids[rows[idx] & kRowMask] : INT64_MAX;
  keys[idx] = uint64_t(id) ^ (uint64_t(1) << 63);
  positions[idx] = int32_t(idx);
}

__global__ void score_keys_in_id_order_kernel(const float* scores, const int32_t* rows,
                                              const uint32_t* count, int64_t n, int64_t cap,
                                              const int32_t* positions, uint64_t* keys,
                                              int32_t* values) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n * cap) return;
  const int64_t idx = positions[j], q = idx / cap, i = idx % cap;
  const bool valid = i < min(int64_t(count[q]), cap);
  keys[j] = (uint64_t(q) << 32) | (valid ? descending_key(scores[idx]) : kEmptyKey);
  values[j] = valid ? rows[idx] : -1;
}

// The stable-ties order of flat candidates: the same two sorts, from the flat keys and rows.
__global__ void flat_id_keys_kernel(const GpuIndexView index, const uint64_t* keys,
                                    const int32_t* rows, int64_t slots, uint64_t* id_keys,
                                    int32_t* positions) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= slots) return;
  const bool valid = keys[idx] != kFlatEmpty;
  const int64_t id = valid ? index.scan.ids[rows[idx] & kRowMask] : INT64_MAX;
  id_keys[idx] = uint64_t(id) ^ (uint64_t(1) << 63);
  positions[idx] = int32_t(idx);
}

__global__ void flat_gather_kernel(const uint64_t* keys, const int32_t* rows, int64_t slots,
                                   const int32_t* positions, uint64_t* out_keys,
                                   int32_t* out_rows) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= slots) return;
  const int64_t idx = positions[j];
  out_keys[j] = keys[idx];
  out_rows[j] = rows[idx];
}

// One CTA per query walks its sorted candidates in windows of kEmitThreads * kEmitPerThread
// (each thread kEmitPerThread consecutive ones, their loads issued together): a candidate is
// valid when its row is live and, if the scan flagged it (Bloom possible but not definite),
// the exact feature check passes; the first k valid ones are written in order. The exact checks
// run here, in parallel over the few candidates near the top, rather than inside the scan. With
// one candidate per thread, K = 100,000 walked some 200 windows per query, each a chain of
// dependent loads (ids, then the features) waiting on the one before (H200, exact B = 64:
// sort + emit 2.38 -> 1.90 ms; no change measured at K = 1000).
constexpr int kEmitThreads = 512;
constexpr int kEmitPerThread = 4;

__global__ void __launch_bounds__(kEmitThreads) verify_emit_kernel(
    const GpuIndexView index, const GpuQueriesView qv, const uint64_t* keys,
    const int32_t* values, const Segments seg, const float* thresholds, int64_t k,
    float* scores, int64_t* ids, int64_t* rows, int32_t* rescue, int32_t* n_rescue) {
  // rescue[q] holds the start of the first unsorted long tie run (order_ties_kernel) on entry.
  using BlockScan = cub::BlockScan<int, kEmitThreads>;
  __shared__ typename BlockScan::TempStorage scan_tmp;
  __shared__ int total;
  __shared__ int64_t used;  // 1 + the last candidate written (0: none)
  const int64_t q = blockIdx.x;
  const int64_t n = seg.size(q);
  keys += seg.start(q);
  values += seg.start(q);
  const int32_t plan = qv.plan_of_query ? qv.plan_of_query[q] : -1;
  const FilterOp* ops = plan >= 0 ? qv.plan_ops + qv.plan_begin[plan] : nullptr;
  const int n_ops = plan >= 0 ? qv.plan_len[plan] : 0;
  const FeatureStoreView& f = index.scan.features;
  if (threadIdx.x == 0) total = 0, used = 0;
  __syncthreads();
  constexpr int kWindow = kEmitThreads * kEmitPerThread;
  for (int64_t base = 0; base < n && total < k; base += kWindow) {
    const int64_t first = base + int64_t(threadIdx.x) * kEmitPerThread;
    int ok[kEmitPerThread];
    int32_t row[kEmitPerThread];
    int32_t v[kEmitPerThread];
#pragma unroll
    for (int e = 0; e < kEmitPerThread; ++e) {
      const bool in_segment = first + e < n;
      v[e] = in_segment ? values[first + e] : 0;
      row[e] = v[e] & kRowMask;
      ok[e] = in_segment && index.scan.ids[row[e]] != kEmptyId;
    }
#pragma unroll
    for (int e = 0; e < kEmitPerThread; ++e)
      if (ok[e] && (v[e] & kNeedsCheck)) ok[e] = row_passes_exactly(f, ops, n_ops, row[e]);
    int rank[kEmitPerThread], found = 0;
    BlockScan(scan_tmp).ExclusiveSum(ok, rank, found);
    int64_t last = -1;
#pragma unroll
    for (int e = 0; e < kEmitPerThread; ++e) {
      const int64_t out_rank = total + rank[e];
      if (ok[e] && out_rank < k) {
        const int64_t out = q * k + out_rank;
        scores[out] = score_of_key(uint32_t(keys[first + e]));
        ids[out] = index.scan.ids[row[e]];
        if (rows) rows[out] = row[e];
        last = first + e;
      }
    }
    if (last >= 0) atomicMax(reinterpret_cast<unsigned long long*>(&used),
                             static_cast<unsigned long long>(last + 1));
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
    const bool overflow = seg.overflow(q);
    const bool short_of_k = got < k && thresholds[q] > -INFINITY;
    // Only a run that starts at or before the last candidate written can change the results.
    const bool unsorted_ties = int64_t(rescue[q]) < used;
    // 1: the candidates are not enough, re-run the query; 2: they are, only their order is not.
    const int flag = overflow || short_of_k ? kRescueRerun : unsorted_ties ? kRescueResort : 0;
    rescue[q] = flag;
    if (flag) atomicAdd(n_rescue, 1);
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

bool flat_candidates(int64_t cap_per_query) { return cap_per_query > (int64_t(1) << 17); }

// The segment bounds of the segmented sort ([n] begins, [n] ends) go first in cub_temp.
size_t segment_bytes(int64_t n) { return (size_t(2 * n) * sizeof(int32_t) + 255) / 256 * 256; }

size_t sort_temp_bytes(const Candidates& c, bool stable_ties) {
  const int64_t n = c.n, items = c.slots();
  size_t bytes = 0;
  cub::DoubleBuffer<uint64_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> values(nullptr, nullptr);
  if (!stable_ties && segmented_sort(c)) {
    const int32_t* none = nullptr;
    ARGENT_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
        nullptr, bytes, keys, values, items, n, none, none, 0, 32));
  } else {
    ARGENT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, values, items, 0,
                                                      key_bits(n)));
    if (stable_ties) {
      size_t id_bytes = 0;
      ARGENT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, id_bytes, keys, values, items));
      bytes = std::max(bytes, id_bytes);
    }
  }
  return segment_bytes(n) + bytes;
}

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t items) { return unsigned((items + kThreads - 1) / kThreads); }

// Per query: the candidates sorted into keys/values (b), per segment or all at once. Returns
// the segments' ends (a segmented sort's; null otherwise).
const int32_t* sort_per_query(const GpuIndexView& index, const Candidates& c, int64_t k,
                              bool stable_ties, bool prune, const SortBuffers& b,
                              cub::DoubleBuffer<uint64_t>& keys,
                              cub::DoubleBuffer<int32_t>& values, cudaStream_t stream) {
  const int64_t n = c.n, cap = c.cap, items = n * cap;
  size_t temp = b.cub_temp_bytes;
  if (!stable_ties && segmented_sort(c)) {
    // Only the filled slots are sorted (a query's buffer is sized for the worst case: at K =
    // 1000 about a fifth of it is filled), by the 32 score bits (the query bits are constant in
    // a segment), and of those only the ones that can reach the top k (prune_keys_kernel).
    // Slots past a segment are left as they are; nothing reads them.
    int32_t* segment_begin = static_cast<int32_t*>(b.cub_temp);
    int32_t* segment_end = segment_begin + n;
    if (prune) {
      prune_keys_kernel<<<unsigned(n), kPruneThreads, 0, stream>>>(
          index, c.scores, c.rows, c.count, cap, k, b.keys[0], b.values[0], b.keys[1],
          b.values[1], segment_begin, segment_end);
      ARGENT_CUDA_CHECK_LAUNCH("prune_keys_kernel");
      keys = cub::DoubleBuffer<uint64_t>(b.keys[1], b.keys[0]);
      values = cub::DoubleBuffer<int32_t>(b.values[1], b.values[0]);
    } else {
      sort_keys_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
          c.scores, c.rows, c.count, n, cap, b.keys[0], b.values[0], segment_begin, segment_end);
      ARGENT_CUDA_CHECK_LAUNCH("sort_keys_kernel");
    }
    temp = b.cub_temp_bytes - segment_bytes(n);
    ARGENT_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(
        static_cast<char*>(b.cub_temp) + segment_bytes(n), temp, keys, values, items, n,
        segment_begin, segment_end, 0, 32, stream));
    return segment_end;
  }
  if (stable_ties) {
    id_keys_kernel<<<blocks_for(items), kThreads, 0, stream>>>(index, c.rows, c.count, n, cap,
                                                               b.keys[0], b.values[0]);
    ARGENT_CUDA_CHECK_LAUNCH("id_keys_kernel");
    ARGENT_CUDA_CHECK(
        cub::DeviceRadixSort::SortPairs(b.cub_temp, temp, keys, values, items, 0, 64, stream));
    // keys.Current() (ids) is free again; values.Current() holds the positions in id order.
    score_keys_in_id_order_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
        c.scores, c.rows, c.count, n, cap, values.Current(), keys.Current(), values.Alternate());
    ARGENT_CUDA_CHECK_LAUNCH("score_keys_in_id_order_kernel");
    keys = cub::DoubleBuffer<uint64_t>(keys.Current(), keys.Alternate());
    values = cub::DoubleBuffer<int32_t>(values.Alternate(), values.Current());
  } else {
    sort_keys_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
        c.scores, c.rows, c.count, n, cap, b.keys[0], b.values[0], nullptr, nullptr);
    ARGENT_CUDA_CHECK_LAUNCH("sort_keys_kernel");
  }
  // One sort of the whole batch by (query, score). LSD radix sort is stable: in the
  // stable-ties order, equal keys keep their id order.
  temp = b.cub_temp_bytes;
  ARGENT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(b.cub_temp, temp, keys, values, items, 0,
                                                    key_bits(n), stream));
  return nullptr;
}

// Flat: the candidates of pair c.current sorted by (query, score), ping-ponging with another
// pair; in the stable-ties order, first by id through the two other pairs, so that pair
// c.current (the input a re-sort reads) is never overwritten. c.current ends on the result.
void sort_flat(const GpuIndexView& index, Candidates& c, bool stable_ties, const SortBuffers& b,
               cub::DoubleBuffer<uint64_t>& keys, cub::DoubleBuffer<int32_t>& values,
               cudaStream_t stream) {
  const int64_t slots = c.cap;
  const int in = c.current, x = (in + 1) % 3, y = (in + 2) % 3;
  size_t temp = b.cub_temp_bytes;
  if (stable_ties) {
    flat_id_keys_kernel<<<blocks_for(slots), kThreads, 0, stream>>>(
        index, c.keys[in], c.flat_rows[in], slots, c.keys[x], c.flat_rows[x]);
    ARGENT_CUDA_CHECK_LAUNCH("flat_id_keys_kernel");
    cub::DoubleBuffer<uint64_t> id_keys(c.keys[x], c.keys[y]);
    cub::DoubleBuffer<int32_t> positions(c.flat_rows[x], c.flat_rows[y]);
    ARGENT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(b.cub_temp, temp, id_keys, positions,
                                                      slots, 0, 64, stream));
    const int p = positions.Current() == c.flat_rows[x] ? x : y, o = p == x ? y : x;
    flat_gather_kernel<<<blocks_for(slots), kThreads, 0, stream>>>(
        c.keys[in], c.flat_rows[in], slots, c.flat_rows[p], c.keys[o], c.flat_rows[o]);
    ARGENT_CUDA_CHECK_LAUNCH("flat_gather_kernel");
    keys = cub::DoubleBuffer<uint64_t>(c.keys[o], c.keys[p]);
    values = cub::DoubleBuffer<int32_t>(c.flat_rows[o], c.flat_rows[p]);
  } else {
    keys = cub::DoubleBuffer<uint64_t>(c.keys[in], c.keys[x]);
    values = cub::DoubleBuffer<int32_t>(c.flat_rows[in], c.flat_rows[x]);
  }
  temp = b.cub_temp_bytes;
  ARGENT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(b.cub_temp, temp, keys, values, slots, 0,
                                                    key_bits(c.n), stream));
  for (int i = 0; i < 3; ++i)
    if (keys.Current() == c.keys[i]) c.current = i;
  flat_segments_kernel<<<blocks_for(c.n), kThreads, 0, stream>>>(keys.Current(), slots, c.n,
                                                                 c.segments);
  ARGENT_CUDA_CHECK_LAUNCH("flat_segments_kernel");
}

}  // namespace

void launch_sort_and_emit(const GpuIndexView& index, const GpuQueriesView& queries,
                          Candidates& c, const float* thresholds, int64_t k, bool stable_ties,
                          bool prune, const SortBuffers& b, float* scores, int64_t* ids,
                          int64_t* rows, int32_t* rescue, int32_t* n_rescue, cudaStream_t stream) {
  const int64_t n = c.n, items = c.slots();
  ARGENT_CHECK(items < (int64_t(1) << 31), "GPU search: ", items,
               " candidate slots in one batch; at most 2^31 - 1");
  cub::DoubleBuffer<uint64_t> keys(b.keys[0], b.keys[1]);
  cub::DoubleBuffer<int32_t> values(b.values[0], b.values[1]);
  const int32_t* ends = nullptr;
  if (c.flat)
    sort_flat(index, c, stable_ties, b, keys, values, stream);
  else
    ends = sort_per_query(index, c, k, stable_ties, prune, b, keys, values, stream);
  Segments seg;
  seg.count = c.count;
  seg.cap = c.cap;
  seg.ends = ends;
  seg.n = n;
  if (c.flat) {
    seg.flat = c.segments;
    seg.dropped = c.dropped;
  }
  // No long tie run yet: INT32_MAX-ish (every byte 0x7f) in each query's slot.
  ARGENT_CUDA_CHECK(cudaMemsetAsync(rescue, 0x7f, sizeof(int32_t) * n, stream));
  if (!stable_ties) {
    // The list of long runs lives in the sort's spare key buffer (free once the sort is done;
    // at most items / (kMaxTieRun + 1) runs, 8 bytes each, against 8 bytes per item).
    int32_t* n_runs = reinterpret_cast<int32_t*>(keys.Alternate());
    TieRun* runs = reinterpret_cast<TieRun*>(keys.Alternate() + 1);
    ARGENT_CUDA_CHECK(cudaMemsetAsync(n_runs, 0, sizeof(int32_t), stream));
    const dim3 tie_grid = c.flat ? dim3(blocks_for(c.cap)) : dim3(blocks_for(c.cap), unsigned(n));
    order_ties_kernel<<<tie_grid, kThreads, 0, stream>>>(index, keys.Current(), values.Current(),
                                                         seg, runs, n_runs, rescue);
    ARGENT_CUDA_CHECK_LAUNCH("order_ties_kernel");
    constexpr unsigned kRankGrid = 1056;  // 8 CTAs per SM of an H100; idle without runs
    rank_long_runs_kernel<<<kRankGrid, kRankWarps * 32, 0, stream>>>(index, runs, n_runs,
                                                                     values.Current());
    ARGENT_CUDA_CHECK_LAUNCH("rank_long_runs_kernel");
  }
  verify_emit_kernel<<<unsigned(n), kEmitThreads, 0, stream>>>(
      index, queries, keys.Current(), values.Current(), seg, thresholds, k, scores, ids, rows,
      rescue, n_rescue);
  ARGENT_CUDA_CHECK_LAUNCH("verify_emit_kernel");
}

}  // namespace cuda
}  // namespace argent
