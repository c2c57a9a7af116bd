// The memory layout of int8 item codes, shared by the CPU and CUDA kernels.
//
// Items are stored in blocks of kBlockRows rows. Inside a block, dimensions are grouped in fours
// and the groups are interleaved across rows:
//
//   byte offset of (row r, dim j) = (r / 16) * 16 * d_pad        block
//                                 + (j / 4) * 64                  group of 4 dims
//                                 + (r % 16) * 4 + (j % 4)        row within block, dim in group
//
// so one 64-byte line holds 4 dims of 16 rows. An AVX-512 VNNI instruction multiplies that line by
// 4 broadcast query bytes and accumulates 16 row dot products in 16 lanes, with no horizontal
// reduction; on the GPU, the same line is what one int8 mma B-fragment load reads. d_pad is the
// dimension rounded up to a multiple of 4; padding dims are zero in items and queries.
#pragma once

#include <cstddef>
#include <cstdint>

namespace argent {

constexpr int kBlockRows = 16;
constexpr int kGroupDims = 4;
constexpr int kGroupBytes = kBlockRows * kGroupDims;  // 64: one cache line
constexpr int kMaxDim = 2048;
constexpr int64_t kEmptyId = -1;  // id of a row that holds no live item

inline int padded_dim(int dim) { return (dim + kGroupDims - 1) / kGroupDims * kGroupDims; }
inline int64_t round_up_rows(int64_t rows) {
  return (rows + kBlockRows - 1) / kBlockRows * kBlockRows;
}
inline size_t block_bytes(int d_pad) { return size_t(kBlockRows) * size_t(d_pad); }
inline size_t code_offset(int64_t row, int d_pad, int dim) {
  return size_t(row / kBlockRows) * block_bytes(d_pad) + size_t(dim / kGroupDims) * kGroupBytes +
         size_t(row % kBlockRows) * kGroupDims + size_t(dim % kGroupDims);
}

// The score of an item for a query: the exact int32 dot product of their int8 codes, scaled.
// Evaluated as ((float)dot * query_scale) * item_scale, in that order and rounding to nearest at
// each step, on every backend; kernels are compiled with -ffp-contract=off so no FMA changes it.
inline float combine_score(int32_t dot, float query_scale, float item_scale) {
  return float(dot) * query_scale * item_scale;
}

}  // namespace argent
