// The fused scan pass (search_steps.h: launch_scan). A persistent grid walks the chunks of the
// probed lists; a CTA stages the queries of a chunk's list in shared memory, already in mma
// B-fragment order, and each warp takes 16-row blocks (copied ahead into its ring in shared
// memory, or prefetched into registers for one or two tiles of queries): the block's codes are
// loaded once into A fragments and multiplied against every staged query, 8 at a time (mma
// m16n8k32 s8). A cheap
// integer test against a per-(block, query) bound on the dot product rejects almost every row;
// the few that might reach the threshold take the exact path: float score, validity, Bloom plan,
// exact feature check, append. No score leaves the registers otherwise.
#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <utility>
#include <cstdint>

#include "common/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/resident_grid.h"
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
      const int32_t plan = p.queries.plan_of_query[s.query[i]];
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
      s.plan_begin[i] = plan >= 0 ? p.queries.plan_begin[plan] : 0;
      s.plan_len[i] = plan >= 0 ? p.queries.plan_len[plan] : 0;
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

// The exact path for one (row, query) pair that passed the integer bound: the float score and
// the Bloom plan (from registers when the words were loaded). Returns 0 (reject), 1 (accept) or
// 2 (accept; the exact feature check is due: Bloom said possible, not definite). In a collect,
// liveness and the exact check are left to the emit step, which runs them only near the top of
// each list, unless check_inline asks for them here; exact pre-pass words (ScanPass::
// exact_words) already include both.
__device__ int accept(const ScanParams& p, const Staged& s, int qi, int64_t row, int64_t list_end,
                      int32_t dot, float item_scale, int known_plan, float* score) {
  if (row >= list_end || s.query[qi] < 0) return 0;
  *score = score_of(dot, s.scale[qi], item_scale);
  if (!(*score >= s.threshold[qi])) return 0;
  // The pre-pass already checked liveness and features.
  if (known_plan >= 0 && p.pass.exact_words) return known_plan & 1;
  const bool sample = p.pass.out_rows == nullptr;
  if ((sample || p.pass.check_inline) && p.index.scan.ids[row] == kEmptyId) return 0;
  const int n_ops = s.plan_len[qi];
  if (n_ops == 0) return 1;
  const FilterOp* ops = s.ops + s.plan_begin[qi];
  // known_plan: the 2 bits (possible, definite) the block's row evaluation found, or -1.
  const PlanResult b =
      known_plan >= 0
          ? PlanResult{bool(known_plan & 1), bool(known_plan & 2)}
          : eval_plan_bloom(ops, n_ops, p.index.scan.signatures + row * p.index.scan.bloom_words);
  if (!b.possible) return 0;
  if ((sample || p.pass.check_inline) && !b.definite) {
    // The sample pass has no later step: check exactly now, so thresholds come from eligible rows.
    return row_passes_exactly(p.index.scan.features, ops, n_ops, row) ? 1 : 0;
  }
  return b.definite ? 1 : 2;
}

// The bounds of the lane's two queries of a tile (dot_floor) for a block.
__device__ __forceinline__ void bounds(const Staged& s, int tile, float inv_max, int32_t& da,
                                       int32_t& db) {
  // qa is even and t_over_scale 8-byte aligned (it follows whole tiles of fragments and
  // query_cap floats, a multiple of 8): one 8-byte shared load for both queries.
  const int qa = tile * 8 + 2 * (threadIdx.x & 3);
  const float2 t = *reinterpret_cast<const float2*>(s.t_over_scale + qa);
  da = dot_floor(t.x, inv_max);
  db = dot_floor(t.y, inv_max);
}

// The (possible, definite) bits of row h (0: 2g, 1: 2g + 1) under query qi's plan, when the
// block's rows were evaluated per plan; -1 otherwise (and for a query without a filter, whose
// accept() returns before the plan).
__device__ __forceinline__ int known_plan_bits(const Staged& s, const RowSigs& rs, int qi, int h) {
  const int slot = s.slot[qi];
  if (!rs.known || slot < 0) return -1;
  return int(rs.plans >> (4 * slot + 2 * h)) & 3;
}

// Slots for the warp's set flags, N per lane, numbered element by element and lane by lane:
// offset[e] is the lane's flag e's slot (if set); returns the number of set flags.
template <int N, typename Flag>
__device__ __forceinline__ int warp_slots(const Flag (&flag)[N], int (&offset)[N]) {
  const uint32_t below = (1u << (threadIdx.x & 31)) - 1u;
  int total = 0;
#pragma unroll
  for (int e = 0; e < N; ++e) {
    const uint32_t mask = __ballot_sync(0xFFFFFFFFu, flag[e] != 0);
    offset[e] = total + __popc(mask & below);
    total += __popc(mask);
  }
  return total;
}

// The flat collect's append (ScanPass::out_keys) of N elements per lane: the warp's hits go to
// consecutive slots of the range it reserved, and only a warp that runs out reserves more, at
// least flat_chunk slots, with one atomic on the batch's fill. hit: 0, or accept()'s result.
template <int N>
__device__ __forceinline__ void append_flat(const ScanParams& p, const Staged& s,
                                            const int (&hit)[N], const float (&score)[N],
                                            const int32_t (&row)[N], const int32_t (&query)[N]) {
  const int lane = threadIdx.x & 31;
  int offset[N];
  const int total = warp_slots<N>(hit, offset);
  if (total == 0) return;
  unsigned long long* cursor = s.flat_cursor + 2 * (threadIdx.x >> 5);
  const unsigned long long next = cursor[0], end = cursor[1];
  const int left = int(min(end - next, (unsigned long long)total));
  unsigned long long base = 0, want = 0;
  if (total > left) {
    want = max((unsigned long long)(total - left), (unsigned long long)p.flat_chunk);
    if (lane == 0) base = atomicAdd(p.pass.out_fill, want);
    base = __shfl_sync(0xFFFFFFFFu, base, 0);
  }
  __syncwarp();  // every lane has read the cursor
  if (lane == 0) {
    cursor[0] = total > left ? base + (total - left) : next + total;
    if (total > left) cursor[1] = base + want;
  }
  __syncwarp();
#pragma unroll
  for (int e = 0; e < N; ++e) {
    if (!hit[e]) continue;
    const unsigned long long pos =
        offset[e] < left ? next + offset[e] : base + (offset[e] - left);
    if (pos >= (unsigned long long)p.pass.cap) {  // the pool overflowed: re-run this query
      atomicAdd(p.pass.out_dropped + query[e], 1u);
      continue;
    }
    p.pass.out_keys[pos] = (uint64_t(query[e]) << 32) | descending_key(score[e]);
    p.pass.out_rows[pos] = row[e] | (hit[e] == 2 ? kNeedsCheck : 0);
  }
}

// ScanPass::dense_sample: the scores of the lane's two rows for its two queries of the tile
// (every row passes the sample's bound), each query's pair one 8-byte store into its slots.
__device__ __forceinline__ void store_dense_sample(const ScanParams& p, const Staged& s, int tile,
                                                   int64_t block, int64_t list_end,
                                                   const int32_t (&acc)[4], float scale0,
                                                   float scale1) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t r0 = block * kBlockRows + 2 * g;
  const bool live0 = r0 < list_end && p.index.scan.ids[r0] != kEmptyId;
  const bool live1 = r0 + 1 < list_end && p.index.scan.ids[r0 + 1] != kEmptyId;
  const int64_t slot = block / p.pass.sample_stride * kBlockRows + 2 * g;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int qi = tile * 8 + 2 * t + h;
    const int32_t q = s.query[qi];
    if (q < 0 || slot >= p.pass.cap) continue;
    // Elements h and h + 2 are query qi's products with rows 2g and 2g + 1.
    const float2 v = make_float2(live0 ? score_of(acc[h], s.scale[qi], scale0) : -INFINITY,
                                 live1 ? score_of(acc[h + 2], s.scale[qi], scale1) : -INFINITY);
    *reinterpret_cast<float2*>(p.pass.out_scores + int64_t(q) * p.pass.cap + slot) = v;
  }
}

