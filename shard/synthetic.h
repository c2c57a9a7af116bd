// A reproducible synthetic catalogue for demos, tests and benchmarks: embeddings from a mixture
// of Gaussian clusters (so IVF has structure to find) and Zipf-distributed categorical features
// (a few values are common, most are rare, as with real categories and creators).
#pragma once

#include <cstdint>
#include <vector>

#include "common/config.h"
#include "shard/item_set.h"

namespace argent {

// `n` items of dimension `dim`, ids 0..n-1. Item i depends only on (seed, i, cfg): the same
// arguments give the same items on any machine and thread count.
//   embedding = center[c] + cluster_spread * g / sqrt(dim), c uniform over cfg.clusters centers
//               (unit vectors), g standard normal;
//   features  = for f < features_per_item: (f, Zipf(values_per_feature, zipf_exponent)) and,
//               for half of the items, a second value of feature 0 (multi-valued features).
ItemSet generate_synthetic_items(int64_t n, int dim, uint64_t seed, const SyntheticConfig& cfg);

// `n` queries [n, dim] drawn like items (same centers for the same seed), from a separate stream.
std::vector<float> generate_synthetic_queries(int64_t n, int dim, uint64_t seed,
                                              const SyntheticConfig& cfg);

}  // namespace argent
