// The fused scan's hits (kernels/cuda/scan_kernel.cu): the exact path of a (row, query) pair
// that passed the integer bound, and where accepted hits go: appended in place, queued per warp
// and drained 32 at a time, or stored as an unfiltered exact sample's dense slots.
// Included by scan_kernel.cu alone, in order (scan_state, scan_hits, scan_blocks, scan_runs):
// its definitions are internal to that translation unit (an unnamed namespace).
#pragma once

#include <cstdint>

#include "kernels/cuda/scan_state.cuh"

namespace argent {
namespace cuda {
namespace {

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

}  // namespace
}  // namespace cuda
}  // namespace argent