// The slow part of the epilogue, for a warp where some element passed its bound: those rows
// take the exact path, and the accepted ones are appended with one atomic per (query, lane
// group) instead of one per row: in the sample pass every row of a sampled block is accepted,
// and per-row atomics on a query's counter serialize. For filtered
// batches it is called, not inlined: the sixteen epilogues of a 4-tile group would otherwise
// each carry a copy of the filter evaluation, and the scan then stalls on instruction fetch.
// kCompact: block is the warp's compacted stage, whose CompactMeta lists the rows. Never a flat
// collect: those always defer their hits.
template <bool kCompact>
__device__ __forceinline__ void append_hits_body(const ScanParams& p, const Staged s, int tile,
                                         int64_t block, int64_t list_end, int32_t a0, int32_t a1,
                                         int32_t a2, int32_t a3, uint32_t hits, const RowSigs rs) {
  const int32_t acc[4] = {a0, a1, a2, a3};
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int qa = tile * 8 + 2 * t, qb = qa + 1;
  int64_t r0 = block * kBlockRows + 2 * g, r1 = r0 + 1;
  if constexpr (kCompact) {  // padding slots never have a hit
    const CompactMeta& c = *s.compact_meta(threadIdx.x >> 5, int(block));
    r0 = c.rows[2 * g], r1 = c.rows[2 * g + 1];
  }
  int hit[4];
  float score[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    hit[e] = 0;
    if (hits & (1u << e)) {
      const int qi = (e & 1) ? qb : qa;
      hit[e] = accept(p, s, qi, e < 2 ? r0 : r1, list_end, acc[e], rs.scale[e >> 1],
                      known_plan_bits(s, rs, qi, e >> 1), &score[e]);
    }
  }
  // Elements e and e + 2 (rows 2g and 2g + 1) share a query: the 8 lanes of group t take one
  // range of slots for both, and the two queries' atomics are issued before either result is
  // needed, so a warp waits for one atomic round trip, not four (large k and the sample pass
  // append from most blocks).
  const uint32_t group = 0x11111111u << t;  // the lanes whose element e has my query
  const uint32_t below = (1u << lane) - 1u;
  uint32_t mask[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) mask[e] = __ballot_sync(0xFFFFFFFFu, hit[e]) & group;
  uint32_t base[2] = {0, 0};
  int leader[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint32_t both = mask[h] | mask[h + 2];
    leader[h] = both ? __ffs(both) - 1 : lane;
    if (both && lane == leader[h])
      base[h] = atomicAdd(p.pass.out_count + s.query[h ? qb : qa],
                          __popc(mask[h]) + __popc(mask[h + 2]));
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) base[h] = __shfl_sync(0xFFFFFFFFu, base[h], leader[h]);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (!hit[e]) continue;
    const int h = e & 1;
    // Row 2g's hits of the group first, then row 2g + 1's.
    const uint32_t pos = base[h] + (e < 2 ? 0u : __popc(mask[h])) + __popc(mask[e] & below);
    if (pos < p.pass.cap) {
      const int64_t slot = int64_t(s.query[h ? qb : qa]) * p.pass.cap + pos;
      p.pass.out_scores[slot] = score[e];
      if (p.pass.out_rows)
        p.pass.out_rows[slot] = int32_t(e < 2 ? r0 : r1) | (hit[e] == 2 ? kNeedsCheck : 0);
    }
  }
}

template <bool kCompact>
__device__ __noinline__ void append_hits(const ScanParams& p, const Staged s, int tile,
                                         int64_t block, int64_t list_end, int32_t a0, int32_t a1,
                                         int32_t a2, int32_t a3, uint32_t hits, const RowSigs rs) {
  append_hits_body<kCompact>(p, s, tile, block, list_end, a0, a1, a2, a3, hits, rs);
}

// The fast part of the epilogue: which of the lane's 4 elements of a tile passed their bound
// (and, filtered, are possibly eligible).
template <bool kFiltered>
__device__ __forceinline__ uint32_t hit_mask(const Staged& s, int tile, int32_t da, int32_t db,
                                             const int32_t (&acc)[4], const RowSigs& rs) {
  uint32_t hits = uint32_t(acc[0] >= da) | uint32_t(acc[1] >= db) << 1 |
                  uint32_t(acc[2] >= da) << 2 | uint32_t(acc[3] >= db) << 3;
  if constexpr (kFiltered) {
    // Rows the block evaluation found ineligible never take the slow path: a selective filter
    // lowers the threshold, so without this most of the rows would.
    if (rs.uniform) {
      hits &= rs.uniform_mask;
    } else if (rs.known && hits) {
      const int qa = tile * 8 + 2 * (threadIdx.x & 3);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int bits = known_plan_bits(s, rs, (e & 1) ? qa + 1 : qa, e >> 1);
        if (bits == 0) hits &= ~(1u << e);
      }
    }
  }
  return hits;
}

// One hit per lane appended to its query's buffer (ScanPass::out_count): the lanes of a query
// take one range of slots with one atomic.
__device__ __forceinline__ void append_per_query(const ScanParams& p, bool hit, float score,
                                                 int32_t row, int32_t query) {
  const uint32_t active = __ballot_sync(0xFFFFFFFFu, hit);
  if (!hit) return;
  const int lane = threadIdx.x & 31;
  const uint32_t peers = __match_any_sync(active, query);
  const int leader = __ffs(peers) - 1;
  uint32_t base = 0;
  if (lane == leader) base = atomicAdd(p.pass.out_count + query, __popc(peers));
  base = __shfl_sync(peers, base, leader);
  const uint32_t pos = base + __popc(peers & ((1u << lane) - 1u));
  if (pos >= p.pass.cap) return;
  const int64_t slot = int64_t(query) * p.pass.cap + pos;
  p.pass.out_scores[slot] = score;
  p.pass.out_rows[slot] = row;  // a deferring pass is a collect
}

// The deferred hits through the exact path, one per lane, then the append (flat or per query);
// the buffer is left empty. Out of line: it runs once per ~32 hits. Unfiltered, the exact path
// is short and written out here: through accept() the unfiltered kernels spilled more.
template <bool kFiltered>
__device__ __noinline__ void drain_pending(const ScanParams& p, const Staged s) {
  const int lane = threadIdx.x & 31;
  Pending& q = s.pending[threadIdx.x >> 5];
  const int count = q.count;
  for (int base = 0; base < count; base += 32) {
    const int i = base + lane;
    int hit[1] = {0};
    float score[1] = {0.f};
    int32_t row[1] = {0}, query[1] = {0};
    if (i < count) {
      const int qi = q.code[i] & (kMaxQueryCap - 1);
      row[0] = q.row[i];
      const float item_scale = __ldg(p.index.scan.scales + row[0]);
      if constexpr (kFiltered) {
        // Rows past their list's end were never queued (defer_hits).
        hit[0] = accept(p, s, qi, row[0], INT64_MAX, q.dot[i], item_scale,
                        int(q.code[i] >> kPendingQueryBits) - 1, &score[0]);
      } else {
        score[0] = score_of(q.dot[i], s.scale[qi], item_scale);
        hit[0] = s.query[qi] >= 0 && score[0] >= s.threshold[qi] &&
                 !(p.pass.check_inline && p.index.scan.ids[row[0]] == kEmptyId);
      }
      query[0] = s.query[qi];
    }
    if (p.pass.out_keys) {
      append_flat<1>(p, s, hit, score, row, query);
    } else {
      append_per_query(p, hit[0] != 0, score[0], row[0] | (hit[0] == 2 ? kNeedsCheck : 0),
                       query[0]);
    }
  }
  __syncwarp();
  if (lane == 0) q.count = 0;
  __syncwarp();
}

// The deferred kernel's slow part: the tile's hits (rows of the list only) appended to the
// warp's Pending, drained first when they would not fit. kCompact: `block` is the warp's
// compacted stage, whose CompactMeta lists the rows (padding never has a hit).
template <bool kFiltered, bool kCompact>
__device__ __forceinline__ void defer_hits(const ScanParams& p, const Staged& s, int tile,
                                           int64_t block, int64_t list_end,
                                           const int32_t (&acc)[4], uint32_t hits,
                                           const RowSigs& rs) {
  const int lane = threadIdx.x & 31, g = lane >> 2;
  const int64_t r0 = block * kBlockRows + 2 * g;
  if constexpr (!kCompact) {
    if (r0 >= list_end) hits &= ~0x3u;
    if (r0 + 1 >= list_end) hits &= ~0xCu;
  }
  const uint32_t hit[4] = {hits & 1u, hits & 2u, hits & 4u, hits & 8u};
  int offset[4];
  const int total = warp_slots<4>(hit, offset);
  Pending& q = s.pending[threadIdx.x >> 5];
  int count = q.count;
  if (count + total > kPendingCap) {
    drain_pending<kFiltered>(p, s);
    count = 0;
  }
  const int qa = tile * 8 + 2 * (lane & 3);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    if (!hit[e]) continue;
    const int i = count + offset[e];
    const int qi = qa + (e & 1);
    const int known_plan = kFiltered ? known_plan_bits(s, rs, qi, e >> 1) : -1;
    if constexpr (kCompact)
      q.row[i] = s.compact_meta(threadIdx.x >> 5, int(block))->rows[2 * g + (e >> 1)];
    else
      q.row[i] = int32_t(r0 + (e >> 1));
    q.dot[i] = acc[e];
    q.code[i] = uint16_t(qi | (known_plan + 1) << kPendingQueryBits);
  }
  __syncwarp();
  if (lane == 0) q.count = count + total;
  __syncwarp();
}

