#include "kernels/cpu/fused_scan.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/score_tile.h"
#include "kernels/cpu/topk.h"
#include "kernels/layout.h"

namespace argent {
namespace {

constexpr int64_t kChunkRows = 4096;     // rows per work item: lets 2+ threads share one big list
constexpr int64_t kTileBytes = 16384;    // item bytes per sub-chunk: stays in L1 across queries
constexpr int kMaxSubBlocks = 16;

// One unit of parallel work: rows [begin, end) of one list, for the queries in `queries`.
struct WorkItem {
  int64_t list;
  int64_t begin, end;
  const int32_t* queries;
  int32_t n_queries;
};

// Rows of a selective plan are packed into whole blocks when the queries that share the plan
// save more block scores than the packing costs: one score of a (query, block) and one gathered
// row (d_pad / 4 four-byte copies) cost about the same, so the packing pays when
// queries * (blocks - packed blocks) > rows * kPackCostPerRow.
constexpr int64_t kPackCostPerRow = 1;
// The codes packed at once, per thread: a span of a work item's blocks (4,096 rows at d_pad 128).
constexpr int64_t kPackSpanBytes = 512 * 1024;

struct ThreadState {
  std::vector<TopKReservoir> reservoirs;  // one per query
  ScanStats stats;
  // A span's eligible rows of one plan, packed into whole blocks (pack_rows).
  std::vector<int8_t> packed_codes;
  std::vector<float> packed_scales;
  std::vector<int32_t> packed_rows;
  std::vector<uint16_t> packed_definite;
  // scan_work_item's per-item lists, kept to reuse their memory.
  std::vector<int32_t> plan_ids;
  std::vector<std::vector<int32_t>> plan_queries;
  std::vector<uint16_t> live;
  std::vector<BlockEligibility> elig;
  std::vector<uint8_t> in_place;
  std::vector<int32_t> dense_queries, dense_slot;
};

// Per-call scratch of score_tile, sized for kMaxTileQueries x kMaxSubBlocks.
struct TileScratch {
  float scores[kMaxTileQueries * kMaxSubBlocks * kBlockRows];
  uint16_t eligible[kMaxTileQueries * kMaxSubBlocks];
  uint16_t hits[kMaxTileQueries * kMaxSubBlocks];
  const int8_t* qcodes[kMaxTileQueries];
  int32_t qbias[kMaxTileQueries];
  float qscale[kMaxTileQueries], thresholds[kMaxTileQueries];
  // One tile query's hits awaiting the exact check (check_and_push).
  int32_t check_rows[kMaxSubBlocks * kBlockRows];
  float check_scores[kMaxSubBlocks * kBlockRows];
};

// The exact checks of one query's hits whose Bloom plan was not definite, then the pushes of
// those that pass. A check reads the row's place in the feature store and then its pairs: two
// dependent cache misses. Prefetching every row's place, then every row's pairs, overlaps the
// misses of all the hits instead of paying both in turn for each.
void check_and_push(const ScanIndexView& index, const FilterPlanView& plan, const int32_t* rows,
                    const float* scores, int n, TopKReservoir& res, ScanStats& stats) {
  const FeatureStoreView& f = index.features;
  for (int i = 0; i < n; ++i) {
    __builtin_prefetch(f.offset + rows[i]);
    __builtin_prefetch(f.count + rows[i]);
  }
  for (int i = 0; i < n; ++i) {
    const int64_t at = f.offset[rows[i]];
    __builtin_prefetch(f.feature_ids + at);
    __builtin_prefetch(f.values + at);
  }
  for (int i = 0; i < n; ++i) {
    // Pushes before this one may have raised the reservoir's threshold.
    if (!res.accepts(scores[i], index.ids[rows[i]])) continue;
    ++stats.exact_checks;
    if (!eval_plan_exact(plan, f, rows[i])) {
      ++stats.bloom_false_positives;
      continue;
    }
    res.push(scores[i], rows[i], index.ids);
  }
}

// Buckets queries by list: bucket l holds the queries that scan list l.
void bucket_queries(const ScanIndexView& index, const ScanQueriesView& queries,
                    const ScanProbesView& probes, std::vector<int64_t>& start,
                    std::vector<int32_t>& members, ScanStats& stats) {
  const int64_t n_lists = index.n_lists;
  start.assign(size_t(n_lists + 1), 0);
  auto for_each_probe = [&](auto&& fn) {
    for (int64_t q = 0; q < queries.n; ++q) {
      const int32_t p = queries.plan_of_query ? queries.plan_of_query[q] : -1;
      const FilterPlanView plan = p >= 0 ? queries.plans[p] : FilterPlanView{};
      auto visit = [&](int64_t l) {
        if (index.list_sizes[l] == 0) return;
        if (!eval_plan_summary(plan, index.list_summaries + l * index.bloom_words,
                               index.bloom_words)) {
          fn(q, l, false);
          return;
        }
        fn(q, l, true);
      };
      if (probes.lists == nullptr) {
        for (int64_t l = 0; l < n_lists; ++l) visit(l);
      } else {
        for (int i = 0; i < probes.nprobe; ++i) {
          const int32_t l = probes.lists[q * probes.nprobe + i];
          if (l < 0) continue;
          ARGENT_CHECK(l < n_lists, "fused_scan: probe list ", l, " out of range [0, ", n_lists,
                       ")");
          visit(l);
        }
      }
    }
  };
  for_each_probe([&](int64_t, int64_t l, bool scan) {
    if (scan) ++start[size_t(l + 1)];
  });
  for (int64_t l = 0; l < n_lists; ++l) start[size_t(l + 1)] += start[size_t(l)];
  members.assign(size_t(start[size_t(n_lists)]), 0);
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for_each_probe([&](int64_t q, int64_t l, bool scan) {
    if (scan) {
      members[size_t(fill[size_t(l)]++)] = int32_t(q);
      ++stats.lists_scanned;
    } else {
      ++stats.lists_skipped;
    }
  });
}

// One score_tile call: queries[0, nt) against n_blocks blocks at `blocks` (the index's or a
// packed copy), whose row r of block b is index row row_of(b, r); hits go to the reservoirs,
// through the exact check when the row is not `definite` for the query's plan.
template <typename RowOf, typename DefiniteOf>
void score_and_collect(const ScanIndexView& index, const ScanQueriesView& queries,
                       const int32_t* tile_queries, int nt, const int8_t* blocks,
                       const float* item_scales, int64_t n_blocks, const RowOf& row_of,
                       const DefiniteOf& definite_of, TileScratch& x, ThreadState& ts) {
  const int d_pad = index.d_pad;
  for (int t = 0; t < nt; ++t) {
    const int64_t q = tile_queries[t];
    x.qcodes[t] = queries.codes + q * d_pad;
    x.qbias[t] = queries.bias[q];
    x.qscale[t] = queries.scales[q];
    x.thresholds[t] = ts.reservoirs[size_t(q)].threshold();
  }
  ScoreTileArgs args;
  args.query_codes = x.qcodes;
  args.query_bias = x.qbias;
  args.query_scales = x.qscale;
  args.thresholds = x.thresholds;
  args.n_queries = nt;
  args.blocks = blocks;
  args.item_scales = item_scales;
  args.n_blocks = n_blocks;
  args.d_pad = d_pad;
  args.eligible = x.eligible;
  args.scores = x.scores;
  args.score_stride = n_blocks * kBlockRows;
  args.hits = x.hits;
  score_tile(args);

  for (int t = 0; t < nt; ++t) {
    const int64_t q = tile_queries[t];
    TopKReservoir& res = ts.reservoirs[size_t(q)];
    const int32_t p = queries.plan_of_query ? queries.plan_of_query[q] : -1;
    int n_checks = 0;
    for (int64_t b = 0; b < n_blocks; ++b) {
      uint32_t h = x.hits[t * n_blocks + b];
      while (h != 0) {
        const int r = __builtin_ctz(h);
        h &= h - 1;
        const int64_t row = row_of(b, r);
        const float s = x.scores[t * n_blocks * kBlockRows + b * kBlockRows + r];
        if (!res.accepts(s, index.ids[row])) continue;
        if (p >= 0 && !definite_of(t, b, r)) {
          x.check_rows[n_checks] = int32_t(row);
          x.check_scores[n_checks++] = s;
          continue;
        }
        res.push(s, int32_t(row), index.ids);
      }
    }
    if (n_checks > 0)
      check_and_push(index, queries.plans[p], x.check_rows, x.check_scores, n_checks, res,
                     ts.stats);
  }
}

// Gathers the rows set in elig[0, nb).possible of the nb blocks at row0 into whole blocks of
// ts.packed_*. Rows past them in the last block are zero-scale pads.
void pack_rows(const ScanIndexView& index, int64_t row0, const BlockEligibility* elig,
               int64_t nb, ThreadState& ts) {
  const int d_pad = index.d_pad;
  const size_t bb = block_bytes(d_pad);
  const int groups = d_pad / kGroupDims;
  const size_t rows = size_t(nb * kBlockRows);
  if (ts.packed_rows.size() < rows) {  // sized on a thread's first pack, not for every scan
    ts.packed_codes.resize(size_t(nb) * bb);
    ts.packed_scales.resize(rows);
    ts.packed_rows.resize(rows);
    ts.packed_definite.resize(size_t(nb));
  }
  int64_t c = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* src = index.codes + size_t((row0 + b * kBlockRows) / kBlockRows) * bb;
    for (uint32_t m = elig[b].possible; m != 0; m &= m - 1, ++c) {
      const int r = __builtin_ctz(m);
      const int64_t pb = c / kBlockRows, pr = c % kBlockRows;
      int8_t* dst = ts.packed_codes.data() + size_t(pb) * bb + size_t(pr) * kGroupDims;
      for (int g = 0; g < groups; ++g)
        std::memcpy(dst + g * kGroupBytes, src + g * kGroupBytes + r * kGroupDims, kGroupDims);
      const int64_t row = row0 + b * kBlockRows + r;
      ts.packed_scales[size_t(c)] = index.scales[row];
      ts.packed_rows[size_t(c)] = int32_t(row);
      if (pr == 0) ts.packed_definite[size_t(pb)] = 0;
      ts.packed_definite[size_t(pb)] |= uint16_t(((elig[b].definite >> r) & 1u) << pr);
    }
  }
  for (int64_t pad = c; pad % kBlockRows != 0; ++pad) {
    ts.packed_scales[size_t(pad)] = 0.0f;
    ts.packed_rows[size_t(pad)] = -1;
  }
}

// Scores `members` against the `rows` rows pack_rows left in ts.packed_*, sub_blocks blocks
// and kMaxTileQueries queries at a time.
void score_packed(const ScanIndexView& index, const ScanQueriesView& queries,
                  const std::vector<int32_t>& members, int64_t rows, int64_t sub_blocks,
                  TileScratch& x, ThreadState& ts) {
  const size_t bb = block_bytes(index.d_pad);
  const int64_t packed_blocks = (rows + kBlockRows - 1) / kBlockRows;
  const uint16_t last_mask =
      rows % kBlockRows ? uint16_t((1u << (rows % kBlockRows)) - 1) : uint16_t(0xFFFF);
  for (int64_t pb0 = 0; pb0 < packed_blocks; pb0 += sub_blocks) {
    const int64_t nb = std::min(sub_blocks, packed_blocks - pb0);
    for (size_t t0 = 0; t0 < members.size(); t0 += kMaxTileQueries) {
      const int nt = int(std::min<size_t>(kMaxTileQueries, members.size() - t0));
      for (int t = 0; t < nt; ++t)
        for (int64_t b = 0; b < nb; ++b)
          x.eligible[t * nb + b] = pb0 + b + 1 < packed_blocks ? uint16_t(0xFFFF) : last_mask;
      score_and_collect(
          index, queries, members.data() + t0, nt, ts.packed_codes.data() + size_t(pb0) * bb,
          ts.packed_scales.data() + pb0 * kBlockRows, nb,
          [&](int64_t b, int r) {
            return int64_t(ts.packed_rows[size_t((pb0 + b) * kBlockRows + r)]);
          },
          [&](int, int64_t b, int r) { return (ts.packed_definite[size_t(pb0 + b)] >> r) & 1u; },
          x, ts);
    }
  }
}

void scan_work_item(const ScanIndexView& index, const ScanQueriesView& queries,
                    const WorkItem& w, ThreadState& ts) {
  const int d_pad = index.d_pad;
  const size_t bb = block_bytes(d_pad);
  const int64_t sub_blocks =
      std::clamp<int64_t>(kTileBytes / int64_t(bb), 1, kMaxSubBlocks);
  const int64_t list_end = index.list_offsets[w.list] + index.list_sizes[w.list];
  const int64_t n_blocks = (w.end - w.begin + kBlockRows - 1) / kBlockRows;

  // Distinct filter plans among this item's queries (index -1 = no filter), and each plan's
  // queries.
  std::vector<int32_t>& plan_ids = ts.plan_ids;
  std::vector<std::vector<int32_t>>& plan_queries = ts.plan_queries;
  plan_ids.clear();
  for (int32_t i = 0; i < w.n_queries; ++i) {
    const int32_t q = w.queries[i];
    const int32_t p = queries.plan_of_query ? queries.plan_of_query[q] : -1;
    const size_t slot = size_t(std::find(plan_ids.begin(), plan_ids.end(), p) - plan_ids.begin());
    if (slot == plan_ids.size()) {
      plan_ids.push_back(p);
      if (plan_queries.size() < plan_ids.size()) plan_queries.emplace_back();
      plan_queries[slot].clear();
    }
    plan_queries[slot].push_back(q);
  }
  auto masks_of = [&](int32_t p) {
    return p >= 0 && queries.plan_masks ? queries.plan_masks[p] : nullptr;
  };

  // Eligibility of every block of the item for each plan: a plan's exact masks when it has
  // them (liveness included), else the live rows and the Bloom plan.
  bool need_live = false;
  for (int32_t p : plan_ids) need_live |= masks_of(p) == nullptr;
  std::vector<uint16_t>& live = ts.live;
  live.assign(size_t(n_blocks), 0);
  if (need_live) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t first = w.begin + b * kBlockRows;
      uint16_t m = 0;
      for (int r = 0; r < kBlockRows; ++r)
        if (first + r < list_end && index.ids[first + r] != kEmptyId) m |= uint16_t(1u << r);
      live[size_t(b)] = m;
    }
  }
  std::vector<BlockEligibility>& elig = ts.elig;
  elig.resize(plan_ids.size() * size_t(n_blocks));
  for (size_t pi = 0; pi < plan_ids.size(); ++pi) {
    const int32_t p = plan_ids[pi];
    BlockEligibility* e = elig.data() + pi * size_t(n_blocks);
    const uint16_t* masks = masks_of(p);
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t first = w.begin + b * kBlockRows;
      if (masks != nullptr) {
        // Rows past the list's end are free (id -1, so the masks hold none); the test costs
        // nothing and keeps that an assumption of the shard's, not of the scan's.
        const uint16_t in_list = first + kBlockRows <= list_end
                                     ? uint16_t(0xFFFF)
                                     : uint16_t((1u << (list_end - first)) - 1);
        const uint16_t m = masks[first / kBlockRows] & in_list;
        e[b] = {m, m};
      } else if (p < 0 || live[size_t(b)] == 0) {
        e[b] = {live[size_t(b)], 0xFFFF};
      } else {
        const BlockEligibility be = eval_plan_block(
            queries.plans[p], index.signatures + first * index.bloom_words, index.bloom_words);
        e[b] = {uint16_t(be.possible & live[size_t(b)]), be.definite};
      }
    }
  }
  ts.stats.rows_scanned += int64_t(w.n_queries) * n_blocks * kBlockRows;

  // A filtered plan's queries skip a span of the item when no row may match, and score its
  // rows packed when that saves work (a span of up to kPackSpanBytes of codes, so a selective
  // plan's few rows fill whole blocks); the others score the span's blocks in place. Spans are
  // whole sub-chunks.
  TileScratch x;
  const int64_t span_blocks =
      std::max<int64_t>(1, kPackSpanBytes / int64_t(bb) / sub_blocks) * sub_blocks;
  const int64_t n_spans = (n_blocks + span_blocks - 1) / span_blocks;
  std::vector<uint8_t>& in_place = ts.in_place;  // [plan slot][span]: scanned in place
  in_place.assign(plan_ids.size() * size_t(n_spans), 0);
  bool any_in_place = false;
  for (size_t pi = 0; pi < plan_ids.size(); ++pi) {
    for (int64_t sp = 0; sp < n_spans; ++sp) {
      const int64_t s0 = sp * span_blocks, ns = std::min(span_blocks, n_blocks - s0);
      const BlockEligibility* e = elig.data() + pi * size_t(n_blocks) + s0;
      int64_t rows = 0;
      for (int64_t b = 0; b < ns; ++b) rows += __builtin_popcount(e[b].possible);
      if (rows == 0) continue;
      const int64_t packed_blocks = (rows + kBlockRows - 1) / kBlockRows;
      const int64_t n_queries = int64_t(plan_queries[pi].size());
      if (plan_ids[pi] < 0 || n_queries * (ns - packed_blocks) <= rows * kPackCostPerRow) {
        in_place[pi * size_t(n_spans) + size_t(sp)] = 1;
        any_in_place = true;
        continue;
      }
      pack_rows(index, w.begin + s0 * kBlockRows, e, ns, ts);
      ts.stats.rows_packed += rows;
      score_packed(index, queries, plan_queries[pi], rows, sub_blocks, x, ts);
    }
  }
  if (!any_in_place) return;

  // In place, sub-chunk by sub-chunk, for the queries whose plan may match a row there.
  std::vector<int32_t>& dense_queries = ts.dense_queries;
  std::vector<int32_t>& dense_slot = ts.dense_slot;  // their plan slots
  for (int64_t b0 = 0; b0 < n_blocks; b0 += sub_blocks) {
    const int64_t nb = std::min(sub_blocks, n_blocks - b0);
    dense_queries.clear();
    dense_slot.clear();
    for (int32_t pi = 0; pi < int32_t(plan_ids.size()); ++pi) {
      if (!in_place[size_t(pi) * size_t(n_spans) + size_t(b0 / span_blocks)]) continue;
      const BlockEligibility* e = elig.data() + size_t(pi) * size_t(n_blocks) + b0;
      uint16_t any = 0;
      for (int64_t b = 0; b < nb; ++b) any |= e[b].possible;
      if (any == 0) continue;
      for (int32_t q : plan_queries[size_t(pi)]) {
        dense_queries.push_back(q);
        dense_slot.push_back(pi);
      }
    }
    const int64_t row0 = w.begin + b0 * kBlockRows;
    for (size_t t0 = 0; t0 < dense_queries.size(); t0 += kMaxTileQueries) {
      const int nt = int(std::min<size_t>(kMaxTileQueries, dense_queries.size() - t0));
      for (int t = 0; t < nt; ++t) {
        const BlockEligibility* e =
            elig.data() + size_t(dense_slot[t0 + size_t(t)]) * size_t(n_blocks) + b0;
        for (int64_t b = 0; b < nb; ++b) x.eligible[t * nb + b] = e[b].possible;
      }
      score_and_collect(
          index, queries, dense_queries.data() + t0, nt,
          index.codes + size_t(row0 / kBlockRows) * bb, index.scales + row0, nb,
          [&](int64_t b, int r) { return row0 + b * kBlockRows + r; },
          [&](int t, int64_t b, int r) {
            const BlockEligibility* e =
                elig.data() + size_t(dense_slot[t0 + size_t(t)]) * size_t(n_blocks) + b0;
            return (e[b].definite >> r) & 1u;
          },
          x, ts);
    }
  }
}

}  // namespace

