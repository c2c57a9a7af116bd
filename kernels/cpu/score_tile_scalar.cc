// Portable reference implementation of score_tile; the SIMD versions must match it bit for bit.
#include "kernels/cpu/score_tile.h"
#include "kernels/layout.h"

namespace argent {

void score_tile_scalar(const ScoreTileArgs& a) {
  for (int q = 0; q < a.n_queries; ++q) {
    const int8_t* qc = a.query_codes[q];
    for (int64_t b = 0; b < a.n_blocks; ++b) {
      const int8_t* block = a.blocks + size_t(b) * block_bytes(a.d_pad);
      uint16_t hit = 0;
      for (int r = 0; r < kBlockRows; ++r) {
        int32_t dot = 0;
        for (int g = 0; g < a.d_pad / kGroupDims; ++g)
          for (int k = 0; k < kGroupDims; ++k)
            dot += int32_t(block[g * kGroupBytes + r * kGroupDims + k]) * qc[g * kGroupDims + k];
        const int64_t row = b * kBlockRows + r;
        const float s = combine_score(dot, a.query_scales[q], a.item_scales[row]);
        if (a.scores) a.scores[q * a.score_stride + row] = s;
        if (s >= a.thresholds[q]) hit |= uint16_t(1u << r);
      }
      if (a.hits) a.hits[q * a.n_blocks + b] = hit & a.eligible[q * a.n_blocks + b];
    }
  }
}

}  // namespace argent