// The slow part, for a tile where some lane has hits: stored densely (the sample), queued
// (Hits::kDeferred), or taken in place,
// inline for unfiltered batches (it is short without a filter, and a call would cost the hot
// loop registers) and called for filtered ones (see append_hits_body).
template <bool kFiltered, bool kCompact = false, Hits kHits = Hits::kInPlace>
__device__ __forceinline__ void append_if_hits(const ScanParams& p, const Staged& s, int tile,
                                               int64_t block, int64_t list_end,
                                               const int32_t (&acc)[4], uint32_t hits,
                                               const RowSigs& rs) {
  static_assert(kHits != Hits::kDenseSample || (!kFiltered && !kCompact),
                "a dense sample is unfiltered and scans whole blocks");
  if (!__any_sync(0xFFFFFFFFu, hits != 0)) return;
  if constexpr (kHits == Hits::kDenseSample) {
    store_dense_sample(p, s, tile, block, list_end, acc, rs.scale[0], rs.scale[1]);
  } else if constexpr (kHits == Hits::kDeferred) {
    defer_hits<kFiltered, kCompact>(p, s, tile, block, list_end, acc, hits, rs);
  } else if constexpr (kFiltered) {
    append_hits<kCompact>(p, s, tile, block, list_end, acc[0], acc[1], acc[2], acc[3], hits, rs);
  } else {
    append_hits_body<false>(p, s, tile, block, list_end, acc[0], acc[1], acc[2], acc[3],
                                   hits, rs);
  }
}

template <bool kFiltered, bool kCompact = false, Hits kHits = Hits::kInPlace>
__device__ __forceinline__ void epilogue(const ScanParams& p, const Staged& s, int tile,
                                         int64_t block, int64_t list_end, int32_t da, int32_t db,
                                         const int32_t (&acc)[4], const RowSigs& rs) {
  append_if_hits<kFiltered, kCompact, kHits>(p, s, tile, block, list_end, acc,
                                              hit_mask<kFiltered>(s, tile, da, db, acc, rs), rs);
}

// Returns false when the block can be skipped: no row of it is possibly eligible under any
// staged query's plan (and every staged query has one). Warp-uniform.
// plan_words: the block's pre-pass words of the local plans, already in shared memory (the ring
// copied them with the block), or null: read here.
template <bool kFiltered>
__device__ __forceinline__ bool load_row_sigs(const ScanParams& p, const Staged& s,
                                              const LocalPlans& local, int64_t block, int lane,
                                              const uint32_t* plan_words, RowSigs& rs) {
  const int64_t r0 = block * kBlockRows + 2 * (lane >> 2);
  rs.scale[0] = __ldg(p.index.scan.scales + r0);
  rs.scale[1] = __ldg(p.index.scan.scales + r0 + 1);
  rs.known = false;
  rs.uniform = false;
  rs.plans = 0;
  rs.uniform_mask = 0;
  if constexpr (!kFiltered) return true;
  const int n_local = local.count;
  if (n_local < 0) return true;
  const int words = p.index.scan.bloom_words;
  // Lane (g, t) evaluates local plan t for rows 2g and 2g + 1; the 4 lanes of the group then
  // swap their results so that each holds all of them.
  const int t = lane & 3;
  uint32_t mine = 0;
  if (t < n_local && p.pass.block_plans) {
    // Evaluated before the scan (launch_block_plans): one word per (plan, block).
    const uint32_t w = plan_words ? plan_words[t] : __ldg(plan_word(p, local, t, block));
    const int r = 2 * (lane >> 2);  // bits r and r + 1: possible; 16 + r, 17 + r: definite
    mine = ((w >> r) & 1u) | ((w >> (16 + r)) & 1u) << 1 | ((w >> (r + 1)) & 1u) << 2 |
           ((w >> (17 + r)) & 1u) << 3;
  } else if (t < n_local) {
    const FilterOp* ops = s.ops + local.begin[t];
    const int n_ops = local.len[t];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint64_t* sig = p.index.scan.signatures + (r0 + h) * words;
      PlanResult b;
      if (p.sig_in_regs) {
        const uint64_t w0 = __ldg(sig), w1 = words > 1 ? __ldg(sig + 1) : 0;
        b = eval_plan_bloom_words(ops, n_ops, [w0, w1](int32_t w) { return w == 0 ? w0 : w1; });
      } else {
        b = eval_plan_bloom(ops, n_ops, sig);
      }
      mine |= (uint32_t(b.possible) | uint32_t(b.definite) << 1) << (2 * h);
    }
  }
  uint32_t all = mine << (4 * t);
  all |= __shfl_xor_sync(0xFFFFFFFFu, all, 1);
  all |= __shfl_xor_sync(0xFFFFFFFFu, all, 2);
  rs.plans = all;
  rs.known = true;
  if (n_local == 1 && local.all_filtered) {
    rs.uniform = true;
    rs.uniform_mask = (all & 1u) * 0x3u | ((all >> 2) & 1u) * 0xCu;
  }
  // Skippable only when every staged query has a plan (a query without one sees every row);
  // the possible bits are bits 0 and 2 of each nibble.
  return !local.all_filtered || __any_sync(0xFFFFFFFFu, (all & 0x5555u) != 0);
}

// A tile's B fragments (frag_word's layout): 16-byte shared loads of chunk pairs, or 8-byte
// loads of single chunks.
template <int KC>
__device__ __forceinline__ void load_b_fragments(const uint32_t* frag, int tile, int lane,
                                                 uint32_t (&bf)[2 * KC]) {
  if constexpr (KC % 2 == 0) {
    const uint4* b = reinterpret_cast<const uint4*>(frag) + size_t(tile) * (KC / 2) * 32 + lane;
#pragma unroll
    for (int i = 0; i < KC / 2; ++i) {
      const uint4 v = b[i * 32];
      bf[4 * i] = v.x, bf[4 * i + 1] = v.y, bf[4 * i + 2] = v.z, bf[4 * i + 3] = v.w;
    }
  } else {
    const uint2* b = reinterpret_cast<const uint2*>(frag) + size_t(tile) * KC * 32 + lane;
#pragma unroll
    for (int i = 0; i < KC; ++i) {
      const uint2 v = b[i * 32];
      bf[2 * i] = v.x, bf[2 * i + 1] = v.y;
    }
  }
}

// The lane's two slots (2g, 2g + 1) of a compacted stage, whose rows are all possibly eligible
// under the one plan of every staged query (local plan 0); returns the bound's 1 / (largest
// scale) over the 16 slots, as block_inv_max_scale is for a block (padding has scale 0).
__device__ __forceinline__ float load_compact_sigs(const CompactMeta& c, int lane, RowSigs& rs) {
  const int g = lane >> 2;
  const bool v0 = c.rows[2 * g] >= 0, v1 = c.rows[2 * g + 1] >= 0;
  const uint32_t d0 = (c.definite >> (2 * g)) & 1u, d1 = (c.definite >> (2 * g + 1)) & 1u;
  rs.scale[0] = c.scales[2 * g];
  rs.scale[1] = c.scales[2 * g + 1];
  rs.plans = uint32_t(v0) | d0 << 1 | uint32_t(v1) << 2 | d1 << 3;
  rs.uniform_mask = (v0 ? 0x3u : 0u) | (v1 ? 0xCu : 0u);
  rs.known = true;
  rs.uniform = true;
  float largest = fmaxf(rs.scale[0], rs.scale[1]);
#pragma unroll
  for (int o = 4; o < 32; o <<= 1) largest = fmaxf(largest, __shfl_xor_sync(0xFFFFFFFFu, largest, o));
  return 1.f / largest;
}

// All staged queries against one block whose A fragments are in registers. Tiles go four at a
// time: four independent accumulator chains keep the tensor pipe busy where one chain of
// dependent mma would leave it waiting on its own latency. kCompact: `block` is the warp's
// compacted stage, `compact` its CompactMeta (inv_max is worked out here).
template <int KC, bool kFiltered, int kGroup = kGroupTiles, bool kCompact = false,
          Hits kHits = Hits::kInPlace>
