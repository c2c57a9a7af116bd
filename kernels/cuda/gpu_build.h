// Building an index's filter tables on the GPU: Bloom signatures from the exact feature store
// and each list's summary (the OR of its rows' signatures), as kernels/cpu/bloom.h computes
// them on the CPU. Host-only header; every pointer is a device pointer.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/bloom.h"

namespace argent {

// sigs [n_rows, p.words] from the rows' feature sets (rows with count 0 get all-zero words).
void run_gpu_bloom_signatures(const BloomParams& p, const FeatureStoreView& features,
                              int64_t n_rows, uint64_t* sigs, cudaStream_t stream);

// summaries [n_lists, words]: OR of sigs over rows [offset[l], offset[l] + size[l]).
void run_gpu_list_summaries(const uint64_t* sigs, int words, const int64_t* list_offsets,
                            const int64_t* list_sizes, int64_t n_lists, uint64_t* summaries,
                            cudaStream_t stream);

}  // namespace argent
