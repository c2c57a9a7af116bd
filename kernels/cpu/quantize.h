// Symmetric int8 quantization, one scale per row.
#pragma once

#include <cstdint>

namespace argent {

// Quantizes `n` rows of `dim` floats (row-major, stride `dim`) into `codes` [n, d_pad] row-major,
// `scales` [n] and, when `bias` is not null, `bias` [n] = 128 * sum of the row's codes (the
// correction the unsigned-by-signed VNNI dot product needs). With `normalize`, each row is first
// divided by its L2 norm (zero rows stay zero). code = clamp(lrint(x * (127 / max|x|)), -127, 127),
// scale = max|x| / 127; an all-zero row gets scale 0. Inputs must be finite (checked by callers).
// Rows below 2^-60 are quantized as the same row scaled up by a power of two (same codes); without
// `normalize`, one below about 2^-133 then gets scale 0 (its scores are 0, as float would round
// them), since its max|x| / 127 is below the smallest float.
// Multi-threaded over rows; all outputs are caller-owned.
void quantize_rows(const float* x, int64_t n, int dim, int d_pad, bool normalize, int8_t* codes,
                   float* scales, int32_t* bias);

// bias [n] for rows that are already int8 codes [n, d_pad] row-major.
void code_bias(const int8_t* codes, int64_t n, int d_pad, int32_t* bias);

// Inverse of quantize_rows (without the normalization): out [n, dim] = codes * scale.
void dequantize_rows(const int8_t* codes, const float* scales, int64_t n, int dim, int d_pad,
                     float* out);

}  // namespace argent