__device__ __forceinline__ void score_block(const ScanParams& p, const Staged& s,
                                            const LocalPlans& local, int tiles, int64_t block,
                                            int64_t list_end, float inv_max,
                                            const uint32_t (&a)[KC][4],
                                            const uint32_t* plan_words,
                                            const CompactMeta* compact = nullptr) {
  const int lane = threadIdx.x & 31;
  RowSigs rs;
  if constexpr (kCompact)
    inv_max = load_compact_sigs(*compact, lane, rs);
  else if (!load_row_sigs<kFiltered>(p, s, local, block, lane, plan_words, rs))
    return;
  int tile = 0;
  for (; tile + kGroup <= tiles; tile += kGroup) {
    uint32_t bf[kGroup][2 * KC];
#pragma unroll
    for (int u = 0; u < kGroup; ++u)
      load_b_fragments<KC>(s.frag, tile + u, lane, bf[u]);
    // The bounds do not depend on the products: computed while the mma are in flight.
    int32_t d[kGroup][2];
#pragma unroll
    for (int u = 0; u < kGroup; ++u) bounds(s, tile + u, inv_max, d[u][0], d[u][1]);
    int32_t acc[kGroup][4] = {};
#pragma unroll
    for (int c = 0; c < KC; ++c)
#pragma unroll
      for (int u = 0; u < kGroup; ++u) mma_s8_16x8x32(acc[u], a[c], bf[u][2 * c], bf[u][2 * c + 1]);
    // One vote for the group: almost always no lane has a hit, and the tiles' tests then run
    // side by side instead of each behind its own branch.
    uint32_t hits[kGroup], any = 0;
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
      hits[u] = hit_mask<kFiltered>(s, tile + u, d[u][0], d[u][1], acc[u], rs);
      any |= hits[u];
    }
    if (!__any_sync(0xFFFFFFFFu, any != 0)) continue;
#pragma unroll
    for (int u = 0; u < kGroup; ++u)
      append_if_hits<kFiltered, kCompact, kHits>(p, s, tile + u, block, list_end, acc[u],
                                                  hits[u], rs);
  }
  for (; tile < tiles; ++tile) {
    uint32_t bf[2 * KC];
    load_b_fragments<KC>(s.frag, tile, lane, bf);
    int32_t da, db;
    bounds(s, tile, inv_max, da, db);
    int32_t acc[4] = {0, 0, 0, 0};
#pragma unroll
    for (int c = 0; c < KC; ++c) mma_s8_16x8x32(acc, a[c], bf[2 * c], bf[2 * c + 1]);
    epilogue<kFiltered, kCompact, kHits>(p, s, tile, block, list_end, da, db, acc, rs);
  }
}

// Whether some row of the block is possibly eligible under some staged plan, from the
// pre-pass words (the caller checks that they exist and that every staged query has a plan).
__device__ __forceinline__ bool block_possible(const ScanParams& p, const LocalPlans& local,
                                               int64_t block) {
  uint32_t any = 0;
  for (int l = 0; l < local.count; ++l) any |= __ldg(plan_word(p, local, l, block));
  return (any & 0xFFFFu) != 0;
}

// The chunks (tasks) of a CTA are read kTaskBatch at a time, one per thread, into shared memory:
// walking them one by one put a chain of dependent loads (task -> chunk -> list -> its queries)
// before every chunk, and the sample pass, which skips most chunks, was nothing but that chain.
constexpr int kTaskBatch = kThreads;

// Rows fit in int32 (the candidate buffers store them so), and so do blocks and list ends.
// In sample mode a chunk's blocks are only its sampled ones: first, first + stride, ...
struct TaskBatch {
  int32_t first[kTaskBatch];      // first block of the chunk (sample mode: first sampled block)
  int32_t list_end[kTaskBatch];   // end row of its list
  int32_t start[kTaskBatch + 1];  // blocks of the batch's tasks before it (exclusive prefix sum)
  int32_t qstart[kTaskBatch];     // its list's queries: lists.queries + qstart, qcount of them
  int32_t qcount[kTaskBatch];
  int32_t warp_blocks[kWarps];    // scratch of the prefix sum
};

// Called by every thread of the CTA.
__device__ void load_task_batch(const ScanParams& p, int64_t task0, int n, TaskBatch* tb) {
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  int nblk = 0;
  if (t < n) {
    const int32_t chunk = p.tasks[task0 + t];
    const int64_t first = p.index.chunk_first_block[chunk];
    const int64_t end = first + p.index.chunk_blocks[chunk];
    const int64_t stride = p.pass.sample_stride;
    // The sampled blocks are the multiples of the stride.
    const int64_t begin = stride > 1 ? (first + stride - 1) / stride * stride : first;
    nblk = begin < end ? int((end - 1 - begin) / stride) + 1 : 0;
    const int32_t list = p.index.chunk_list[chunk];
    tb->first[t] = int32_t(begin);
    tb->list_end[t] = int32_t(p.index.scan.list_offsets[list] + p.index.scan.list_sizes[list]);
    tb->qstart[t] = p.lists.start[list];
    tb->qcount[t] = p.lists.count[list];
  }
  int inclusive = nblk;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int v = __shfl_up_sync(0xFFFFFFFFu, inclusive, o);
    if (lane >= o) inclusive += v;
  }
  if (lane == 31) tb->warp_blocks[warp] = inclusive;
  __syncthreads();
  int before = 0;
  for (int w = 0; w < warp; ++w) before += tb->warp_blocks[w];
  tb->start[t] = before + inclusive - nblk;
  if (t == kTaskBatch - 1) tb->start[kTaskBatch] = before + inclusive;
}

// Blocks of task t (sample mode: sampled blocks); 0: nothing to scan.
__device__ __forceinline__ int32_t task_blocks(const TaskBatch& tb, int t) {
  return tb.start[t + 1] - tb.start[t];
}

// Whether a run skips the blocks that no staged query can match before reading their codes:
// the pre-pass words exist and every staged query has a plan (one without sees every row).
template <bool kFiltered>
__device__ __forceinline__ bool skip_unmatched(const ScanParams& p, const LocalPlans& local) {
  return kFiltered && p.pass.block_plans && local.count > 0 && local.all_filtered;
}

// A block a warp scans and the end row of its list.
struct BlockRef {
  int32_t block;
  int32_t list_end;
};

// The block at run position pos of tasks [t_begin, t_end): that of the last task starting at or
// before it (tasks without blocks start where the next one does, so it is never one of those).
__device__ __forceinline__ BlockRef locate_block(const ScanParams& p, const TaskBatch& tb,
                                                 int t_begin, int t_end, int32_t pos) {
  int lo = t_begin, hi = t_end - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (tb.start[mid] <= pos) lo = mid;
    else hi = mid - 1;
  }
  return BlockRef{tb.first[lo] + (pos - tb.start[lo]) * p.pass.sample_stride, tb.list_end[lo]};
}

// The blocks a warp scans in a run of tasks [t_begin, t_end) (consecutive tasks of the batch
// that share their queries): the warps of a CTA take every kWarps-th block of the run as if its
// chunks were one, so a warp's next block may be in the next chunk and is in flight before the
// current one is multiplied. They are found 32 at a time, one per lane (a binary search of the
// batch's prefix sums); with the pre-pass words (a filtered batch), blocks that no staged query
// can match are dropped by the same ballot, so a skipped block costs no dependent load of its own.
class BlockSource {
 public:
  __device__ BlockSource(const TaskBatch& tb, int t_begin, int t_end, int warp)
      : tb_(tb), t_begin_(t_begin), t_end_(t_end), pos_(tb.start[t_begin] + warp),
        end_(tb.start[t_end]) {}

  // Warp-uniform; false once the run is done.
  __device__ __forceinline__ bool next(const ScanParams& p, const LocalPlans& local, bool skip,
                                       BlockRef* out) {
    while (mask_ == 0) {
      if (pos_ >= end_) return false;
      fill(p, local, skip);
    }
    const int j = __ffs(mask_) - 1;
    mask_ &= mask_ - 1;
    out->block = __shfl_sync(0xFFFFFFFFu, block_, j);
    out->list_end = __shfl_sync(0xFFFFFFFFu, list_end_, j);
    return true;
  }

