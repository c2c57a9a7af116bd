// Exact float search, the reference the benchmark's recall is measured against: float32 inner
// products (cosine when the index normalizes) over the original embeddings, with the filter
// evaluated exactly. Independent of the int8 kernels on purpose.
#pragma once

#include <cstdint>
#include <vector>

namespace argent {

// Top-k item positions (indices into items) for each query, best first; eligible [n_items]
// (empty: all eligible). Returns [n_queries, k] with -1 padding.
std::vector<int64_t> exact_float_topk(const float* items, int64_t n_items, const float* queries,
                                      int64_t n_queries, int dim, bool normalize, int64_t k,
                                      const std::vector<uint8_t>& eligible);

}  // namespace argent
