// The fused scan's blocks (kernels/cuda/scan_kernel.cu): a block's Bloom words and fragments,
// its mma scores against the staged queries, the CTA's batches of tasks, and the ring that
// copies blocks ahead into shared memory.
// Included by scan_kernel.cu alone, in order (scan_state, scan_hits, scan_blocks, scan_runs):
// its definitions are internal to that translation unit (an unnamed namespace).
#pragma once

#include <cstdint>

#include "kernels/cuda/scan_hits.cuh"

namespace argent {
namespace cuda {
namespace {

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

}  // namespace
}  // namespace cuda
}  // namespace argent