 private:
  __device__ __forceinline__ void fill(const ScanParams& p, const LocalPlans& local, bool skip) {
    const int32_t pos = pos_ + (threadIdx.x & 31) * kWarps;
    pos_ += 32 * kWarps;
    bool take = pos < end_;
    if (take) {
      const BlockRef b = locate_block(p, tb_, t_begin_, t_end_, pos);
      block_ = b.block;
      list_end_ = b.list_end;
      if (skip) take = block_possible(p, local, block_);
    }
    mask_ = __ballot_sync(0xFFFFFFFFu, take);
  }

  const TaskBatch& tb_;
  const int t_begin_, t_end_;
  int32_t pos_;        // run position of lane 0's block in the next window
  const int32_t end_;  // end of the run
  uint32_t mask_ = 0;  // the window's blocks not taken yet
  int32_t block_ = 0, list_end_ = 0;  // lane j: the window's j-th block
};

// The eligible rows of a warp's share of a uniform run (one plan, that of every staged query,
// and its pre-pass words), in units of `grain` rows aligned within their block (1 or 4,
// kQuadGrainMaxTiles; any power of two up to 8 works), 16 rows to a stage: the same windows of
// 32 blocks as BlockSource, but each lane keeps its block's possibly-eligible rows (the word's
// low half, rows past the list's end cleared) and the units that hold one, and a prefix sum over
// the lanes numbers the window's units. Under a selective filter most of a block's rows are
// ineligible, and multiplying whole blocks spent most of the scan on rows that could never be
// results; a stage of 16 gathered rows is multiplied as one block instead (a unit's rows that
// cannot pass are padding). A row's words are 64 bytes apart: grain 1 copies 4 bytes per word,
// grain 4 the 16 bytes of its four rows.
class CompactSource {
 public:
  __device__ CompactSource(const TaskBatch& tb, int t_begin, int t_end, int warp, int grain)
      : tb_(tb), t_begin_(t_begin), t_end_(t_end), pos_(tb.start[t_begin] + warp),
        end_(tb.start[t_end]), grain_(grain), stage_units_(kBlockRows / grain),
        first_(-stage_units_) {}

  // Warp-uniform: moves to the next stage of units (the window's last one padded); false once
  // the run is done.
  __device__ __forceinline__ bool next(const ScanParams& p, const LocalPlans& local) {
    first_ += stage_units_;
    while (first_ >= total_) {
      if (pos_ >= end_) return false;
      fill(p, local);
    }
    return true;
  }

  // Unit u (< kBlockRows / grain) of the current stage: its block, its first row in the block,
  // and the block's possible and definite rows; false past the window's end. Called by every
  // lane (shuffles), each with its own u.
  __device__ __forceinline__ bool unit(int u, int32_t* block, int* first_row, uint32_t* possible,
                                       uint32_t* definite) const {
    const int i = first_ + u;
    // The lane whose block holds window unit i: the last with before_ <= i (one with no units
    // shares its before_ with the next lane, so the last such lane always has units).
    int owner = 0;
#pragma unroll
    for (int step = 16; step > 0; step >>= 1)
      if (__shfl_sync(0xFFFFFFFFu, before_, owner + step) <= i) owner += step;
    const uint32_t units = __shfl_sync(0xFFFFFFFFu, units_, owner);
    *possible = __shfl_sync(0xFFFFFFFFu, possible_, owner);
    *definite = __shfl_sync(0xFFFFFFFFu, definite_, owner);
    const int32_t base = __shfl_sync(0xFFFFFFFFu, before_, owner);
    *block = __shfl_sync(0xFFFFFFFFu, block_, owner);
    if (i >= total_) return false;
    *first_row = int(__fns(units, 0, i - base + 1)) * grain_;  // the (i - base)-th unit
    return true;
  }

  __device__ int stage_units() const { return stage_units_; }

 private:
  __device__ __forceinline__ void fill(const ScanParams& p, const LocalPlans& local) {
    const int lane = threadIdx.x & 31;
    const int32_t pos = pos_ + lane * kWarps;
    pos_ += 32 * kWarps;
    uint32_t possible = 0;
    if (pos < end_) {
      const BlockRef b = locate_block(p, tb_, t_begin_, t_end_, pos);
      block_ = b.block;
      const uint32_t w = __ldg(plan_word(p, local, 0, b.block));
      const int32_t rows_left = b.list_end - b.block * kBlockRows;
      const uint32_t in_list = rows_left >= kBlockRows ? 0xFFFFu : (1u << rows_left) - 1u;
      possible = w & in_list;
      definite_ = (w >> 16) & possible;
    }
    possible_ = possible;
    // Bit k: unit k (rows k * grain .. + grain - 1) holds a possible row.
    uint32_t units = possible;
    if (grain_ > 1) {
      units = 0;
      const uint32_t unit_rows = (1u << grain_) - 1u;
      for (int k = 0; k * grain_ < kBlockRows; ++k)
        units |= uint32_t(((possible >> (k * grain_)) & unit_rows) != 0) << k;
    }
    units_ = units;
    const int mine = __popc(units);
    int inclusive = mine;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int v = __shfl_up_sync(0xFFFFFFFFu, inclusive, o);
      if (lane >= o) inclusive += v;
    }
    before_ = inclusive - mine;
    total_ = __shfl_sync(0xFFFFFFFFu, inclusive, 31);
    first_ = 0;
  }

  const TaskBatch& tb_;
  const int t_begin_, t_end_;
  int32_t pos_;        // run position of lane 0's block in the next window
  const int32_t end_;  // end of the run
  const int grain_, stage_units_;
  int32_t first_;       // the window unit of the current stage's unit 0
  int32_t total_ = 0;            // units in the window
  // Lane j: the window's j-th block, its possible and definite rows and units, and the
  // window's units in the blocks before it.
  int32_t block_ = 0, before_ = 0;
  uint32_t possible_ = 0, definite_ = 0, units_ = 0;
};

// Where piece j (16 bytes) of row r of a row-major block goes in a shared-memory stage: pieces
// 2i and 2i + 1 swap places in rows 2, 3, 6, 7, ... (load_block_fragments).
__device__ __forceinline__ int rows_stage_offset(int r, int j) {
  return r * kRowsLayoutDim + ((j ^ ((r >> 1) & 1)) * 16);
}

// The A fragments of a 16-row block, all KC k-chunks. Blocked codes: load_a_fragment_paired per
// chunk. Row-major codes (kRows, d_pad == 128): lane (g, t) reads bytes [32t, 32t + 32) of rows
// 2g and 2g + 1 (two 16-byte loads each), and chunk c's two k-slices are the row's words 8t + 2c
// and 8t + 2c + 1: any assignment of dims to k-slices gives the same dot products as long as the
// queries' fragments use it too (stage_queries).
template <int KC, bool kRows, bool kShared>
__device__ __forceinline__ void load_block_fragments(const int8_t* block, int n_groups, int lane,
                                                     uint32_t (&a)[KC][4]) {
  if constexpr (kRows && KC == 4) {
    const int g = lane >> 2, t = lane & 3;
    const uint4* r0 = reinterpret_cast<const uint4*>(block + (2 * g) * kRowsLayoutDim + 32 * t);
    const uint4* r1 =
        reinterpret_cast<const uint4*>(block + (2 * g + 1) * kRowsLayoutDim + 32 * t);
    uint4 u[2], v[2];
    // In shared memory the two 16-byte pieces of a lane are swapped in rows whose bit 1 is set
    // (rows_stage_offset): rows 2g and 2g + 2, 256 bytes apart, would otherwise share banks.
    const int swap = kShared ? g & 1 : 0;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      u[i] = kShared ? r0[i ^ swap] : __ldg(r0 + i);
      v[i] = kShared ? r1[i ^ swap] : __ldg(r1 + i);
    }
    const uint32_t w0[8] = {u[0].x, u[0].y, u[0].z, u[0].w, u[1].x, u[1].y, u[1].z, u[1].w};
    const uint32_t w1[8] = {v[0].x, v[0].y, v[0].z, v[0].w, v[1].x, v[1].y, v[1].z, v[1].w};
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      a[c][0] = w0[2 * c];
      a[c][1] = w1[2 * c];
      a[c][2] = w0[2 * c + 1];
      a[c][3] = w1[2 * c + 1];
    }
  } else {
#pragma unroll
    for (int k = 0; k < KC; ++k) load_a_fragment_paired<kShared>(block, k, n_groups, lane, a[k]);
  }
}