void ScanStats::add(const ScanStats& o) {
  rows_scanned += o.rows_scanned;
  rows_packed += o.rows_packed;
  lists_scanned += o.lists_scanned;
  lists_skipped += o.lists_skipped;
  exact_checks += o.exact_checks;
  bloom_false_positives += o.bloom_false_positives;
  filters_cached += o.filters_cached;
}

void fused_scan(const ScanIndexView& index, const ScanQueriesView& queries,
                const ScanProbesView& probes, int64_t k, float* scores, int64_t* ids,
                int64_t* rows, ScanStats* stats, int threads) {
  ARGENT_CHECK(k >= 0, "fused_scan: k = ", k, " must be >= 0");
  ARGENT_CHECK((queries.floor_scores == nullptr) == (queries.floor_ids == nullptr),
               "fused_scan: floor_scores and floor_ids go together");
  ARGENT_CHECK(index.n_rows % kBlockRows == 0, "fused_scan: n_rows ", index.n_rows,
               " is not a multiple of ", kBlockRows);
  ARGENT_CHECK(index.n_rows < (int64_t(1) << 31), "fused_scan: a shard holds ", index.n_rows,
               " rows; the CPU scan supports fewer than 2^31");
  ARGENT_CHECK(index.d_pad > 0 && index.d_pad % kGroupDims == 0, "fused_scan: d_pad ",
               index.d_pad, " is not a positive multiple of ", kGroupDims);
  ScanStats total;
  std::vector<int64_t> start;
  std::vector<int32_t> members;
  bucket_queries(index, queries, probes, start, members, total);

  std::vector<WorkItem> work;
  for (int64_t l = 0; l < index.n_lists; ++l) {
    const int64_t nq = start[size_t(l + 1)] - start[size_t(l)];
    if (nq == 0) continue;
    const int64_t first = index.list_offsets[l];
    ARGENT_ASSERT(first % kBlockRows == 0, "list ", l, " starts at row ", first);
    const int64_t end = first + index.list_sizes[l];
    for (int64_t b = first; b < end; b += kChunkRows)
      work.push_back({l, b, std::min(end, b + kChunkRows), members.data() + start[size_t(l)],
                      int32_t(nq)});
  }
  // Larger items first, so the dynamic schedule ends with small ones and threads finish together.
  std::stable_sort(work.begin(), work.end(), [](const WorkItem& a, const WorkItem& b) {
    return (a.end - a.begin) * a.n_queries > (b.end - b.begin) * b.n_queries;
  });

  const int n_threads = threads > 0 ? threads : omp_get_max_threads();
  std::vector<std::unique_ptr<ThreadState>> states(static_cast<size_t>(n_threads));
#pragma omp parallel num_threads(n_threads)
  {
    const int tid = omp_get_thread_num();
    auto state = std::make_unique<ThreadState>();
    state->reservoirs.resize(size_t(queries.n));
    for (int64_t q = 0; q < queries.n; ++q) {
      if (queries.floor_scores)
        state->reservoirs[size_t(q)].reset(k, queries.floor_scores[q], queries.floor_ids[q]);
      else
        state->reservoirs[size_t(q)].reset(k);
    }
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < work.size(); ++i) scan_work_item(index, queries, work[i], *state);
    states[size_t(tid)] = std::move(state);
  }

  std::vector<const TopKReservoir*> parts(static_cast<size_t>(n_threads));
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads) firstprivate(parts)
  for (int64_t q = 0; q < queries.n; ++q) {
    for (int t = 0; t < n_threads; ++t)
      parts[size_t(t)] = states[size_t(t)] ? &states[size_t(t)]->reservoirs[size_t(q)] : nullptr;
    finish_topk(parts.data(), n_threads, k, index.ids, scores + q * k, ids + q * k,
                rows ? rows + q * k : nullptr);
  }
  for (const auto& s : states)
    if (s) total.add(s->stats);
  if (stats) stats->add(total);
}

}  // namespace argent
