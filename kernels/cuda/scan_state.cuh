// The fused scan's parameters and shared state (kernels/cuda/scan_kernel.cu): its tuning
// constants, ScanParams, the queries a CTA stages in shared memory and their local filter plans.
// Included by scan_kernel.cu alone, in order (scan_state, scan_hits, scan_blocks, scan_runs):
// its definitions are internal to that translation unit (an unnamed namespace).
#pragma once

#include <climits>
#include <cstdint>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

constexpr int kWarps = 8;
#ifndef ARGENT_SCAN_GROUP_TILES
#define ARGENT_SCAN_GROUP_TILES 4
#endif
#ifndef ARGENT_SCAN_MIN_BLOCKS
#define ARGENT_SCAN_MIN_BLOCKS 2
#endif
#ifndef ARGENT_SCAN_WAVES
#define ARGENT_SCAN_WAVES 4
#endif
#ifndef ARGENT_SCAN_PREFETCH_TILES
#define ARGENT_SCAN_PREFETCH_TILES 2
#endif
#ifndef ARGENT_SCAN_STAGES
#define ARGENT_SCAN_STAGES 4
#endif
// The scan's tuning parameters (measured on an H200, docs/benchmarks.md): tiles of 8 queries
// multiplied per B-fragment load (independent accumulator chains), CTAs per SM the register
// budget is cut for, persistent-grid waves of the collect pass, the ring's stages, and the
// largest run (in tiles) that prefetches into registers instead.
constexpr int kGroupTiles = ARGENT_SCAN_GROUP_TILES;
// Blocks of a warp's ring in shared memory (d_pad <= 128): the copies of kStages - 1 blocks are
// in flight while the warp multiplies one, whatever its multiplications cost.
constexpr int kStages = ARGENT_SCAN_STAGES;
static_assert(kStages >= 2 && (kStages & (kStages - 1)) == 0, "kStages: a power of two >= 2");
// Runs of at most this many tiles of 8 queries prefetch into registers instead (scan_run_prefetch).
// H200, unfiltered exact search, collect: B = 16 (two tiles) 3.19 -> 2.92-2.95 ms with 2; up to 8
// tiles, B = 32 3.29 -> 3.65 and B = 64 4.52 -> 6.06 (one block ahead does not cover the longer
// multiply; the ring keeps three in flight).
constexpr int kPrefetchMaxTiles = ARGENT_SCAN_PREFETCH_TILES;
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
  int flat_chunk;     // flat collect: slots a warp reserves at once (ScanPass::out_keys)
  int pending_offset; // deferred kernel: the warps' Pending, bytes from shared memory's start
  int staged_ops;     // filter ops copied to shared memory (all of the batch's), 0: read globally
  int ring_bytes;     // the warps' block rings and their meta slots, at the front of shared memory
  bool sig_in_regs;   // filtered batch with <= 2 signature words: a row's words fit in registers
  bool rows;          // codes row-major (GpuIndexView::rows_layout, d_pad == 128)
  // The batch has one plan (queries.n_plans == 1): a filtered query's plan is 0, its ops are
  // all of plan_ops (GpuQueriesView's layout), and the staging reads neither plan_begin nor
  // plan_len, nor the pass's counts after the query's plan: loads a CTA would otherwise wait on
  // one after another before its first block.
  bool one_plan;
};

constexpr int kMaxStagedOps = 256;

// What a lane knows of its two rows (2g and 2g + 1, load_a_fragment_paired) of the current
// block. The Bloom plans are evaluated once per row (not once per row and query) when the
// staged queries use at most kLocalPlans distinct plans: 4 bits per local plan (possible r0,
// definite r0, possible r1, definite r1). known = false: too many plans; the slow path
// evaluates each pair from memory.
struct RowSigs {
  float scale[2];
  uint32_t plans;
  uint32_t uniform_mask;  // one plan for every staged query: bit e = element e possible
  bool known;
  bool uniform;
};

// Distinct filter plans among the staged queries for which the scan evaluates each row once.
// One lane of each 4-lane group per plan: the mma fragment layout gives every row to 4 lanes.
constexpr int kLocalPlans = 4;

// The smallest dot product that could still score >= T for a block whose largest item scale is
// 1 / inv_max. t_over_scale = T / query_scale, already lowered by 1e-5 (staged), a margin that
// covers the float roundings of score_of; the -1 and rounding down keep the bound conservative.
// t_over_scale = -inf (T <= 0, or the sample pass) gives INT_MIN, +inf gives INT_MAX (the
// conversion saturates); a NaN from 0 * inf converts to 0, and only arises for a block of zero
// scales, whose rows all score 0 < T.
__device__ __forceinline__ int32_t dot_floor(float t_over_scale, float inv_max) {
  return __float2int_rd(__fmaf_rn(t_over_scale, inv_max, -1.f));
}