// A warp's ring: issue_next(stage) starts the copies of the warp's next block (or group of
// rows) into that stage and returns false once there is none; consume(stage, a) gets each
// stage in order once it has landed, with its A fragments loaded. One commit per stage, empty
// or not, so that wait<kStages - 1> always means "the oldest stage has landed".
template <int KC, bool kRows, class IssueNext, class Consume>
__device__ __forceinline__ void run_ring(const ScanParams& p, const int8_t* ring,
                                         int block_bytes, IssueNext issue_next,
                                         Consume consume) {
  const int lane = threadIdx.x & 31;
  int issued = 0;
  for (int i = 0; i < kStages - 1; ++i) {
    issued += issue_next(i);
    cp_async_commit();
  }
  for (int done = 0; done < issued; ++done) {
    __syncwarp();  // every lane has read the stage refilled next (the previous round's)
    issued += issue_next((done + kStages - 1) % kStages);
    cp_async_commit();
    cp_async_wait<kStages - 1>();
    __syncwarp();  // other lanes' copies of this stage are visible
    const int stage = done % kStages;
    const int8_t* codes = ring + stage * block_bytes;
    uint32_t a[KC][4];
    load_block_fragments<KC, kRows, true>(codes, p.n_groups, lane, a);
    consume(stage, a);
  }
}

// In the passes with no later exact step (the sample pass, check_inline): the exact feature
// check of a compacted stage's rows that the Bloom plan left possible, once per row here rather
// than once per (row, query) pair in accept(). Failing rows become padding.
__device__ __forceinline__ void check_slots_exactly(const ScanParams& p, const Staged& s,
                                                    const LocalPlans& local, CompactMeta* m) {
  const int lane = threadIdx.x & 31;
  const int32_t row = lane < kBlockRows ? m->rows[lane] : -1;
  bool checked = false, ok = false;
  if (row >= 0 && !((m->definite >> lane) & 1u)) {
    checked = true;
    ok = row_passes_exactly(p.index.scan.features, s.ops + local.begin[0], local.len[0], row);
  }
  const uint32_t passed = __ballot_sync(0xFFFFFFFFu, ok);
  if (checked && !ok) m->rows[lane] = -1;
  if (lane == 0) m->definite |= passed;
  __syncwarp();
}

// A warp's share of a uniform run (CompactSource) through its ring: each stage gets the 16
// rows of a group, gathered into the layout of a block (blocked: 4 or 16 bytes per word of a
// row, 64 bytes apart; row-major: a row's 128 contiguous bytes), so the multiplication and
// epilogue are those of a whole block.
template <int KC, Hits kHits, bool kRows>
__device__ void scan_run_compact(const ScanParams& p, const Staged& s, const LocalPlans& local,
                                 int m_pad, const TaskBatch& tb, int t_begin, int t_end) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tiles = m_pad / 8;
  const int block_bytes = kBlockRows * p.index.scan.d_pad;
  const bool check_now = p.pass.out_rows == nullptr || p.pass.check_inline;
  int8_t* ring = s.ring + size_t(warp) * kStages * block_bytes;
  const int grain = local.grain;
  CompactSource source(tb, t_begin, t_end, warp, grain);

  auto issue_next = [&](int stage) {
    if (!source.next(p, local)) return false;
    // Every lane looks up one unit of the stage (lane % units), then takes the ones it needs
    // from their lanes.
    const int units = source.stage_units();
    int32_t block = 0;
    int first = 0;
    uint32_t possible = 0, definite = 0;
    const bool have = source.unit(lane & (units - 1), &block, &first, &possible, &definite);
    int8_t* to = ring + stage * block_bytes;
    // Slot j (lanes j < 16, and j + 16 for the copies of grain 1): row j % grain of unit
    // j / grain.
    const int j = lane & 15, slot_unit = j / grain;
    const int32_t slot_block = __shfl_sync(0xFFFFFFFFu, block, slot_unit);
    const int slot_row = __shfl_sync(0xFFFFFFFFu, first, slot_unit) + j % grain;
    const bool slot_unit_ok = __shfl_sync(0xFFFFFFFFu, have, slot_unit);
    const uint32_t slot_possible = __shfl_sync(0xFFFFFFFFu, possible, slot_unit);
    const uint32_t slot_definite = __shfl_sync(0xFFFFFFFFu, definite, slot_unit);
    const bool valid = slot_unit_ok && ((slot_possible >> slot_row) & 1u);
    const int32_t row = slot_block * kBlockRows + slot_row;
    if constexpr (kRows) {
      // Slot j's 128 bytes as row j of the stage: lane (s, piece) copies piece lane % 8 of
      // slots lane / 8, + 4, + 8, + 12.
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int sj = (lane >> 3) + 4 * i;
        const int32_t r = __shfl_sync(0xFFFFFFFFu, row, sj);
        if (__shfl_sync(0xFFFFFFFFu, valid, sj))
          cp_async_16(to + rows_stage_offset(sj, lane & 7),
                      p.index.scan.codes + int64_t(r) * kRowsLayoutDim + (lane & 7) * 16);
      }
    } else if (grain == 1) {
      // Lanes j and j + 16 copy slot j's words of even and odd groups.
      if (valid) {
        const int8_t* from = p.index.scan.codes + int64_t(slot_block) * block_bytes + slot_row * 4;
        for (int group = lane >> 4; group < p.n_groups; group += 2)
          cp_async_4(to + j * 4 + group * kGroupBytes, from + group * kGroupBytes);
      }
    } else {
      // 16-byte pieces: lane (group, quarter q) copies the stage's rows 4q .. 4q + 3 of the
      // group, 8 groups per round: rows (4q) % grain .. of unit 4q / grain.
      const int q = lane & 3, piece_unit = 4 * q / grain;
      const int32_t piece_block = __shfl_sync(0xFFFFFFFFu, block, piece_unit);
      const int piece_row = __shfl_sync(0xFFFFFFFFu, first, piece_unit) + (4 * q) % grain;
      if (__shfl_sync(0xFFFFFFFFu, have, piece_unit)) {
        const int8_t* from =
            p.index.scan.codes + int64_t(piece_block) * block_bytes + piece_row * 4;
        for (int group = lane >> 2; group < p.n_groups; group += 8)
          cp_async_16(to + group * kGroupBytes + q * 16, from + group * kGroupBytes);
      }
    }
    CompactMeta* m = s.compact_meta(warp, stage);
    const uint32_t definite_slots =
        __ballot_sync(0xFFFFFFFFu, valid && ((slot_definite >> slot_row) & 1u)) & 0xFFFFu;
    if (lane < kBlockRows) {
      m->rows[j] = valid ? row : -1;
      if (valid) cp_async_4(&m->scales[j], p.index.scan.scales + row);
      else m->scales[j] = 0.f;
    }
    if (lane == 0) m->definite = definite_slots;
    return true;
  };
  run_ring<KC, kRows>(p, ring, block_bytes, issue_next, [&](int stage, const uint32_t(&a)[KC][4]) {
    CompactMeta* m = s.compact_meta(warp, stage);
    if (check_now) check_slots_exactly(p, s, local, m);
    score_block<KC, true, kGroupTiles, true, kHits>(p, s, local, tiles, stage, INT_MAX, 0.f, a,
                                                     nullptr, m);
  });
}

// One warp's share of a run of tasks [t_begin, t_end), d_pad <= 128 (KC k-chunks of 32): the
// warp copies its blocks into its ring in shared memory kStages - 1 ahead of the one it
// multiplies, so the memory pipe stays busy while the tensor pipe works (with the next block
// prefetched into registers instead, one block of latency was all a warp could cover).
template <int KC, bool kFiltered, Hits kHits, bool kRows>
__device__ void scan_run_ring(const ScanParams& p, const Staged& s, const LocalPlans& local,
                              int m_pad, const TaskBatch& tb, int t_begin, int t_end) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tiles = m_pad / 8;
  const int block_bytes = kBlockRows * p.index.scan.d_pad;
  const bool with_words = kFiltered && p.pass.block_plans && local.count > 0;
  const bool skip = skip_unmatched<kFiltered>(p, local);
  const int n_words = with_words ? local.count : 0;
  int8_t* ring = s.ring + size_t(warp) * kStages * block_bytes;
  BlockSource source(tb, t_begin, t_end, warp);

  auto issue_next = [&](int stage) {
    BlockRef b;
    if (!source.next(p, local, skip, &b)) return false;
    const int8_t* from = p.index.scan.codes + int64_t(b.block) * block_bytes;
    int8_t* to = ring + stage * block_bytes;
#pragma unroll 4
    for (int off = lane * 16; off < block_bytes; off += 32 * 16)
      cp_async_16(to + (kRows ? rows_stage_offset(off / kRowsLayoutDim, (off % kRowsLayoutDim) / 16)
                              : off),
                  from + off);
    StageMeta* m = s.stage_meta<kFiltered>(warp, stage);
    if (lane == 0) {
      m->block = b.block;
      m->list_end = b.list_end;
      cp_async_4(&m->inv_max, p.index.block_inv_max_scale + b.block);
    }
    if (lane < n_words) cp_async_4(&m->plan_words[lane], plan_word(p, local, lane, b.block));
    return true;
  };
  run_ring<KC, kRows>(p, ring, block_bytes, issue_next, [&](int stage, const uint32_t(&a)[KC][4]) {
    const StageMeta& m = *s.stage_meta<kFiltered>(warp, stage);
    score_block<KC, kFiltered, kGroupTiles, false, kHits>(p, s, local, tiles, m.block,
                                                           m.list_end, m.inv_max, a,
                               n_words ? m.plan_words : nullptr);
  });
}

