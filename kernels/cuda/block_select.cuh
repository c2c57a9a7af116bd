// Radix selection inside one CTA: the rank-th smallest of n keys produced by a functor, 8 bits
// per pass with a shared-memory histogram, so nothing but the keys' source is read from memory.
#pragma once

#include <cstdint>

namespace argent {
namespace cuda {

struct SelectShared {
  uint32_t hist[256];
  uint32_t digit;
  uint32_t before;
};

// Returns the rank-th smallest key (rank is 1-based, 1 <= rank <= n). Every thread of the CTA
// must call it with the same arguments; `load(i)` gives key i for 0 <= i < n.
template <typename Key, typename Load>
__device__ Key block_select(Load load, int64_t n, int64_t rank, SelectShared& sh) {
  Key prefix = 0, mask = 0;
  for (int shift = int(sizeof(Key)) * 8 - 8; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) sh.hist[i] = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const Key k = load(i);
      if ((k & mask) == prefix) atomicAdd(&sh.hist[(k >> shift) & 0xFF], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint32_t cum = 0, d = 0;
      for (; d < 255; ++d) {
        if (cum + sh.hist[d] >= rank) break;
        cum += sh.hist[d];
      }
      sh.digit = d;
      sh.before = cum;
    }
    __syncthreads();
    prefix |= Key(sh.digit) << shift;
    mask |= Key(0xFF) << shift;
    rank -= sh.before;
    __syncthreads();
  }
  return prefix;
}

}  // namespace cuda
}  // namespace argent
