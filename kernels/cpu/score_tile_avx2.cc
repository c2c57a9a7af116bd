// AVX2 score_tile (no VNNI). Codes are sign-extended to int16 and multiplied with vpmaddwd,
// which is exact (no saturation, unlike vpmaddubsw): each 16-byte load holds 4 rows x 4 dims;
// the products of a row land in two adjacent int32 lanes, folded together at the end.
// Compiled with -mavx2 -mfma; called only when the CPU has AVX2.
#include <immintrin.h>

#include "kernels/cpu/score_tile.h"
#include "kernels/layout.h"

namespace argent {
namespace {

constexpr int kQ = 2;  // queries per pass: 2 x 4 accumulators + loads fit in 16 ymm registers

template <int QT>
void block_pass(const ScoreTileArgs& a, int q0, int64_t b) {
  __m256i acc[QT][4];
  for (int q = 0; q < QT; ++q)
    for (int k = 0; k < 4; ++k) acc[q][k] = _mm256_setzero_si256();
  const int8_t* block = a.blocks + size_t(b) * block_bytes(a.d_pad);
  for (int g = 0; g < a.d_pad / kGroupDims; ++g) {
    __m256i x[4];
    for (int k = 0; k < 4; ++k)
      x[k] = _mm256_cvtepi8_epi16(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(block + size_t(g) * kGroupBytes + 16 * k)));
    for (int q = 0; q < QT; ++q) {
      const int8_t* qc = a.query_codes[q0 + q] + g * kGroupDims;
      const __m256i qv = _mm256_setr_epi16(qc[0], qc[1], qc[2], qc[3], qc[0], qc[1], qc[2], qc[3],
                                           qc[0], qc[1], qc[2], qc[3], qc[0], qc[1], qc[2], qc[3]);
      for (int k = 0; k < 4; ++k)
        acc[q][k] = _mm256_add_epi32(acc[q][k], _mm256_madd_epi16(x[k], qv));
    }
  }
  for (int q = 0; q < QT; ++q) {
    const int qi = q0 + q;
    // acc[k] lanes: (row 4k, dims 0-1), (row 4k, dims 2-3), (row 4k+1, ...), ... per 128-bit
    // half two rows. hadd folds the pairs: rows 0..7 from acc[0..1], rows 8..15 from acc[2..3].
    __m256i lo = _mm256_hadd_epi32(acc[q][0], acc[q][1]);  // r0 r1 r4 r5 | r2 r3 r6 r7
    __m256i hi = _mm256_hadd_epi32(acc[q][2], acc[q][3]);
    lo = _mm256_permutevar8x32_epi32(lo, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
    hi = _mm256_permutevar8x32_epi32(hi, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
    uint16_t hit = 0;
    const __m256 qs = _mm256_set1_ps(a.query_scales[qi]);
    const __m256 thr = _mm256_set1_ps(a.thresholds[qi]);
    const __m256i dots[2] = {lo, hi};
    for (int h = 0; h < 2; ++h) {
      const int64_t row = b * kBlockRows + 8 * h;
      __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(dots[h]), qs);
      s = _mm256_mul_ps(s, _mm256_loadu_ps(a.item_scales + row));
      if (a.scores) _mm256_storeu_ps(a.scores + qi * a.score_stride + row, s);
      hit |= uint16_t(_mm256_movemask_ps(_mm256_cmp_ps(s, thr, _CMP_GE_OQ)) << (8 * h));
    }
    if (a.hits) a.hits[qi * a.n_blocks + b] = hit & a.eligible[qi * a.n_blocks + b];
  }
}

}  // namespace

void score_tile_avx2(const ScoreTileArgs& a) {
  for (int q0 = 0; q0 < a.n_queries; q0 += kQ) {
    for (int64_t b = 0; b < a.n_blocks; ++b) {
      if (a.n_queries - q0 >= kQ) {
        block_pass<kQ>(a, q0, b);
      } else {
        block_pass<1>(a, q0, b);
      }
    }
  }
}

}  // namespace argent