// Unfiltered runs of at most kPrefetchMaxTiles tiles of 8 staged queries, d_pad <= 128: the scan
// is a stream of loads with little arithmetic per block, and the A fragments of the warp's next
// block, loaded into registers while the current one is multiplied, measured faster here than
// the ring.
template <int KC, bool kFiltered, Hits kHits, bool kRows>
__device__ void scan_run_prefetch(const ScanParams& p, const Staged& s, const LocalPlans& local,
                                  int m_pad, const TaskBatch& tb, int t_begin, int t_end) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tiles = m_pad / 8;
  const int64_t block_bytes = int64_t(kBlockRows) * p.index.scan.d_pad;
  const bool skip = skip_unmatched<kFiltered>(p, local);
  BlockSource source(tb, t_begin, t_end, warp);
  BlockRef b;
  if (!source.next(p, local, skip, &b)) return;
  uint32_t a[KC][4];
  load_block_fragments<KC, kRows, false>(p.index.scan.codes + b.block * block_bytes, p.n_groups,
                                         lane, a);
  float inv_max = p.index.block_inv_max_scale[b.block];
  while (true) {
    BlockRef n;
    const bool more = source.next(p, local, skip, &n);
    uint32_t an[KC][4];
    float inv_next = 0.f;
    if (more) {
      load_block_fragments<KC, kRows, false>(p.index.scan.codes + n.block * block_bytes,
                                             p.n_groups, lane, an);
      inv_next = p.index.block_inv_max_scale[n.block];
    }
    score_block<KC, kFiltered, 1, false, kHits>(p, s, local, tiles, b.block, b.list_end, inv_max,
                                                 a, nullptr);
    if (!more) break;
#pragma unroll
    for (int k = 0; k < KC; ++k)
#pragma unroll
      for (int r = 0; r < 4; ++r) a[k][r] = an[k][r];
    inv_max = inv_next;
    b = n;
  }
}

// Any dimension: A fragments read from global memory (L1) for each tile of 8 queries.
template <bool kFiltered, Hits kHits>
__device__ void scan_run_wide(const ScanParams& p, const Staged& s, const LocalPlans& local,
                              int m_pad, const TaskBatch& tb, int t_begin, int t_end) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tiles = m_pad / 8;
  const int64_t block_bytes = int64_t(kBlockRows) * p.index.scan.d_pad;
  const bool skip = skip_unmatched<kFiltered>(p, local);
  const int nc = p.n_chunks32;
  BlockSource source(tb, t_begin, t_end, warp);
  BlockRef b;
  while (source.next(p, local, skip, &b)) {
    const int8_t* codes = p.index.scan.codes + b.block * block_bytes;
    const float inv_max = p.index.block_inv_max_scale[b.block];
    RowSigs rs;
    if (!load_row_sigs<kFiltered>(p, s, local, b.block, lane, nullptr, rs)) continue;
    for (int tile = 0; tile < tiles; ++tile) {
      int32_t acc[4] = {0, 0, 0, 0};
      for (int k = 0; k < nc; ++k) {
        uint32_t a[4];
        load_a_fragment_paired(codes, k, p.n_groups, lane, a);
        mma_s8_16x8x32(acc, a, s.frag[frag_word(tile, k, lane, 0, nc)],
                       s.frag[frag_word(tile, k, lane, 1, nc)]);
      }
      int32_t da, db;
      bounds(s, tile, inv_max, da, db);
      epilogue<kFiltered, false, kHits>(p, s, tile, b.block, b.list_end, da, db, acc, rs);
    }
  }
}

template <int KC, bool kFiltered, Hits kHits, bool kRows = false>
__global__ void __launch_bounds__(kThreads, ARGENT_SCAN_MIN_BLOCKS)
    scan_kernel(const __grid_constant__ ScanParams p) {
  extern __shared__ uint4 shared[];
  const int cap = p.query_cap, nc = p.n_chunks32;
  Staged s;
  // The rings first (16-byte aligned blocks), then their meta slots, then the staged queries.
  s.ring = reinterpret_cast<int8_t*>(shared);
  s.metas = s.ring + (KC > 0 ? kWarps * kStages * kBlockRows * p.index.scan.d_pad : 0);
  s.frag = reinterpret_cast<uint32_t*>(reinterpret_cast<int8_t*>(shared) + p.ring_bytes);
  s.threshold = reinterpret_cast<float*>(s.frag + size_t(cap) * nc * 8);
  s.t_over_scale = s.threshold + cap;
  s.scale = s.t_over_scale + cap;
  s.query = reinterpret_cast<int32_t*>(s.scale + cap);
  s.plan_begin = s.query + cap;
  s.plan_len = s.plan_begin + cap;
  s.slot = s.plan_len + cap;
  __shared__ LocalPlans local;
  __shared__ TaskBatch tb;
  __shared__ unsigned long long flat_cursor[kWarps * 2];
  if (threadIdx.x < kWarps * 2) flat_cursor[threadIdx.x] = 0;  // nothing reserved yet
  s.flat_cursor = flat_cursor;
  s.pending = nullptr;
  if constexpr (kHits == Hits::kDeferred) {
    s.pending = reinterpret_cast<Pending*>(reinterpret_cast<int8_t*>(shared) + p.pending_offset);
    if (threadIdx.x < kWarps) s.pending[threadIdx.x].count = 0;
  }
  if (p.staged_ops > 0) {
    FilterOp* ops = reinterpret_cast<FilterOp*>(s.slot + cap + (cap & 3 ? 4 - (cap & 3) : 0));
    for (int i = threadIdx.x; i < p.staged_ops; i += blockDim.x) ops[i] = p.queries.plan_ops[i];
    s.ops = ops;
  } else {
    s.ops = p.queries.plan_ops;
  }

  const int64_t n_tasks = *p.n_tasks;
  const int64_t begin = n_tasks * blockIdx.x / gridDim.x;
  const int64_t end = n_tasks * (blockIdx.x + 1) / gridDim.x;
  // Queries are restaged only when the set changes: in exact search every list that all
  // queries scan shares one query list (search_steps.h), so a CTA stages once.
  int32_t staged_start = -1, staged_m = -1;
  for (int64_t task0 = begin; task0 < end; task0 += kTaskBatch) {
    const int n = int(end - task0 < kTaskBatch ? end - task0 : kTaskBatch);
    __syncthreads();  // the previous batch is done with (and the ops are staged)
    load_task_batch(p, task0, n, &tb);
    __syncthreads();
    for (int t = 0; t < n;) {
      if (task_blocks(tb, t) == 0) {
        ++t;
        continue;
      }
      // The run: this task and the following ones with the same queries (or nothing to scan).
      const int32_t qstart = tb.qstart[t], qcount = tb.qcount[t];
      int t_end = t + 1;
      while (t_end < n &&
             (task_blocks(tb, t_end) == 0 ||
              (tb.qstart[t_end] == qstart && tb.qcount[t_end] == qcount)))
        ++t_end;
      // More queries than fit are staged in even passes (a list of 130 at a cap of 128: 72
      // and 58, not 128 and 2).
      const int passes = (qcount + cap - 1) / cap;
      const int per_pass = min(cap, ((qcount + passes - 1) / passes + 7) / 8 * 8);
      for (int base = 0; base < qcount; base += per_pass) {
        const int m = min(per_pass, qcount - base);
        const int m_pad = (m + 7) & ~7;
        if (qstart + base != staged_start || m != staged_m) {
          __syncthreads();
          stage_queries(p, p.lists.queries + qstart + base, m, s);
          __syncthreads();
          if constexpr (kFiltered) {
            assign_plan_slots(p, s, m, p.tasks[task0 + t], qstart + base, &local);
            __syncthreads();
          }
          staged_start = qstart + base;
          staged_m = m;
        }
        if constexpr (KC > 0) {
          // A uniform run under a selective plan scans only the rows it can pass. Filtered runs
          // of one or two tiles take the ring, not the register prefetch: the filtered kernel
          // then spills more (H200, per-query IVF collect: 1.05 against 0.99 ms; deferred, 0.78
          // against 0.72).
          if constexpr (kFiltered) {
            if (local.compact)
              scan_run_compact<KC, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
            else
              scan_run_ring<KC, kFiltered, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
          } else if (m_pad <= 8 * kPrefetchMaxTiles) {
            scan_run_prefetch<KC, kFiltered, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
          } else {
            scan_run_ring<KC, kFiltered, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
          }
        } else
          scan_run_wide<kFiltered, kHits>(p, s, local, m_pad, tb, t, t_end);
        // The deferred hits refer to the staged queries: through before they change.
        if constexpr (kHits == Hits::kDeferred) drain_pending<kFiltered>(p, s);
      }
      t = t_end;
    }
  }
}

