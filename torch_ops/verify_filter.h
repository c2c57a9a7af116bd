// Exact filter verification of result rows on the GPU: argent::verify_filter's CUDA kernel, the
// device twin of a loop over kernels/cpu/bloom.h eval_plan_exact. Host-only header.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/bloom.h"

namespace argent::ops {

// out[q * k + j] = rows[q * k + j] >= 0 and the row's features satisfy query q's plan (plan
// plan_of_query[q] of ops [plan_begin[p], plan_begin[p] + plan_len[p]); -1: no filter, true).
// All pointers are device pointers; rows must be -1 or valid rows of `features`.
void run_verify_filter(const FilterOp* ops, const int32_t* plan_begin, const int32_t* plan_len,
                       const int32_t* plan_of_query, const int64_t* rows, int64_t n, int64_t k,
                       const FeatureStoreView& features, bool* out, cudaStream_t stream);

}  // namespace argent::ops
