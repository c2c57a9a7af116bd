#include "kernels/cpu/dense_scores.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/cpu/score_tile.h"
#include "kernels/layout.h"

namespace argent {
namespace {
constexpr int64_t kRowChunk = 1024;
}

void dense_scores(const int8_t* query_codes, const float* query_scales, const int32_t* query_bias,
                  int64_t n_queries, const int8_t* blocked, const float* row_scales,
                  int64_t n_rows, int d_pad, float* out, int64_t out_stride) {
  const int64_t q_tiles = (n_queries + kMaxTileQueries - 1) / kMaxTileQueries;
  const int64_t r_chunks = (n_rows + kRowChunk - 1) / kRowChunk;
  const ScoreTileFn fn = score_tile_fn(active_simd_level());
#pragma omp parallel for collapse(2) schedule(static) if (q_tiles * r_chunks > 1)
  for (int64_t qt = 0; qt < q_tiles; ++qt) {
    for (int64_t rc = 0; rc < r_chunks; ++rc) {
      const int64_t q0 = qt * kMaxTileQueries;
      const int nq = int(std::min<int64_t>(kMaxTileQueries, n_queries - q0));
      const int64_t r0 = rc * kRowChunk;
      const int64_t nr = std::min(kRowChunk, n_rows - r0);
      const int8_t* qcodes[kMaxTileQueries];
      float thresholds[kMaxTileQueries];
      for (int t = 0; t < nq; ++t) {
        qcodes[t] = query_codes + (q0 + t) * d_pad;
        thresholds[t] = -std::numeric_limits<float>::infinity();
      }
      ScoreTileArgs a;
      a.query_codes = qcodes;
      a.query_bias = query_bias + q0;
      a.query_scales = query_scales + q0;
      a.thresholds = thresholds;
      a.n_queries = nq;
      a.blocks = blocked + size_t(r0 / kBlockRows) * block_bytes(d_pad);
      a.item_scales = row_scales + r0;
      a.n_blocks = nr / kBlockRows;
      a.d_pad = d_pad;
      a.eligible = nullptr;
      a.scores = out + q0 * out_stride + r0;
      a.score_stride = out_stride;
      a.hits = nullptr;
      fn(a);
    }
  }
}

void select_probes(const float* scores, int64_t n_queries, int64_t n_lists, int nprobe,
                   const std::function<bool(int64_t, int32_t)>& usable, int32_t* out) {
#pragma omp parallel for schedule(static) if (n_queries > 8)
  for (int64_t q = 0; q < n_queries; ++q) {
    std::vector<int32_t> cand(static_cast<size_t>(n_lists));
    std::iota(cand.begin(), cand.end(), 0);
    const float* s = scores + q * n_lists;
    auto better = [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); };
    // The lists in score order, sorted a prefix at a time (a partial sort keeps a heap of only
    // the prefix, so each list past it costs one well-predicted comparison): usually the first
    // prefix holds nprobe usable lists.
    int64_t sorted = 0, next = 0;
    int found = 0;
    while (found < nprobe && next < n_lists) {
      if (next == sorted) {
        const int64_t more = std::min(n_lists, std::max<int64_t>(2 * sorted, nprobe + 8));
        std::partial_sort(cand.begin() + sorted, cand.begin() + more, cand.end(), better);
        sorted = more;
      }
      const int32_t l = cand[size_t(next++)];
      if (usable(q, l)) out[q * nprobe + found++] = l;
    }
    for (int i = found; i < nprobe; ++i) out[q * nprobe + i] = -1;
  }
}

}  // namespace argent