template <int KC, bool kFiltered, Hits kHits, bool kRows = false>
void launch_kernel(const ScanParams& p, size_t smem, cudaStream_t stream) {
  // The persistent grid: as many CTAs as stay resident (worked out once per device and shared
  // memory size, not on every batch), times ARGENT_SCAN_WAVES in the collect pass, where more
  // CTAs than fit at once balance uneven chunks. The sample pass reads a few blocks of each
  // CTA's chunks, so one wave pays a CTA's fixed costs (staging, its task batch) once per SM
  // slot; measured alone it made no difference (H200, exact B = 64: 0.25 against 0.24 ms).
  const int grid = resident_ctas(
      reinterpret_cast<const void*>(scan_kernel<KC, kFiltered, kHits, kRows>),
                                 kThreads, smem, int(kMaxSharedBytes)) *
                   (p.pass.out_rows ? ARGENT_SCAN_WAVES : 1);
  ScanParams q = p;
  // Reservations small enough that the warps' unfinished ones stay within flat_slack, and at
  // most 128 slots (one atomic per 128 candidates is already rare).
  const int64_t warps = int64_t(grid) * kWarps;
  q.flat_chunk = 1;
  while (q.flat_chunk < 128 && 2 * q.flat_chunk * warps <= p.pass.flat_slack) q.flat_chunk *= 2;
  scan_kernel<KC, kFiltered, kHits, kRows><<<grid, kThreads, smem, stream>>>(q);
  ARGENT_CUDA_CHECK_LAUNCH("scan_kernel");
}

// The kernel for the dimension's k-chunks of 32 (0: wider than a ring stage holds).
template <bool kFiltered, Hits kHits>
void launch_for_chunks(const ScanParams& p, size_t smem, cudaStream_t stream) {
  switch (p.n_chunks32) {
    case 1: launch_kernel<1, kFiltered, kHits>(p, smem, stream); break;
    case 2: launch_kernel<2, kFiltered, kHits>(p, smem, stream); break;
    case 3: launch_kernel<3, kFiltered, kHits>(p, smem, stream); break;
    case 4:
      if (p.rows) launch_kernel<4, kFiltered, kHits, true>(p, smem, stream);
      else launch_kernel<4, kFiltered, kHits>(p, smem, stream);
      break;
    default: launch_kernel<0, kFiltered, kHits>(p, smem, stream); break;
  }
}

// The most queries a CTA can stage with `fixed` bytes of other dynamic shared memory (alignment
// padding included) while
// ARGENT_SCAN_MIN_BLOCKS CTAs still fit on an SM (worked out once per device); 0 if none.
int resident_query_cap(const void* kernel, size_t fixed, size_t per_query) {
  static std::mutex mu;
  // Dynamic shared memory per CTA, per device and kernel (their static shared memory differs).
  static std::map<std::pair<int, const void*>, size_t> budgets;
  int device = 0;
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  size_t budget = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = budgets.find({device, kernel});
    if (it == budgets.end()) {
      int per_sm = 0, reserved = 0;
      ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(
          &per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
      ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(
          &reserved, cudaDevAttrReservedSharedMemoryPerBlock, device));
      cudaFuncAttributes attr;
      ARGENT_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
      const size_t per_cta = size_t(per_sm) / ARGENT_SCAN_MIN_BLOCKS;
      const size_t taken = size_t(reserved) + attr.sharedSizeBytes;
      it = budgets.emplace(std::make_pair(device, kernel), per_cta > taken ? per_cta - taken : 0)
               .first;
    }
    budget = it->second;
  }
  return budget > fixed ? int((budget - fixed) / per_query) / 8 * 8 : 0;
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
  const size_t per_query = size_t(p.n_chunks32) * 32 + 28;
  const size_t stage_bytes = size_t(kBlockRows) * d_pad +
                             (queries.plan_of_query ? kMetaSlotBytes<true> : kMetaSlotBytes<false>);
  p.ring_bytes = d_pad <= 128 ? int(kWarps * kStages * stage_bytes) : 0;
  // Collects may defer their hits (Pending; flat ones always).
  const bool filtered = queries.plan_of_query != nullptr;
  const bool defer = pass.out_rows != nullptr && (pass.out_keys != nullptr || pass.defer_hits);
  const size_t pending_bytes = defer ? kWarps * sizeof(Pending) + 16 : 0;
  const int fit = int((kMaxSharedBytes - p.ring_bytes - kMaxStagedOps * sizeof(FilterOp) -
                       pending_bytes) /
                      per_query) / 8 * 8;
  ARGENT_ASSERT(fit >= 8, "dimension ", d_pad, " leaves no room for 8 staged queries");
  const int wanted = (std::max(1, max_queries_per_list) + 7) / 8 * 8;
  p.query_cap = std::min(fit, wanted);
  ARGENT_ASSERT(p.query_cap < kMaxQueryCap, "staged queries ", p.query_cap,
                " overflow the deferred hits' query field");
  if (defer) {
    // The queue must not cost a resident CTA: the deferring kernel stages fewer queries at a
    // time (the kernel splits a list's queries into even passes) where all of them would leave
    // one CTA per SM (H200, B = 256: exact K = 100,000 25.0 -> 20.6 ms; IVF K = 1000 collect
    // 2.72 -> 1.82 ms).
    const int ops = queries.n_plan_ops <= kMaxStagedOps ? queries.n_plan_ops : 0;
    constexpr Hits kDeferred = Hits::kDeferred;
    const void* kernel =
        index.rows_layout
            ? (filtered ? reinterpret_cast<const void*>(scan_kernel<4, true, kDeferred, true>)
                        : reinterpret_cast<const void*>(scan_kernel<4, false, kDeferred, true>))
            : (filtered ? reinterpret_cast<const void*>(scan_kernel<4, true, kDeferred>)
                        : reinterpret_cast<const void*>(scan_kernel<4, false, kDeferred>));
    const int cap = resident_query_cap(
        kernel, p.ring_bytes + pending_bytes + sizeof(FilterOp) * ops, per_query);
    if (cap >= 8) p.query_cap = std::min(p.query_cap, cap);
  }

  p.staged_ops = queries.n_plan_ops <= kMaxStagedOps ? queries.n_plan_ops : 0;
  p.sig_in_regs = queries.plan_of_query != nullptr && index.scan.bloom_words <= 2;
  p.rows = index.rows_layout;
  ARGENT_ASSERT(!p.rows || d_pad == kRowsLayoutDim, "row-major codes need d_pad ",
                kRowsLayoutDim, ", not ", d_pad);
  p.pending_offset = 0;
  size_t smem = size_t(p.ring_bytes) + per_query * size_t(p.query_cap) +
                sizeof(FilterOp) * size_t(p.staged_ops);
  if (defer) {
    smem = (smem + 15) / 16 * 16;
    p.pending_offset = int(smem);
    smem += kWarps * sizeof(Pending);
  }
  ARGENT_ASSERT(!pass.dense_sample || (!filtered && !defer && pass.out_rows == nullptr),
                "a dense sample is an unfiltered sample pass");
  if (filtered && defer)
    launch_for_chunks<true, Hits::kDeferred>(p, smem, stream);
  else if (filtered)
    launch_for_chunks<true, Hits::kInPlace>(p, smem, stream);
  else if (defer)
    launch_for_chunks<false, Hits::kDeferred>(p, smem, stream);
  else if (pass.dense_sample)
    launch_for_chunks<false, Hits::kDenseSample>(p, smem, stream);
  else
    launch_for_chunks<false, Hits::kInPlace>(p, smem, stream);
}

}  // namespace cuda
}  // namespace argent