// Where word h (0, 1) of k-chunk c of lane `lane`'s B fragment for tile `tile` is staged. Lanes
// are the fastest index, so that the lanes a shared load serves at once (8 for a 16-byte
// load, 16 for an 8-byte one) read consecutive bytes: with each lane's words contiguous
// instead, lanes 0 and 4 hit the same banks and every load took twice the wavefronts (ncu: the
// L1/shared pipe is what bounds the scan at B = 64). Even chunk counts pair chunks (one 16-byte
// load per pair), odd ones take one 8-byte load per chunk.
__device__ __forceinline__ size_t frag_word(int tile, int c, int lane, int h, int nc) {
  if (nc % 2 == 0) return ((size_t(tile) * (nc / 2) + c / 2) * 32 + lane) * 4 + (c % 2) * 2 + h;
  return ((size_t(tile) * nc + c) * 32 + lane) * 2 + h;
}

// What a ring stage holds besides the block's codes, copied with them (cp.async) or written by
// the lane that issued the copy.
struct StageMeta {
  int32_t block;
  int32_t list_end;
  float inv_max;                        // block_inv_max_scale[block]
  uint32_t plan_words[kLocalPlans];     // pre-pass words of the local plans (filtered batches)
  int32_t unused;
};
static_assert(sizeof(StageMeta) == 32, "StageMeta: two 16-byte words");

// What a compacted stage holds besides its codes (scan_run_compact): the rows of its 16 slots
// (-1: padding), their scales (0 for padding, copied with cp.async) and which are definitely
// eligible. A stage's meta slot holds a StageMeta or a CompactMeta (a run uses one kind), and
// only filtered kernels size the slots for a CompactMeta: at B = 256 the unfiltered kernel
// fits two CTAs per SM with under 100 bytes to spare, the filtered one with a few KiB (two
// separate arrays left it one CTA per SM: exact B = 256 under a 45 % filter, 15.8 -> 23.4 ms).
struct CompactMeta {
  int32_t rows[kBlockRows];
  float scales[kBlockRows];
  uint32_t definite;  // bit j: slot j definitely eligible (Bloom)
};

template <bool kFiltered>
constexpr int kMetaSlotBytes = kFiltered ? int(sizeof(CompactMeta)) : int(sizeof(StageMeta));
static_assert(kMetaSlotBytes<true> >= int(sizeof(StageMeta)) && kMetaSlotBytes<true> % 4 == 0 &&
                  kMetaSlotBytes<true> * kStages % 16 == 0,
              "meta slots: 4-byte aligned, and whole 16-byte words per warp");

// Where a kernel's hits go (a kernel of its own for each, as each path costs registers):
// through the exact path where the tile found them; queued per warp (Pending, below); or, in
// an unfiltered exact sample (ScanPass::dense_sample), every row's score stored into its slot.
enum class Hits { kInPlace, kDeferred, kDenseSample };

// The deferred kernel's hits (Hits::kDeferred: flat collects, and per-query ones asked for by
// ScanPass::defer_hits), per warp, in shared memory: the tiles' hits that passed the integer
// bound (and, filtered, the block's plan bits) wait here, as (row, dot, code), until a
// whole warp's worth can take the exact path one per lane (drain_pending). At K = 100,000
// about a quarter of the tiles have a hit, and the exact path run in place, one element at a
// time behind a branch for each, cost as much as the scan itself. Room for the most a tile
// can add (128) and then some; a full queue is drained before a tile's hits go in.
// `code` is the staged query in its low 12 bits (query_cap < 4096) and, above them, the row's
// (possible, definite) plan bits plus one, or 0 where the scan did not evaluate the plan.
constexpr int kPendingCap = 160;
struct Pending {
  int32_t row[kPendingCap];
  int32_t dot[kPendingCap];
  uint16_t code[kPendingCap];
  int32_t count;
  int32_t unused[3];
};
static_assert(sizeof(Pending) % 16 == 0, "Pending: whole 16-byte words");
constexpr int kPendingQueryBits = 12;
constexpr int kMaxQueryCap = 1 << kPendingQueryBits;

