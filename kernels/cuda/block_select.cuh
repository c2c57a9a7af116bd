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
  uint32_t count;  // keys in the digit's bin
  uint64_t found;  // the key, once its prefix is its own
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
    // The digit holding the rank-th key: one warp, 8 bins per lane, a scan over the lanes (one
    // thread walking the 256 bins took ~5 us per pass: most of a probe's 64-bit select).
    if (threadIdx.x < 32) {
      uint32_t bins[8], mine = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) mine += bins[j] = sh.hist[8 * lane + j];
      uint32_t upto = mine;  // bins [0, 8 * lane + 8)
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, upto, o);
        if (lane >= o) upto += v;
      }
      const uint32_t below = upto - mine;
      const uint32_t holder = __ballot_sync(0xFFFFFFFFu, below < rank && rank <= upto);
      // Past every bin (not reached: the counted keys number at least rank): the last digit.
      const int owner = holder ? __ffs(holder) - 1 : 31;
      if (lane == owner) {
        uint32_t cum = below, d = 0;
        for (; d < 7; ++d) {
          if (cum + bins[d] >= rank) break;
          cum += bins[d];
        }
        sh.digit = 8 * lane + d;
        sh.before = cum;
        sh.count = bins[d];
      }
    }
    __syncthreads();
    prefix |= Key(sh.digit) << shift;
    mask |= Key(0xFF) << shift;
    rank -= sh.before;
    const bool alone = sh.count == 1 && shift > 0;
    __syncthreads();
    if (alone) {
      // One key has the prefix: it is the answer, and one read finds it where the remaining
      // passes would each read every key (a probe's 64-bit keys, score then list, are
      // usually told apart by their top 16 to 24 bits).
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const Key k = load(i);
        if ((k & mask) == prefix) sh.found = uint64_t(k);
      }
      __syncthreads();
      return Key(sh.found);
    }
  }
  return prefix;
}

}  // namespace cuda
}  // namespace argent
