// The row-eligibility pre-pass (search_steps.h: launch_block_plans). When a batch has few
// distinct filter plans, each row's Bloom plan is evaluated once here, for every plan, over the
// chunks the scan will read; the scan then reads one word per (block, plan) instead of
// evaluating signatures inside its tensor-core loop, where the dependent loads and the plan
// evaluation stalled the mma pipeline. IVF batches with more distinct plans than that evaluate
// each (query, probed list) pair's plan over its list instead (launch_pair_plans): fewer rows
// than every plan over every probed list, and a run of one query then knows its rows as a
// uniform run does. A one-query IVF batch takes neither: its rows' words, exact, come from one
// pass over its probed lists (launch_probed_list_plans), which also draws its sample and inverts.
#include <cub/block/block_scan.cuh>

#include <algorithm>

#include "common/cuda_check.h"
#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/resident_grid.h"
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

// One thread's row of one chunk and its signature (of one or two words, already read when the
// signature has at most two).
struct Row {
  bool live;  // the chunk exists and has this block (its last may be absent)
  int64_t block;
  const uint64_t* sig;
  uint64_t w0, w1;

  // Sets block, sig and the words (thread's row of the block: threadIdx.x % kBlockRows).
  __device__ __forceinline__ void load(const GpuIndexView& index, int64_t b, bool is_live) {
    const int words = index.scan.bloom_words;
    live = is_live;
    block = b;
    sig = index.scan.signatures + (block * kBlockRows + threadIdx.x % kBlockRows) * words;
    w0 = live && words <= 2 ? __ldg(sig) : 0;
    w1 = live && words == 2 ? __ldg(sig + 1) : 0;
  }

  // The plan compiled when it could be (and the signature has at most two words), else its ops.
  __device__ __forceinline__ PlanResult eval(const CompiledPlan& plan, const FilterOp* ops,
                                             int n_ops, int words) const {
    if (!live) return PlanResult{false, false};
    if (words <= 2 && plan.n_terms >= 0) return plan.eval(w0, w1);
    if (words > 2) return eval_plan_bloom(ops, n_ops, sig);
    const uint64_t a = w0, c = w1;
    return eval_plan_bloom_words(ops, n_ops, [a, c](int32_t w) { return w == 0 ? a : c; });
  }
};

// A thread's rows of the chunks tasks[task0 ..] in flight, their signatures read for all
// chunks before any plan is evaluated.
struct RowsInFlight {
  Row row[kChunksInFlight];

  __device__ __forceinline__ void load(const GpuIndexView& index, const int32_t* tasks, int n,
                                       int task0) {
    const int b = threadIdx.x / kBlockRows;
#pragma unroll
    for (int u = 0; u < kChunksInFlight; ++u) {
      const int task = task0 + u;
      const int32_t chunk = task < n ? tasks[task] : 0;
      row[u].load(index, task < n ? index.chunk_first_block[chunk] + b : 0,
                  task < n && b < index.chunk_blocks[chunk]);
    }
  }

  // The rows row0 + u * kThreads + threadIdx.x of a list (of list_rows rows from first_block),
  // its blocks in order; rows of blocks past the list's end are not live (its last block's
  // padding rows are, as in load).
  __device__ __forceinline__ void load_list(const GpuIndexView& index, int64_t first_block,
                                            int64_t list_rows, int64_t row0) {
    const int64_t list_blocks = (list_rows + kBlockRows - 1) / kBlockRows;
#pragma unroll
    for (int u = 0; u < kChunksInFlight; ++u) {
      const int64_t b = (row0 + int64_t(u) * kThreads) / kBlockRows + threadIdx.x / kBlockRows;
      row[u].load(index, first_block + b, b < list_blocks);
    }
  }
};

// The word of this thread's block (ballots over its half-warp, called by every thread): possible
// bits in the low half, definite bits in the high half.
__device__ __forceinline__ uint32_t block_word(PlanResult r) {
  const int shift = threadIdx.x & 16;  // this half-warp's bits in the warp's ballot
  const uint32_t possible = (__ballot_sync(0xFFFFFFFFu, r.possible) >> shift) & 0xFFFFu;
  const uint32_t definite = (__ballot_sync(0xFFFFFFFFu, r.definite) >> shift) & 0xFFFFu;
  return possible | definite << 16;
}

// The grid of the plans pre-pass, over `units` (rounds of chunks): the task count is known only
// on the device, so a grid that fills the GPU strides over them (IVF batches have few tasks: a
// CTA per possible chunk would mostly launch idle CTAs).
unsigned pre_pass_grid(int64_t units) {
  int device = 0, sms = 0;
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return unsigned(std::min<int64_t>(units, int64_t(sms) * 4));
}