struct Staged {
  int8_t* ring;   // [kWarps][kStages] blocks of 16 * d_pad bytes (d_pad <= 128)
  int8_t* metas;  // [kWarps][kStages] slots of kMetaSlotBytes<kFiltered>
  template <bool kFiltered>
  __device__ StageMeta* stage_meta(int warp, int stage) const {
    return reinterpret_cast<StageMeta*>(metas +
                                        (warp * kStages + stage) * kMetaSlotBytes<kFiltered>);
  }
  __device__ CompactMeta* compact_meta(int warp, int stage) const {  // filtered kernels only
    return reinterpret_cast<CompactMeta*>(metas + (warp * kStages + stage) * kMetaSlotBytes<true>);
  }
  uint32_t* frag;       // [query_cap / 8] tiles of 32 lanes x 2 * n_chunks32 words (frag_word)
  float* threshold;     // [query_cap]; +inf for padding
  float* t_over_scale;  // [query_cap]
  float* scale;         // [query_cap]
  int32_t* query;       // [query_cap] batch index
  int32_t* plan_begin;  // [query_cap] first op of the query's filter plan
  int32_t* plan_len;    // [query_cap] its length; 0: no filter
  int32_t* slot;        // [query_cap] the query's local plan (LocalPlans), -1: no filter
  const FilterOp* ops;  // the batch's plan ops (shared memory when staged, else global)
  // Flat collect: each warp's reserved slots [next, end) of ScanPass::out_keys.
  unsigned long long* flat_cursor;  // [kWarps][2]
  Pending* pending;                 // [kWarps], deferred kernel only
};

// The distinct plans of the staged queries (shared memory), when there are at most kLocalPlans.
// With per-pair pre-pass words (ScanPass::pair_stride), each filtered staged query is a local
// plan of its own, whatever its plan: its words are its (query, list) pair's.
struct LocalPlans {
  int32_t plan[kLocalPlans];  // the batch's plan index (GpuQueriesView)
  int32_t begin[kLocalPlans];
  int32_t len[kLocalPlans];
  int64_t word_base[kLocalPlans];  // local plan l's pre-pass word of a block: words[base + block]
  int32_t count;  // -1: too many distinct plans; rows are then evaluated per (row, query) pair
  bool all_filtered;  // every staged query has a plan
  // One plan for every staged query, with pre-pass words, that leaves at most 1 / kSparseRatio
  // of the rows possible: the run scans only those rows (scan_run_compact), gathered in aligned
  // units of `grain` rows of a block that hold a possible row (CompactSource, kQuadGrainMaxTiles).
  bool compact;
  int32_t grain;
};

// Local plan l's pre-pass word of a block (ScanPass::block_plans must be set).
__device__ __forceinline__ const uint32_t* plan_word(const ScanParams& p, const LocalPlans& local,
                                                     int l, int64_t block) {
  return p.pass.block_plans + local.word_base[l] + block;
}

// Gathering rows word by word costs more memory instructions per row than copying whole blocks:
// it pays under selective filters (10 %: collect 5.05 -> 2.45 ms at B = 64, H200; per-query
// filters leaving ~20 % of a list possible, IVF: 0.99 ms, against 1.11 whole and 1.36 with a
// ratio of 8) but not when most rows pass (45 %: whole search 6.84 -> 7.46 ms).
#ifndef ARGENT_SPARSE_RATIO
#define ARGENT_SPARSE_RATIO 4
#endif
constexpr int kSparseRatio = ARGENT_SPARSE_RATIO;

// Compacted runs of at most this many tiles of 8 queries gather aligned quads of rows (grain 4:
// one 16-byte copy per word of four rows), longer ones single rows (grain 1, one 4-byte copy per
// word). A quad multiplies its rows that cannot pass too, which a run of many tiles pays for in
// the tensor pipe; a short run waits on its copies instead. H100, K = 1000, 10 % filter, search
// ms with grain 1 / 4 / 8 forced for every run: IVF B = 256 3.36 / 3.23 / 3.45 (cold), 2.78 /
// 2.68 / 2.85 (cached); exact B = 64 4.44 / 4.69 / 5.78 (cold). Either way a block with one
// possible row costs its whole read from memory (grain 8, whole 32-byte sectors, saved nothing:
// the DRAM fetches whole blocks' lines), so the gain is in copy instructions, not bytes.
constexpr int kQuadGrainMaxTiles = 2;

