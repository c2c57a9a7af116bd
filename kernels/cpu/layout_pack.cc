#include "kernels/cpu/layout_pack.h"

#include <cstring>

#include "kernels/layout.h"

namespace argent {

void pack_rows(const int8_t* rows, int64_t n, int d_pad, int8_t* blocked, int64_t first_row) {
  const int groups = d_pad / kGroupDims;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = first_row + i;
    int8_t* base = blocked + code_offset(row, d_pad, 0);
    for (int g = 0; g < groups; ++g)
      std::memcpy(base + size_t(g) * kGroupBytes, rows + i * d_pad + g * kGroupDims, kGroupDims);
  }
}

void unpack_row(const int8_t* blocked, int d_pad, int64_t row, int8_t* out) {
  const int8_t* base = blocked + code_offset(row, d_pad, 0);
  for (int g = 0; g < d_pad / kGroupDims; ++g)
    std::memcpy(out + g * kGroupDims, base + size_t(g) * kGroupBytes, kGroupDims);
}

void clear_row(int8_t* blocked, int d_pad, int64_t row) {
  int8_t* base = blocked + code_offset(row, d_pad, 0);
  for (int g = 0; g < d_pad / kGroupDims; ++g)
    std::memset(base + size_t(g) * kGroupBytes, 0, kGroupDims);
}

}  // namespace argent
