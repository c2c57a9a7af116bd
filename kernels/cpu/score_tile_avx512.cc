// AVX-512 VNNI score_tile. vpdpbusd multiplies unsigned by signed bytes, so item bytes are
// flipped to x + 128 (xor 0x80) and the exact correction 128 * sum(q) is subtracted afterwards:
// sum((x + 128) * q) - 128 * sum(q) = sum(x * q), all in int32, so scores equal the scalar ones.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni; called only when the CPU has them.
#include <immintrin.h>

#include "kernels/cpu/score_tile.h"
#include "kernels/layout.h"

namespace argent {
namespace {

// acc += dot4(x, q) per 32-bit lane. Inline asm because GCC 12 compiles the
// _mm512_dpbusd_epi32 intrinsic with a register copy around every instruction (the accumulator
// is not tied to the destination), which halved the kernel's throughput.
inline __m512i dpbusd(__m512i acc, __m512i x, __m512i q) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(q));
  return acc;
}

// The QT queries' codes, interleaved as qwords[g * QT + q] = 4 bytes of group g of query q, so
// every broadcast in the inner loop addresses one base register plus a constant.
template <int QT>
struct PackedQueries {
  alignas(64) int32_t words[kMaxDim / kGroupDims * QT];
};

template <int QT, int J>
inline void tile(const ScoreTileArgs& a, const PackedQueries<QT>& pq, int q0, int64_t b0) {
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m512i acc[QT][J];
#pragma GCC unroll 12
  for (int q = 0; q < QT; ++q)
#pragma GCC unroll 2
    for (int j = 0; j < J; ++j) acc[q][j] = _mm512_setzero_si512();
  const int8_t* base = a.blocks + size_t(b0) * block_bytes(a.d_pad);
  const size_t bstride = block_bytes(a.d_pad);
  const int groups = a.d_pad / kGroupDims;
  const int32_t* qw = pq.words;
  for (int g = 0; g < groups; ++g, qw += QT, base += kGroupBytes) {
    __m512i x[J];
#pragma GCC unroll 2
    for (int j = 0; j < J; ++j)
      x[j] = _mm512_xor_si512(_mm512_loadu_si512(base + size_t(j) * bstride), flip);
#pragma GCC unroll 12
    for (int q = 0; q < QT; ++q) {
      const __m512i qb = _mm512_set1_epi32(qw[q]);
#pragma GCC unroll 2
      for (int j = 0; j < J; ++j) acc[q][j] = dpbusd(acc[q][j], x[j], qb);
    }
  }
  for (int j = 0; j < J; ++j) {
    const int64_t b = b0 + j;
    const __m512 item_scale = _mm512_loadu_ps(a.item_scales + b * kBlockRows);
    for (int q = 0; q < QT; ++q) {
      const int qi = q0 + q;
      const __m512i dot = _mm512_sub_epi32(acc[q][j], _mm512_set1_epi32(a.query_bias[qi]));
      __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(a.query_scales[qi]));
      s = _mm512_mul_ps(s, item_scale);
      if (a.hits) {
        // Most blocks have no hit once the top-K threshold has risen: store their scores only
        // when the caller wants every score or some row is a hit.
        const __mmask16 ge = _mm512_cmp_ps_mask(s, _mm512_set1_ps(a.thresholds[qi]), _CMP_GE_OQ);
        const uint16_t hit = uint16_t(ge & a.eligible[qi * a.n_blocks + b]);
        a.hits[qi * a.n_blocks + b] = hit;
        if (a.scores && (hit || a.all_scores))
          _mm512_storeu_ps(a.scores + qi * a.score_stride + b * kBlockRows, s);
      } else if (a.scores) {
        _mm512_storeu_ps(a.scores + qi * a.score_stride + b * kBlockRows, s);
      }
    }
  }
}

template <int QT>
void run_queries(const ScoreTileArgs& a, int q0) {
  PackedQueries<QT> pq;
  const int groups = a.d_pad / kGroupDims;
  for (int q = 0; q < QT; ++q)
    for (int g = 0; g < groups; ++g)
      __builtin_memcpy(&pq.words[g * QT + q], a.query_codes[q0 + q] + g * kGroupDims, 4);
  int64_t b = 0;
  for (; b + 2 <= a.n_blocks; b += 2) tile<QT, 2>(a, pq, q0, b);
  if (b < a.n_blocks) tile<QT, 1>(a, pq, q0, b);
}

using RunFn = void (*)(const ScoreTileArgs&, int);
constexpr RunFn kRun[kMaxTileQueries + 1] = {
    nullptr,          run_queries<1>,  run_queries<2>, run_queries<3>, run_queries<4>,
    run_queries<5>,   run_queries<6>,  run_queries<7>, run_queries<8>, run_queries<9>,
    run_queries<10>,  run_queries<11>, run_queries<12>};

}  // namespace

void score_tile_avx512(const ScoreTileArgs& a) {
  // Equal tiles (64 queries: 6 x 10-11, not 5 x 12 + 4): a small tile loads every item line for
  // few queries, so balanced tiles keep the dot products the bottleneck.
  const int tiles = (a.n_queries + kMaxTileQueries - 1) / kMaxTileQueries;
  for (int t = 0, q0 = 0; t < tiles; ++t) {
    const int n = (a.n_queries - q0) / (tiles - t);
    kRun[n](a, q0);
    q0 += n;
  }
}

}  // namespace argent
