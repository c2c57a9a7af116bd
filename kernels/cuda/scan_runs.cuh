// The fused scan's runs (kernels/cuda/scan_kernel.cu): the ways a run of chunks with the same
// staged queries is read: compacted rows under a selective plan, a ring of blocks in shared
// memory, a register prefetch for one or two tiles of queries, or the wide path.
// Included by scan_kernel.cu alone, in order (scan_state, scan_hits, scan_blocks, scan_runs):
// its definitions are internal to that translation unit (an unnamed namespace).
#pragma once

#include <climits>
#include <cstdint>

#include "kernels/cuda/scan_blocks.cuh"

namespace argent {
namespace cuda {
namespace {

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

}  // namespace
}  // namespace cuda
}  // namespace argent
