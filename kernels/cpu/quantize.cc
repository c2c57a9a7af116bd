#include "kernels/cpu/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace argent {

void quantize_rows(const float* x, int64_t n, int dim, int d_pad, bool normalize, int8_t* codes,
                   float* scales, int32_t* bias) {
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * dim;
    int8_t* out = codes + i * d_pad;
    float norm_inv = 1.0f;
    if (normalize) {
      double sq = 0;
      for (int j = 0; j < dim; ++j) sq += double(row[j]) * row[j];
      norm_inv = sq > 0 ? float(1.0 / std::sqrt(sq)) : 0.0f;
    }
    float amax = 0;
    for (int j = 0; j < dim; ++j) amax = std::max(amax, std::fabs(row[j] * norm_inv));
    std::memset(out, 0, size_t(d_pad));
    int32_t sum = 0;
    if (amax > 0) {
      const float inv = 127.0f / amax;
      for (int j = 0; j < dim; ++j) {
        const long q = std::lrint(row[j] * norm_inv * inv);
        out[j] = int8_t(std::clamp<long>(q, -127, 127));
        sum += out[j];
      }
    }
    scales[i] = amax / 127.0f;
    if (bias) bias[i] = 128 * sum;
  }
}

void code_bias(const int8_t* codes, int64_t n, int d_pad, int32_t* bias) {
  for (int64_t i = 0; i < n; ++i) {
    int32_t sum = 0;
    for (int j = 0; j < d_pad; ++j) sum += codes[i * d_pad + j];
    bias[i] = 128 * sum;
  }
}

void dequantize_rows(const int8_t* codes, const float* scales, int64_t n, int dim, int d_pad,
                     float* out) {
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) out[i * dim + j] = float(codes[i * d_pad + j]) * scales[i];
}

}  // namespace argent