// One thread numbers the distinct plans of the staged queries, the m queries of pairs
// pair0 .. pair0 + m - 1 of chunk `chunk`'s list. Plans are identified by their first op: the
// batch's plans are laid out once each (plan_of_query shares them); with per-pair words every
// filtered query is its own local plan.
__device__ void assign_plan_slots(const ScanParams& p, const Staged& s, int m, int32_t chunk,
                                  int32_t pair0, LocalPlans* local) {
  if (threadIdx.x != 0) return;
  const bool per_pair = p.pass.pair_stride > 0;
  const int64_t n_blocks = p.index.scan.n_rows / kBlockRows;
  // One plan: its counts are issued now, beside the loop's loads rather than after them.
  const bool one_plan = p.one_plan && !per_pair && p.pass.block_plans;
  int64_t one_plan_possible = 0, one_plan_rows = 0;
  if (one_plan) {
    one_plan_possible = int64_t(p.pass.plan_rows[0]);
    one_plan_rows = int64_t(p.pass.plan_rows[1]);
  }
  int64_t list_block = 0, list_rows = 0;
  if (per_pair) {
    const int32_t list = p.index.chunk_list[chunk];
    list_block = p.index.scan.list_offsets[list] / kBlockRows;
    list_rows = p.index.scan.list_sizes[list];
  }
  int count = 0;
  bool all_filtered = true;
  const int m_pad = (m + 7) & ~7;
  for (int i = 0; i < m_pad; ++i) {
    s.slot[i] = -1;
    if (i >= m) continue;  // padding: never accepted
    all_filtered &= s.plan_len[i] != 0;
    if (s.plan_len[i] == 0 || count < 0) continue;
    int j = per_pair ? count : 0;  // per pair: a new local plan for every filtered query
    while (j < count && local->begin[j] != s.plan_begin[i]) ++j;
    if (j == count) {
      if (count == kLocalPlans) {
        count = -1;
        continue;
      }
      const int32_t plan = p.one_plan ? 0 : p.queries.plan_of_query[s.query[i]];
      local->plan[count] = plan;
      local->begin[count] = s.plan_begin[i];
      local->len[count] = s.plan_len[i];
      local->word_base[count] =
          per_pair ? (pair0 + i) * p.pass.pair_stride - list_block : plan * n_blocks;
      ++count;
    }
    s.slot[i] = j;
  }
  local->count = count;
  local->all_filtered = all_filtered;
  // The share of rows the one plan leaves possible: over the batch's rows, or over the list.
  local->compact = false;
  local->grain = 1;
  if (count == 1 && all_filtered && p.pass.block_plans) {
    int64_t possible = 0, rows = 0;
    if (per_pair) {
      possible = p.pass.pair_rows[pair0];
      rows = list_rows;
    } else if (one_plan) {
      possible = one_plan_possible;
      rows = one_plan_rows;
    } else {
      possible = int64_t(p.pass.plan_rows[local->plan[0]]);
      rows = int64_t(p.pass.plan_rows[p.queries.n_plans]);
    }
    local->compact = possible * kSparseRatio <= rows;
    // Row-major codes gather single rows: a row is 128 contiguous bytes.
    local->grain = !p.rows && m <= 8 * kQuadGrainMaxTiles ? 4 : 1;
  }
}

__device__ void stage_queries(const ScanParams& p, const int32_t* list_queries, int m,
                              const Staged& s) {
  const int m_fill = (m + 7) & ~7;
  const int nc = p.n_chunks32, d_pad = p.index.scan.d_pad;
  // Word (query i, chunk c, half h, t): dims 32c + 16h + 4t .. +3 of query i.
  const int words = m_fill * nc * 8;
  for (int w = threadIdx.x; w < words; w += blockDim.x) {
    const int i = w / (nc * 8), rem = w % (nc * 8);
    const int c = rem / 8, h = (rem / 4) & 1, t = rem & 3;
    uint32_t v = 0;
    // The k-slice's dims: 4 of group 8c + 4h + t (blocked), or word 8t + 2c + h of the row
    // (row-major codes: load_block_fragments).
    const int dim = p.rows ? 4 * (8 * t + 2 * c + h) : 32 * c + 16 * h + 4 * t;
    if (i < m && dim < d_pad) {
      const int64_t q = list_queries[i];
      v = *reinterpret_cast<const uint32_t*>(p.queries.codes + q * d_pad + dim);
    }
    const int tile = i / 8, g = i % 8, lane = g * 4 + t;
    s.frag[frag_word(tile, c, lane, h, nc)] = v;
  }
  for (int i = threadIdx.x; i < m_fill; i += blockDim.x) {
    if (i < m) {
      const int32_t q = list_queries[i];
      const float t = p.pass.thresholds ? p.pass.thresholds[q] : -INFINITY;
      const float qs = p.queries.scales[q];
      s.threshold[i] = t;
      s.t_over_scale[i] = t > 0.f ? (qs > 0.f ? t / qs * 0.99999f : INFINITY) : -INFINITY;
      s.scale[i] = qs;
      s.query[i] = q;
      const int32_t plan = p.queries.plan_of_query ? p.queries.plan_of_query[q] : -1;
      s.plan_begin[i] = plan >= 0 && !p.one_plan ? p.queries.plan_begin[plan] : 0;
      s.plan_len[i] = plan < 0 ? 0 : p.one_plan ? p.queries.n_plan_ops : p.queries.plan_len[plan];
    } else {
      s.threshold[i] = INFINITY;
      s.t_over_scale[i] = INFINITY;
      s.scale[i] = 0.f;
      s.query[i] = -1;
      s.plan_begin[i] = 0;
      s.plan_len[i] = 0;
    }
  }
}

}  // namespace
}  // namespace cuda
}  // namespace argent
