#include "kernels/cpu/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace argent {
namespace {

// A row whose largest magnitude is outside [2^-kRowExponentBound, 2^kRowExponentBound) is first
// scaled by an exact power of two into it. For smaller rows 1 / ||x|| and 127 / max|x| overflow
// float (a subnormal row used to get scale inf, which no rank can apply); for larger ones
// 1 / ||x|| is subnormal (norm > 2^126) and the normalized values lose their precision. Rows in
// the range keep the plain arithmetic, so their codes and scales do not depend on this.
constexpr int kRowExponentBound = 60;

// The exact power-of-two factor that brings a row with largest magnitude `amax` into the range:
// at most 2^89 up, 2^-67 down, both floats; 1 for rows already there (and for zero rows).
float row_range_factor(float amax) {
  if (!(amax > 0) || !std::isfinite(amax)) return 1.0f;
  const int exponent = std::ilogb(amax);
  if (exponent < -kRowExponentBound) return std::ldexp(1.0f, -kRowExponentBound - exponent);
  if (exponent >= kRowExponentBound) return std::ldexp(1.0f, kRowExponentBound - 1 - exponent);
  return 1.0f;
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
    const float lift = row_range_factor(raw_max);
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
    // Normalized rows do not depend on the factor; raw rows take it back out of the scale.
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
