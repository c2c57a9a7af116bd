// Integer hashing shared by partitioning and the Bloom filter. These functions define on-disk
// and cross-rank behaviour (which partition holds an id, which bits a feature sets), so they
// must never change for a given format version.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define ARGENT_HOST_DEVICE __host__ __device__
#else
#define ARGENT_HOST_DEVICE
#endif

namespace argent {

// SplitMix64 finalizer: a bijective 64-bit mix with good avalanche.
ARGENT_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The partition (of `partitions`) that owns item `id`.
ARGENT_HOST_DEVICE inline int32_t partition_of_id(int64_t id, int32_t partitions) {
  return int32_t(mix64(uint64_t(id) ^ 0xA5A5A5A5DEADBEEFull) % uint64_t(partitions));
}

// Hash of one categorical feature (feature id, value) under a Bloom seed.
ARGENT_HOST_DEVICE inline uint64_t feature_hash(int32_t feature, int64_t value, uint64_t seed) {
  return mix64(mix64(uint64_t(uint32_t(feature)) ^ seed) ^ uint64_t(value));
}

}  // namespace argent
