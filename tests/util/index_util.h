// Helpers for tests that build and search real indexes (they include ATen through
// shard/shard_index.h, so they live apart from test_util.h).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/config.h"
#include "shard/item_set.h"
#include "shard/local_engine.h"
#include "shard/query_batch.h"
#include "tests/util/test_util.h"

namespace argent::test {

// n items [n, dim] of standard normal floats with the given ids and random_features(n_features,
// n_values, p) each.
ItemSet random_items(Rng& rng, int64_t n, int dim, const std::vector<int64_t>& ids, int n_features,
                     int n_values, double p);

FeatureList features_of(const ItemSet& items, int64_t i);

// What a loaded shard holds for its live items, read back row by row: codes row-major
// [n, d_pad] (unpacked from the blocked layout), scales and exact features.
struct StoredItems {
  int d_pad = 0;
  std::vector<int64_t> ids;
  std::vector<int8_t> codes;
  std::vector<float> scales;
  std::vector<FeatureList> features;
};
StoredItems read_back(const ShardIndex& shard);

// Exact scores of one quantized query against every stored item whose features satisfy
// `eligible` (null: all), in float64 over the dequantized vectors:
//   sum_j (q_code_j * q_scale) * (x_code_j * x_scale),
// the real number the engine's float score (kernels/layout.h combine_score) rounds.
std::vector<Scored> exact_int8_reference(const StoredItems& items, const QueryBatch& q, int64_t qi,
                                         const RefExpr* eligible);

// Float64 inner products (cosine when `normalize`) of raw query x [dim] against raw items,
// restricted to items satisfying `eligible` (null: all): the exact float search.
std::vector<Scored> exact_float_reference(const ItemSet& items, const float* x, bool normalize,
                                          const RefExpr* eligible);

// A small index configuration for tests: few partitions, few k-means iterations.
IndexConfig small_index_config(int32_t partitions, int64_t nlist);

}  // namespace argent::test