// A grid of CTAs strides over the tasks (chunks), kChunksInFlight at a time, one thread per row
// of each; then every plan is evaluated for all of them.
__global__ void __launch_bounds__(kThreads) block_plans_kernel(
    const __grid_constant__ GpuIndexView index, const __grid_constant__ GpuQueriesView queries,
    const int32_t* tasks, const int32_t* n_tasks, int n_plans, uint32_t* out,
    unsigned long long* row_counts) {
  // The CTA's rows possibly eligible under each plan, then its rows evaluated.
  __shared__ unsigned int cta_counts[kMaxBlockPlans + 1];
  __shared__ CompiledPlan compiled[kMaxBlockPlans];
  if (threadIdx.x <= kMaxBlockPlans) cta_counts[threadIdx.x] = 0;
  if (threadIdx.x < n_plans)
    compiled[threadIdx.x].compile(queries.plan_ops + queries.plan_begin[threadIdx.x],
                                  queries.plan_len[threadIdx.x]);
  __syncthreads();
  const int n = *n_tasks;
  const int64_t n_blocks = index.scan.n_rows / kBlockRows;
  const int words = index.scan.bloom_words;
  for (int task0 = blockIdx.x * kChunksInFlight; task0 < n;
       task0 += gridDim.x * kChunksInFlight) {
    RowsInFlight rows;
    rows.load(index, tasks, n, task0);
    for (int plan = 0; plan < n_plans; ++plan) {
      const FilterOp* ops = queries.plan_ops + queries.plan_begin[plan];
      const int n_ops = queries.plan_len[plan];
      PlanResult r[kChunksInFlight];
#pragma unroll
      for (int u = 0; u < kChunksInFlight; ++u)
        r[u] = rows.row[u].eval(compiled[plan], ops, n_ops, words);
#pragma unroll
      for (int u = 0; u < kChunksInFlight; ++u) {
        const uint32_t w = block_word(r[u]);
        if (rows.row[u].live && threadIdx.x % kBlockRows == 0) {
          out[int64_t(plan) * n_blocks + rows.row[u].block] = w;
          atomicAdd(&cta_counts[plan], __popc(w & 0xFFFFu));
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

// The exact int8 dot product of row `row`'s codes with the query's (d_pad / 4 words, in shared
// memory), in either layout of the codes (GpuIndexView::rows_layout).
__device__ __forceinline__ int32_t row_dot(const GpuIndexView& index, int64_t row,
                                           const int32_t* query_words) {
  const int d_pad = index.scan.d_pad;
  int32_t acc = 0;
  if (index.rows_layout) {  // d_pad == kRowsLayoutDim: the row is 8 aligned 16-byte words
    const int4* r = reinterpret_cast<const int4*>(index.scan.codes + row * d_pad);
#pragma unroll
    for (int i = 0; i < kRowsLayoutDim / 16; ++i) {
      const int4 v = __ldg(r + i);
      acc = __dp4a(v.x, query_words[4 * i], acc);
      acc = __dp4a(v.y, query_words[4 * i + 1], acc);
      acc = __dp4a(v.z, query_words[4 * i + 2], acc);
      acc = __dp4a(v.w, query_words[4 * i + 3], acc);
    }
    return acc;
  }
  // Blocked (kernels/layout.h): the row's group g of four dims is 64 bytes after group g - 1.
  const int32_t* r = reinterpret_cast<const int32_t*>(
      index.scan.codes + row / kBlockRows * int64_t(kBlockRows * d_pad) +
      row % kBlockRows * kGroupDims);
  const int groups = d_pad / kGroupDims;
#pragma unroll 8
  for (int g = 0; g < groups; ++g) acc = __dp4a(__ldg(r + g * kBlockRows), query_words[g], acc);
  return acc;
}

// The last of slots [0, nprobe) whose start is at or before r (starts ascend; a slot of nothing
// shares its successor's start, so the slot found holds r).
__device__ __forceinline__ int last_slot_at(const int64_t* start, int nprobe, int64_t r) {
  int lo = 0, hi = nprobe;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (start[mid] <= r)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

// A one-query batch: a thread per row (two: below) of its probed lists, so the pass is one
// chain of dependent loads (the lists, the row's signature, id and pairs' place, the pairs)
// rather than several in turn. The probed lists' rows, each list padded to whole blocks, are one
// range split evenly over the grid, so a long list is shared by many CTAs: list sizes vary
// (lognormal in the benchmark), and a grid of one list per blockIdx.x looped over a long list's
// rows in the few CTAs of its own. Every CTA works out where each probed list starts in the range
// (a scan of the nprobe sizes; slots of -1 and lists whose Bloom summary rules the plan out count
// no rows, as the inversion skips them), then takes its rows kProbedRowsPerThread * kProbedThreads
// at a time, striding by the grid. Every row's word is exact for the query's plan, and row_counts
// gets its eligible and evaluated rows (zeroed by the caller). The eligible rows of sampled blocks
// are scored into the sample as they are found (or, with a PassThreshold, by sampling CTAs of
// their own: probed_list_plans_kernel), and the grid's last CTA does the one-query inversion's
// work (the same slot scan, over chunks instead of rows), so no sample pass, no inversion launch
// and no second stream are needed: a batch whose pass ran beside the inversion on a second
// stream, with the sample drawn by the scan after it, measured 0.168-0.170 ms against
// 0.149-0.158 (H100, 10 % filter; gpu_search.cu).
//
// One row per thread, eight CTAs per SM (32 registers, a few spilled to the L1-cached stack):
// unbounded, the kernel took 58 registers and four CTAs fit an SM, so the 1,152 CTAs of 32
// probed lists at 80M ran in three waves of its chain of loads; with the whole GPU's threads in
// one wave most CTAs take one round. (H200, B = 1, K = 1000, nprobe 32, same call: the pass
// 0.0144 -> 0.0127 ms under a 10 % filter, 0.0167 -> 0.0150 at 1 %; search 0.154-0.166 ->
// 0.153-0.156 and 0.151-0.156 -> 0.150-0.151 ms. The per-list grid at eight CTAs per SM alone
// measured slower, 0.165-0.171.)
//
// Two rows per thread, five CTAs per SM (48 registers): eight CTAs of one row each hold ~270k
// rows at once on an H100, fewer than the ~288k of 32 probed lists at 80M, so some CTAs took a
// second round of the chain; two rows per thread hold ~338k, each step issued for both rows
// before the next. (H100, 256 queries, the pass: 10 % 0.0207-0.0208 -> 0.0185-0.0186 ms, NOT
// 0.0271-0.0272 -> 0.0253-0.0255; three rows per thread at four CTAs measured the same as two.)
constexpr int kProbedThreads = 256;
constexpr int kProbedRowsPerThread = 2;
constexpr int kProbedMinCtas = 5;
using ProbedScan = cub::BlockScan<int64_t, kProbedThreads>;

// The inverting CTA zeroes the inversion's list counts before place_probe_slots sets the probed
// lists'.
__device__ __forceinline__ void zero_list_counts(const GpuIndexView& index, bool inverter,
                                                 const InvertBuffers& inv) {
  if (!inverter) return;
  for (int64_t l = threadIdx.x; l < index.scan.n_lists; l += kProbedThreads) inv.list_count[l] = 0;
  __syncthreads();  // the zeros land before a probed list's count
}

// The probe slots of a one-query pass laid out as one range, the same in every CTA: start[i]
// is slot i's first row of the range (start[nprobe] the range's size, returned) and first[i]
// the block its rows begin at. slot_rows(list, list_rows) gives a usable slot's rows and first
// block (SlotRows); list_rows is the list's size padded to whole blocks. Slots of -1 and lists
// whose Bloom summary rules out `ops` get no rows, as the inversion skips them. In the inverting
// CTA the range is instead the slots' chunks (first[i]: the list's first chunk), and it writes the
// inversion's list_count/list_start/list_queries (its counts zeroed first: zero_list_counts): a
// place of its own for each (query, list) pair, as one_query_invert_kernel gives. Every thread
// calls it.
struct SlotRange {
  int64_t rows;
  int64_t first_block;
};
template <class SlotRows>
__device__ __forceinline__ int64_t place_probe_slots(const GpuIndexView& index,
                                                     const int32_t* probes, int nprobe,
                                                     const FilterOp* ops, int n_ops, bool inverter,
                                                     const InvertBuffers& inv,
                                                     ProbedScan::TempStorage& scan, int64_t* start,
                                                     int64_t* first, SlotRows slot_rows) {
  const int words = index.scan.bloom_words;
  int64_t total = 0;
  for (int base = 0; base < nprobe; base += kProbedThreads) {
    const int i = base + threadIdx.x;
    const int32_t list = i < nprobe ? probes[i] : -1;
    int64_t rows = 0;
    if (list >= 0) {
      rows = (index.scan.list_sizes[list] + kBlockRows - 1) / kBlockRows * kBlockRows;
      if (rows > 0 && ops &&
          !eval_plan_summary(ops, n_ops, index.scan.list_summaries + int64_t(list) * words))
        rows = 0;
    }
    int64_t size = 0;
    if (inverter) {
      const int32_t first_chunk = rows > 0 ? index.list_first_chunk[list] : 0;
      size = rows > 0 ? index.list_first_chunk[list + 1] - first_chunk : 0;
      if (i < nprobe) first[i] = first_chunk;
      if (rows > 0) inv.list_count[list] = 1, inv.list_start[list] = i, inv.list_queries[i] = 0;
    } else if (rows > 0) {
      const SlotRange range = slot_rows(list, rows);
      size = range.rows;
      first[i] = range.first_block;
    }
    int64_t before = 0, slots_size = 0;
    ProbedScan(scan).ExclusiveSum(size, before, slots_size);
    if (i < nprobe) start[i] = total + before;
    total += slots_size;
    __syncthreads();  // the scan's storage is used again
  }
  if (threadIdx.x == 0) start[nprobe] = total;
  __syncthreads();
  return total;
}

// The inverting CTA's tasks: the chunks of the slots' lists, in slot order.
__device__ __forceinline__ void write_probe_tasks(const int64_t* start, const int64_t* first,
                                                  int nprobe, int64_t total,
                                                  const InvertBuffers& inv) {
  if (threadIdx.x == 0) *inv.n_tasks = int32_t(total);
  for (int64_t t = threadIdx.x; t < total; t += kProbedThreads) {
    const int slot = last_slot_at(start, nprobe, t);
    inv.tasks[t] = int32_t(first[slot] + t - start[slot]);
  }
}

// The query's codes as d_pad / 4 words in shared memory, for row_dot.
__device__ __forceinline__ void stage_query_words(const GpuIndexView& index,
                                                  const GpuQueriesView& queries, int32_t* words) {
  for (int i = threadIdx.x; i < index.scan.d_pad / kGroupDims; i += kProbedThreads)
    words[i] = __ldg(reinterpret_cast<const int32_t*>(queries.codes) + i);
}

// A probed list's sampled blocks (index a multiple of stride) as a slot's rows.
__device__ __forceinline__ SlotRange sampled_rows(const GpuIndexView& index, int32_t list,
                                                  int64_t rows, int64_t stride) {
  const int64_t begin = index.scan.list_offsets[list] / kBlockRows;
  const int64_t end = begin + rows / kBlockRows;
  const int64_t first = (begin + stride - 1) / stride * stride;
  return SlotRange{first < end ? ((end - 1 - first) / stride + 1) * kBlockRows : 0, first};
}

// A row's id and the place of its feature pairs, loaded beside its signature (Row), and its
// eligibility under the query's plan (ops; null: none): live, then Bloom-possible and definite
// or passing the exact check. Padding rows past a list's end hold kEmptyId, as every empty row
// does, so they are never eligible.
struct RowFeatures {
  int64_t id, pairs_at;
  int32_t n_pairs;

  __device__ __forceinline__ void load(const GpuIndexView& index, const Row& row, int64_t at,
                                       const FilterOp* ops) {
    id = row.live ? index.scan.ids[at] : kEmptyId;
    pairs_at = row.live && ops ? index.scan.features.offset[at] : 0;
    n_pairs = row.live && ops ? index.scan.features.count[at] : 0;
  }

  __device__ __forceinline__ bool eligible(const GpuIndexView& index, const Row& row,
                                           const CompiledPlan& compiled, const FilterOp* ops,
                                           int n_ops) const {
    bool ok = id != kEmptyId;
    if (ops) {
      const PlanResult res = row.eval(compiled, ops, n_ops, index.scan.bloom_words);
      ok = ok && res.possible &&
           (res.definite || pairs_pass_exactly(index.scan.features, ops, n_ops, pairs_at, n_pairs));
    }
    return ok;
  }
};

// Appends row `at`'s score to the sample when `take` (called by whole warps: the slots are
// reserved per warp).
__device__ __forceinline__ void add_to_sample(const GpuIndexView& index,
                                              const GpuQueriesView& queries,
                                              const int32_t* query_words,
                                              const ProbedSample& sample, int64_t at, bool take) {
  const uint32_t slot = warp_reserve(sample.count, take);
  if (take && slot < sample.cap)
    sample.scores[slot] =
        score_of(row_dot(index, at, query_words), queries.scales[0], index.scan.scales[at]);
}

// The sampling CTAs of a pass with its threshold (PassThreshold): the eligible rows of the
// sampled blocks, the plan and the exact check evaluated for each, scored into the sample; then
// the last of them to finish selects the threshold (CUDA's threadfence reduction: every thread's
// scores are fenced before its CTA takes a ticket).
__device__ __forceinline__ void draw_sample_and_select(
    const GpuIndexView& index, const GpuQueriesView& queries, const int64_t* start,
    const int64_t* first_block, int nprobe, int64_t total, const CompiledPlan& compiled,
    const FilterOp* ops, int n_ops, const int32_t* query_words, const ProbedSample& sample,
    int sample_ctas, const PassThreshold& threshold, SelectShared& select, bool& last) {
  const int64_t stride = sample.stride;
  for (int64_t r0 = int64_t(blockIdx.x) * kProbedThreads; r0 < total;
       r0 += int64_t(sample_ctas) * kProbedThreads) {  // CTA-uniform
    const int64_t r = r0 + threadIdx.x;
    const int lo = last_slot_at(start, nprobe, r);
    Row row;
    row.load(index, r < total ? first_block[lo] + (r - start[lo]) / kBlockRows * stride : 0,
             r < total);
    const int64_t at = row.block * kBlockRows + threadIdx.x % kBlockRows;
    RowFeatures features;
    features.load(index, row, at, ops);
    add_to_sample(index, queries, query_words, sample, at,
                  features.eligible(index, row, compiled, ops, n_ops));
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(threshold.done, 1u) == uint32_t(sample_ctas - 1);
  __syncthreads();
  if (!last) return;
  __threadfence();
  const int64_t n = min(int64_t(*reinterpret_cast<volatile uint32_t*>(sample.count)), sample.cap);
  float t = -INFINITY;  // fewer than rank scores, as launch_select_thresholds gives
  if (n >= threshold.rank) {
    const uint32_t key =
        block_select<uint32_t>([&](int64_t i) { return descending_key(__ldcg(sample.scores + i)); },
                               n, threshold.rank, select);
    if (key < descending_key(-INFINITY)) t = score_of_key(key);
  }
  if (threadIdx.x == 0) *threshold.out = t;
}

// Without kPassThreshold every row CTA also draws the sample from the rows it evaluates. With it
// (PassThreshold) CTAs [0, sample_ctas) draw it alone from the sampled blocks and select the
// threshold (draw_sample_and_select) while CTAs [sample_ctas, last) write every row's word, so
// the select costs the search nothing where the words take longer than sample and select, and
// the threshold kernel's launch goes; rows of sampled blocks are then evaluated twice.
template <int kRowsPerThread, int kMinCtas, bool kPassThreshold>
__global__ void __launch_bounds__(kProbedThreads, kMinCtas)
    probed_list_plans_kernel(const __grid_constant__ GpuIndexView index,
                             const __grid_constant__ GpuQueriesView queries, const int32_t* probes,
                             int nprobe, uint32_t* out, unsigned long long* row_counts,
                             const ProbedSample sample, const InvertBuffers inv, int sample_ctas,
                             const PassThreshold threshold) {
  __shared__ ProbedScan::TempStorage scan;
  __shared__ CompiledPlan compiled;
  __shared__ unsigned int cta_possible, cta_rows;
  __shared__ int32_t query_words[kMaxDim / kGroupDims];  // the sample's query codes
  __shared__ SelectShared select;
  __shared__ bool last_sampler;
  extern __shared__ int64_t range_shared[];
  // Each slot's first row and first block (its first sampled block, in a sampling CTA); in the
  // inverting CTA, the slot's first task (chunk of the slots before it) and its list's first
  // chunk.
  int64_t* start = range_shared;                     // [nprobe + 1]
  int64_t* first_block = range_shared + nprobe + 1;  // [nprobe]
  const int32_t plan = queries.plan_of_query[0];
  const bool filtered = plan >= 0;
  const bool inverter = blockIdx.x == gridDim.x - 1;
  const bool sampler = kPassThreshold && int(blockIdx.x) < sample_ctas;
  const bool rows_draw_sample = !kPassThreshold;
  const FilterOp* ops = filtered ? queries.plan_ops + queries.plan_begin[plan] : nullptr;
  const int n_ops = filtered ? queries.plan_len[plan] : 0;
  if (threadIdx.x == 0) {
    if (filtered) compiled.compile(ops, n_ops);
    cta_possible = cta_rows = 0;
  }
  zero_list_counts(index, inverter, inv);
  if (sampler || (rows_draw_sample && !inverter)) stage_query_words(index, queries, query_words);
  const int64_t total = place_probe_slots(
      index, probes, nprobe, ops, n_ops, inverter, inv, scan, start, first_block,
      [&](int32_t list, int64_t rows) {
        return sampler ? sampled_rows(index, list, rows, sample.stride)
                       : SlotRange{rows, index.scan.list_offsets[list] / kBlockRows};
      });
  if (inverter) {
    write_probe_tasks(start, first_block, nprobe, total, inv);
    return;
  }
  if (sampler) {
    draw_sample_and_select(index, queries, start, first_block, nprobe, total, compiled, ops, n_ops,
                           query_words, sample, sample_ctas, threshold, select, last_sampler);
    return;
  }
  if (!filtered && !rows_draw_sample) return;  // no words to write
  const int64_t n_blocks = index.scan.n_rows / kBlockRows;
  const int row_ctas = int(gridDim.x) - 1 - sample_ctas;
  constexpr int64_t kCtaRows = int64_t(kRowsPerThread) * kProbedThreads;
  for (int64_t r0 = int64_t(int(blockIdx.x) - sample_ctas) * kCtaRows; r0 < total;
       r0 += int64_t(row_ctas) * kCtaRows) {  // CTA-uniform
    // Starts are whole blocks apart, so a half-warp's rows are one block of one list. A thread's
    // rows are kProbedThreads apart; each step below is issued for all of them before the next.
    Row row[kRowsPerThread];
    RowFeatures features[kRowsPerThread];
    int64_t at[kRowsPerThread];
#pragma unroll
    for (int u = 0; u < kRowsPerThread; ++u) {
      const int64_t r = r0 + u * kProbedThreads + threadIdx.x;
      const int lo = last_slot_at(start, nprobe, r);
      row[u].load(index, r < total ? first_block[lo] + (r - start[lo]) / kBlockRows : 0, r < total);
      at[u] = row[u].block * kBlockRows + threadIdx.x % kBlockRows;
      features[u].load(index, row[u], at[u], ops);
    }
    bool ok[kRowsPerThread];
#pragma unroll
    for (int u = 0; u < kRowsPerThread; ++u)
      ok[u] = features[u].eligible(index, row[u], compiled, ops, n_ops);
    // The sample: an eligible row of a sampled block is scored once its eligibility is known.
    // Its code loads issued beside the signature's instead measured no faster (more registers
    // spilled).
    if (rows_draw_sample) {
#pragma unroll
      for (int u = 0; u < kRowsPerThread; ++u)
        add_to_sample(index, queries, query_words, sample, at[u],
                      ok[u] && int32_t(row[u].block) % sample.stride == 0);
    }
    if (!filtered) continue;  // CTA-uniform
#pragma unroll
    for (int u = 0; u < kRowsPerThread; ++u) {
      const uint32_t w = block_word(PlanResult{ok[u], ok[u]});
      if (row[u].live && threadIdx.x % kBlockRows == 0)
        out[int64_t(plan) * n_blocks + row[u].block] = w;
      const int possible = __popc(__ballot_sync(0xFFFFFFFFu, ok[u]));
      const int live = __popc(__ballot_sync(0xFFFFFFFFu, row[u].live));
      if ((threadIdx.x & 31) == 0 && live) {
        atomicAdd(&cta_possible, possible);
        atomicAdd(&cta_rows, live);
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0 && filtered) {
    if (cta_possible) atomicAdd(row_counts + plan, cta_possible);
    if (cta_rows) atomicAdd(row_counts + queries.n_plans, cta_rows);
  }
}

// A one-query IVF batch whose rows' words are known (the filter cache's, exact for every row)
// or that has no filter: the pass reads only the sampled blocks of its probed lists (index a
// multiple of sample.stride), one thread per row, and scores each eligible row into the sample;
// its last CTA inverts, as probed_list_plans_kernel's does. It takes the place of the one-query
// inversion's launch and of the scan's sample pass, whose CTAs each staged a list's queries and
// plans before reading one or two sampled blocks. Same sample, so the same threshold. Eligible:
// kFiltered, the row's bit in the words; else every live row.
template <bool kFiltered>
__global__ void __launch_bounds__(kProbedThreads)
    probed_sample_kernel(const __grid_constant__ GpuIndexView index,
                         const __grid_constant__ GpuQueriesView queries, const int32_t* probes,
                         int nprobe, const uint32_t* words, const ProbedSample sample,
                         const InvertBuffers inv) {
  __shared__ ProbedScan::TempStorage scan;
  __shared__ int32_t query_words[kMaxDim / kGroupDims];
  extern __shared__ int64_t range_shared[];
  // Each slot's first row and its list's first sampled block (inverting CTA: as above).
  int64_t* start = range_shared;                       // [nprobe + 1]
  int64_t* first_sampled = range_shared + nprobe + 1;  // [nprobe]
  const int32_t plan = kFiltered ? queries.plan_of_query[0] : -1;
  const bool inverter = blockIdx.x == gridDim.x - 1;
  const FilterOp* ops = plan >= 0 ? queries.plan_ops + queries.plan_begin[plan] : nullptr;
  const int n_ops = plan >= 0 ? queries.plan_len[plan] : 0;
  const int64_t stride = sample.stride;
  zero_list_counts(index, inverter, inv);
  if (!inverter) stage_query_words(index, queries, query_words);
  const int64_t total = place_probe_slots(
      index, probes, nprobe, ops, n_ops, inverter, inv, scan, start, first_sampled,
      [&](int32_t list, int64_t rows) { return sampled_rows(index, list, rows, stride); });
  if (inverter) {
    write_probe_tasks(start, first_sampled, nprobe, total, inv);
    return;
  }
  const int64_t n_blocks = index.scan.n_rows / kBlockRows;
  const int r_in_block = threadIdx.x % kBlockRows;
  for (int64_t r0 = int64_t(blockIdx.x) * kProbedThreads; r0 < total;
       r0 += int64_t(gridDim.x - 1) * kProbedThreads) {  // CTA-uniform
    const int64_t r = r0 + threadIdx.x;
    int64_t at = 0;
    bool ok = false;
    if (r < total) {
      const int lo = last_slot_at(start, nprobe, r);
      const int64_t block = first_sampled[lo] + (r - start[lo]) / kBlockRows * stride;
      at = block * kBlockRows + r_in_block;
      if (kFiltered && plan >= 0) {
        // Exact words: a set bit is a live row that passes the filter.
        ok = (__ldg(words + int64_t(plan) * n_blocks + block) >> r_in_block) & 1u;
      } else {
        // The rows past a list's end and deleted rows hold kEmptyId.
        ok = __ldg(index.scan.ids + at) != kEmptyId;
      }
    }
    add_to_sample(index, queries, query_words, sample, at, ok);
  }
}

// Pairs whose plans a CTA holds at once (one list's queries; more are taken in turns, each
// reading the list's signatures again).
constexpr int kPairBatch = 32;

// One CTA per list (those no query probes return at once): its pairs' plans are read and
// compiled once, by all threads at once (pair -> query -> plan is a chain of dependent loads),
// then its blocks go kChunksInFlight chunks of rows at a time, each pair's plan evaluated on
// them. Every pair belongs to one list, so its row count is a plain store, summed in shared
// memory.
// Three CTAs per SM (40 registers, 48 bytes of stack): the pass waits on its loads, and more
// resident CTAs cover them. With the register count unbounded (77), one CTA per SM fit and the
// pass took 0.345 ms, against 0.204 (H200, IVF B = 64, per-query filters).
#ifndef ARGENT_PAIR_PLANS_MIN_BLOCKS
#define ARGENT_PAIR_PLANS_MIN_BLOCKS 3
#endif
__global__ void __launch_bounds__(kThreads, ARGENT_PAIR_PLANS_MIN_BLOCKS) pair_plans_kernel(
    const __grid_constant__ GpuIndexView index, const __grid_constant__ GpuQueriesView queries,
    const __grid_constant__ ListQueries lists, int64_t stride, uint32_t* out,
    uint32_t* pair_rows) {
  __shared__ CompiledPlan compiled[kPairBatch];
  __shared__ int32_t op_begin[kPairBatch];  // -1: the pair's query has no filter
  __shared__ int32_t op_count[kPairBatch];
  __shared__ uint32_t rows_possible[kPairBatch];
  const int64_t list = blockIdx.x;
  const int32_t count = lists.count[list];
  if (count == 0) return;
  const int words = index.scan.bloom_words;
  const int32_t pair0 = lists.start[list];
  const int64_t first_block = index.scan.list_offsets[list] / kBlockRows;
  const int64_t list_rows = index.scan.list_sizes[list];
  constexpr int kRowsInFlight = kChunksInFlight * kThreads;
  for (int base = 0; base < count; base += kPairBatch) {
    const int batch = min(kPairBatch, count - base);
    __syncthreads();  // the previous batch is done with the shared arrays
    if (int(threadIdx.x) < batch) {
      const int32_t plan = queries.plan_of_query[lists.queries[pair0 + base + threadIdx.x]];
      op_begin[threadIdx.x] = plan >= 0 ? queries.plan_begin[plan] : -1;
      op_count[threadIdx.x] = plan >= 0 ? queries.plan_len[plan] : 0;
      if (plan >= 0)
        compiled[threadIdx.x].compile(queries.plan_ops + op_begin[threadIdx.x],
                                      op_count[threadIdx.x]);
      rows_possible[threadIdx.x] = 0;
    }
    __syncthreads();
    for (int64_t row0 = 0; row0 < list_rows; row0 += kRowsInFlight) {
      RowsInFlight rows;
      rows.load_list(index, first_block, list_rows, row0);
      for (int i = 0; i < batch; ++i) {
        if (op_begin[i] < 0) continue;  // CTA-uniform
        const FilterOp* ops = queries.plan_ops + op_begin[i];
        const int n_ops = op_count[i];
        const int64_t at = int64_t(pair0 + base + i) * stride - first_block;
        uint32_t possible = 0;
#pragma unroll
        for (int u = 0; u < kChunksInFlight; ++u) {
          const PlanResult r = rows.row[u].eval(compiled[i], ops, n_ops, words);
          const uint32_t w = block_word(r);
          if (rows.row[u].live && threadIdx.x % kBlockRows == 0) out[at + rows.row[u].block] = w;
          possible += __popc(__ballot_sync(0xFFFFFFFFu, r.possible));
        }
        if ((threadIdx.x & 31) == 0 && possible) atomicAdd(&rows_possible[i], possible);
      }
    }
    __syncthreads();
    if (int(threadIdx.x) < batch)
      pair_rows[pair0 + base + threadIdx.x] = rows_possible[threadIdx.x];
  }
}

// The rows of blocks the sample pass reads (index a multiple of sample_stride) get exact bits:
// possible and definite iff the row is live and passes the feature check, so that the sample
// pass makes neither check. Here the checks' dependent loads run all at once, a half-warp per
// sampled block (its plans or pairs in turn); in the sample pass they sat in each warp's chain of a few
// blocks per list (H200, IVF B = 64 under a 10 % filter: sample 0.146 -> 0.105 ms, per-query
// filters 0.217 -> 0.115). A pass of its own: inlined into the pre-passes, the checks cost
// their loops registers (the per-pair pass spilled 136 bytes at its 40 registers) and the
// pre-passes slowed by more than the sample gained.
constexpr int kExactThreads = 128;

// Rewrites the word at `word` (one half-warp, lane r = row r of `block`; every lane of the
// warp calls it, valid or not, for the ballot).
__device__ __forceinline__ void make_word_exact(const GpuIndexView& index, const FilterOp* ops,
                                                int n_ops, int64_t block, bool valid,
                                                uint32_t* word) {
  const int r = threadIdx.x % kBlockRows;
  const uint32_t w = valid ? *word : 0u;
  const int64_t row = block * kBlockRows + r;
  const bool ok = ((w >> r) & 1u) && index.scan.ids[row] != kEmptyId &&
                  (((w >> (16 + r)) & 1u) || row_passes_exactly(index.scan.features, ops, n_ops, row));
  const uint32_t bits = (__ballot_sync(0xFFFFFFFFu, ok) >> (threadIdx.x & 16)) & 0xFFFFu;
  if (valid && r == 0) *word = bits | bits << 16;
}

// A half-warp per (task, sampled block of its chunk): the words of every plan
// (pair_stride == 0, launch_block_plans) or of every pair of the chunk's list.
__global__ void __launch_bounds__(kExactThreads) exact_sampled_words_kernel(
    const __grid_constant__ GpuIndexView index, const __grid_constant__ GpuQueriesView queries,
    const __grid_constant__ ListQueries lists, const int32_t* tasks, const int32_t* n_tasks,
    int n_plans, int64_t pair_stride, int sample_stride, uint32_t* out) {
  // A chunk of kChunkBlocks blocks holds at most this many multiples of the stride.
  const int64_t per_chunk = (int64_t(kChunkBlocks) + sample_stride - 1) / sample_stride;
  const int64_t items = int64_t(*n_tasks) * per_chunk;
  const int64_t n_blocks = index.scan.n_rows / kBlockRows;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t base = 2 * warp; base < items; base += 2 * warps) {  // warp-uniform
    const int64_t item = base + ((threadIdx.x >> 4) & 1);
    bool valid = item < items;
    int64_t block = 0;
    int32_t chunk = 0;
    if (valid) {
      chunk = tasks[item / per_chunk];
      const int64_t first = index.chunk_first_block[chunk];
      block = (first + sample_stride - 1) / sample_stride * sample_stride +
              item % per_chunk * sample_stride;
      valid = block < first + index.chunk_blocks[chunk];
    }
    if (pair_stride == 0) {
      for (int plan = 0; plan < n_plans; ++plan)
        make_word_exact(index, queries.plan_ops + queries.plan_begin[plan],
                        queries.plan_len[plan], block, valid, out + plan * n_blocks + block);
      continue;
    }
    int32_t start = 0, count = 0;
    int64_t first = 0;
    if (valid) {
      const int32_t list = index.chunk_list[chunk];
      start = lists.start[list];
      count = lists.count[list];
      first = index.scan.list_offsets[list] / kBlockRows;
    }
    const int most = __reduce_max_sync(0xFFFFFFFFu, count);  // the two half-warps' lists
    for (int i = 0; i < most; ++i) {
      const int64_t pair = start + i;
      const int32_t plan = i < count ? queries.plan_of_query[lists.queries[pair]] : -1;
      const bool has_words = plan >= 0;  // unfiltered pairs have none
      make_word_exact(index, queries.plan_ops + (has_words ? queries.plan_begin[plan] : 0),
                      has_words ? queries.plan_len[plan] : 0, block, has_words,
                      out + pair * pair_stride + block - first);
    }
  }
}

// The resident grid of exact_sampled_words_kernel, at most one half-warp per item.
unsigned exact_words_grid(int64_t max_items) {
  const int64_t grid =
      resident_ctas(reinterpret_cast<const void*>(exact_sampled_words_kernel), kExactThreads, 0);
  const int64_t items_per_cta = kExactThreads / kBlockRows;
  return unsigned(std::max<int64_t>(1, std::min(grid, (max_items + items_per_cta - 1) / items_per_cta)));
}

void launch_exact_sampled_words(const GpuIndexView& index, const GpuQueriesView& queries,
                                const ListQueries& lists, const int32_t* tasks,
                                const int32_t* n_tasks, int n_plans, int64_t pair_stride,
                                int sample_stride, uint32_t* out, cudaStream_t stream) {
  if (sample_stride <= 0) return;
  const int64_t per_chunk = (int64_t(kChunkBlocks) + sample_stride - 1) / sample_stride;
  exact_sampled_words_kernel<<<exact_words_grid(index.n_chunks * per_chunk), kExactThreads, 0,
                               stream>>>(index, queries, lists, tasks, n_tasks, n_plans,
                                         pair_stride, sample_stride, out);
  ARGENT_CUDA_CHECK_LAUNCH("exact_sampled_words_kernel");
}

}  // namespace

void launch_block_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                        const ListQueries& lists, const int32_t* tasks, const int32_t* n_tasks,
                        int n_plans, int sample_stride, uint32_t* out,
                        unsigned long long* row_counts, cudaStream_t stream) {
  ARGENT_CUDA_CHECK(
      cudaMemsetAsync(row_counts, 0, sizeof(unsigned long long) * (n_plans + 1), stream));
  if (index.n_chunks == 0 || n_plans == 0) return;
  const int64_t rounds = (index.n_chunks + kChunksInFlight - 1) / kChunksInFlight;
  block_plans_kernel<<<pre_pass_grid(rounds), kThreads, 0, stream>>>(index, queries, tasks, n_tasks,
                                                                    n_plans, out, row_counts);
  ARGENT_CUDA_CHECK_LAUNCH("block_plans_kernel");
  launch_exact_sampled_words(index, queries, lists, tasks, n_tasks, n_plans, 0, sample_stride, out,
                             stream);
}

void launch_probed_list_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                              const int32_t* probes, int nprobe, uint32_t* out,
                              unsigned long long* row_counts, const ProbedSample& sample,
                              const InvertBuffers& inv, cudaStream_t stream,
                              const PassThreshold* threshold) {
  ARGENT_CHECK(queries.n == 1 && queries.plan_of_query && queries.n_plans >= 1,
               "launch_probed_list_plans: one query with plans, not ", queries.n, " queries");
  ARGENT_CHECK(nprobe >= 1 && nprobe <= kMaxProbedSlots, "launch_probed_list_plans: ", nprobe,
               " probe slots outside [1, ", kMaxProbedSlots, "]");
  ARGENT_CHECK(sample.stride >= 1 && sample.count && inv.list_count,
               "launch_probed_list_plans: the sample's and the inversion's buffers are required");
  ARGENT_CHECK(!threshold || (threshold->rank >= 1 && threshold->out && threshold->done),
               "launch_probed_list_plans: a threshold in the pass needs its rank, its output and "
               "a zeroed counter");
  const size_t smem = sizeof(int64_t) * size_t(2 * nprobe + 1);
  auto kernel = threshold ? probed_list_plans_kernel<kProbedRowsPerThread, kProbedMinCtas, true>
                          : probed_list_plans_kernel<kProbedRowsPerThread, kProbedMinCtas, false>;
  const int resident = resident_ctas(reinterpret_cast<const void*>(kernel), kProbedThreads, smem);
  // The sampling CTAs: room for twice the typical sample in one round, at most an eighth of the
  // resident grid.
  const int sample_ctas =
      threshold ? int(std::clamp<int64_t>(
                      (2 * threshold->typical_sample + kProbedThreads - 1) / kProbedThreads, 1,
                      std::max(1, resident / 8)))
                : 0;
  // No more row CTAs than the rows could fill, nor than the GPU holds at once.
  const int64_t most_rows = int64_t(nprobe) * index.max_list_rows;
  const int64_t cta_rows = int64_t(kProbedRowsPerThread) * kProbedThreads;
  const int row_ctas = int(std::clamp<int64_t>((most_rows + cta_rows - 1) / cta_rows, 1,
                                               std::max(1, resident - sample_ctas - 1)));
  // The sampling CTAs, the row CTAs, then the inverting one.
  kernel<<<sample_ctas + row_ctas + 1, kProbedThreads, smem, stream>>>(
      index, queries, probes, nprobe, out, row_counts, sample, inv, sample_ctas,
      threshold ? *threshold : PassThreshold{});
  ARGENT_CUDA_CHECK_LAUNCH("probed_list_plans_kernel");
}

void launch_probed_sample(const GpuIndexView& index, const GpuQueriesView& queries,
                          const int32_t* probes, int nprobe, const uint32_t* words,
                          const ProbedSample& sample, const InvertBuffers& inv,
                          cudaStream_t stream) {
  ARGENT_CHECK(queries.n == 1, "launch_probed_sample: one query, not ", queries.n);
  ARGENT_CHECK(words || !queries.plan_of_query,
               "launch_probed_sample: a filtered query needs its rows' words");
  ARGENT_CHECK(nprobe >= 1 && nprobe <= kMaxProbedSlots, "launch_probed_sample: ", nprobe,
               " probe slots outside [1, ", kMaxProbedSlots, "]");
  ARGENT_CHECK(sample.stride >= 1 && sample.count && inv.list_count,
               "launch_probed_sample: the sample's and the inversion's buffers are required");
  const size_t smem = sizeof(int64_t) * size_t(2 * nprobe + 1);
  const int64_t list_blocks = (index.max_list_rows + kBlockRows - 1) / kBlockRows;
  const int64_t most_rows = int64_t(nprobe) * (list_blocks / sample.stride + 1) * kBlockRows;
  auto launch = [&](auto kernel) {
    const int resident = resident_ctas(reinterpret_cast<const void*>(kernel), kProbedThreads, smem);
    const int row_ctas = int(std::clamp<int64_t>((most_rows + kProbedThreads - 1) / kProbedThreads,
                                                 1, std::max(1, resident - 1)));
    kernel<<<row_ctas + 1, kProbedThreads, smem, stream>>>(index, queries, probes, nprobe, words,
                                                           sample, inv);
  };
  if (queries.plan_of_query)
    launch(probed_sample_kernel<true>);
  else
    launch(probed_sample_kernel<false>);
  ARGENT_CUDA_CHECK_LAUNCH("probed_sample_kernel");
}

void launch_pair_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                       const ListQueries& lists, const int32_t* tasks, const int32_t* n_tasks,
                       int64_t n_pairs, int64_t stride, int sample_stride, uint32_t* out,
                       uint32_t* pair_rows, cudaStream_t stream) {
  // No memset of pair_rows: the kernel writes every pair's count (0 for an unfiltered query),
  // and the scan reads only pairs of ListQueries.
  if (index.scan.n_lists == 0 || n_pairs == 0) return;
  // A CTA per list: the block scheduler then balances lists of very different sizes. A grid
  // that strode over the lists left the SMs idle 45 % of the time waiting on the CTAs that drew
  // the longest lists (ncu, H200, IVF B = 64). A grid over the tasks (chunks of 512 rows, each
  // evaluated under its list's pairs, plans compiled once per batch) measured slower still:
  // 0.31 against 0.24 ms at B = 64, 0.93 against 0.73 at B = 256.
  pair_plans_kernel<<<unsigned(index.scan.n_lists), kThreads, 0, stream>>>(index, queries, lists,
                                                                           stride, out, pair_rows);
  ARGENT_CUDA_CHECK_LAUNCH("pair_plans_kernel");
  launch_exact_sampled_words(index, queries, lists, tasks, n_tasks, queries.n_plans, stride,
                             sample_stride, out, stream);
}

}  // namespace cuda
}  // namespace argent
