// Conversions between row-major int8 codes and the blocked layout of kernels/layout.h.
#pragma once

#include <cstdint>

namespace argent {

// Copies `n` row-major rows [n, d_pad] into `blocked` starting at row `first_row` (any row, not
// only block starts). `blocked` must hold at least round_up_rows(first_row + n) rows.
void pack_rows(const int8_t* rows, int64_t n, int d_pad, int8_t* blocked, int64_t first_row);

// Copies one row out of the blocked layout into `out` [d_pad].
void unpack_row(const int8_t* blocked, int d_pad, int64_t row, int8_t* out);

// Zeroes one row in the blocked layout.
void clear_row(int8_t* blocked, int d_pad, int64_t row);

}  // namespace argent
