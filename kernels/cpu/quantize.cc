#include "kernels/cpu/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace argent {
namespace {

// A row whose largest magnitude is below 2^kTinyRowExponent is first scaled up by a power of two,
// exactly: for smaller rows, 1 / ||x|| and 127 / max|x| overflow float (a subnormal row used to
// get scale inf, which no rank can apply). Rows in the normal range keep the plain arithmetic, so
// their codes and scales do not depend on this.
constexpr int kTinyRowExponent = -60;

// The exact power-of-two factor that lifts a row with largest magnitude `amax` to at least
// 2^kTinyRowExponent; 1 for rows already there (and for zero rows). At most 2^89, a float.
float tiny_row_factor(float amax) {
  if (!(amax > 0) || std::ilogb(amax) >= kTinyRowExponent) return 1.0f;
  return std::ldexp(1.0f, kTinyRowExponent - std::ilogb(amax));
}

}  // namespace

void quantize_rows(const float* x, int64_t n, int dim, int d_pad, bool normalize, int8_t* codes,
                   float* scales, int32_t* bias) {
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * dim;
    int8_t* out = codes + i * d_pad;
    float raw_max = 0;
    for (int j = 0; j < dim; ++j) raw_max = std::max(raw_max, std::fabs(row[j]));
    const float lift = tiny_row_factor(raw_max);
    float norm_inv = 1.0f;
    if (normalize) {
      double sq = 0;
      for (int j = 0; j < dim; ++j) sq += double(row[j] * lift) * (row[j] * lift);
      norm_inv = sq > 0 ? float(1.0 / std::sqrt(sq)) : 0.0f;
    }
    float amax = 0;
    for (int j = 0; j < dim; ++j) amax = std::max(amax, std::fabs(row[j] * lift * norm_inv));
    std::memset(out, 0, size_t(d_pad));
    int32_t sum = 0;
    if (amax > 0) {
      const float inv = 127.0f / amax;
      for (int j = 0; j < dim; ++j) {
        const long q = std::lrint(row[j] * lift * norm_inv * inv);
        out[j] = int8_t(std::clamp<long>(q, -127, 127));
        sum += out[j];
      }
    }
    // Normalized rows do not depend on the lift; raw rows take it back out of the scale.
    scales[i] = normalize ? amax / 127.0f : amax / 127.0f / lift;
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
