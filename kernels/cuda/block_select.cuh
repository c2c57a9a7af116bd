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

// Keys loaded at once per thread and pass: independent loads in flight instead of one latency
// per key (a select of one query's ~80k sample scores is one CTA alone on the GPU).
constexpr int kSelectUnroll = 4;

// Returns the rank-th smallest key (rank is 1-based, 1 <= rank <= n). Every thread of the CTA
// must call it with the same arguments, and blockDim.x must be a multiple of 32; `load(i)` gives
// key i for 0 <= i < n.
template <typename Key, typename Load>
__device__ Key block_select(Load load, int64_t n, int64_t rank, SelectShared& sh) {
  const int lane = threadIdx.x & 31;
  const int64_t step = int64_t(blockDim.x) * kSelectUnroll;
  Key prefix = 0, mask = 0;
  for (int shift = int(sizeof(Key)) * 8 - 8; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) sh.hist[i] = 0;
    __syncthreads();
    // The trip count is the same for every thread, so whole warps reach __match_any_sync: the
    // lanes whose keys fall in one bin add once. Scores share their top bits (the first pass sees
    // nearly every key in one or two bins), and per-key shared atomics on one bin serialise.
    for (int64_t base = 0; base < n; base += step) {
      Key k[kSelectUnroll];
      bool live[kSelectUnroll];
#pragma unroll
      for (int u = 0; u < kSelectUnroll; ++u) {
        const int64_t i = base + int64_t(u) * blockDim.x + threadIdx.x;
        live[u] = i < n;
        k[u] = live[u] ? load(i) : Key(0);
      }
#pragma unroll
      for (int u = 0; u < kSelectUnroll; ++u) {
        const bool counted = live[u] && (k[u] & mask) == prefix;
        const uint32_t bin = counted ? uint32_t((k[u] >> shift) & 0xFF) : 256u;
        const uint32_t peers = __match_any_sync(0xFFFFFFFFu, bin);
        if (counted && __ffs(peers) - 1 == lane) atomicAdd(&sh.hist[bin], uint32_t(__popc(peers)));
      }
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
