#include "kernels/cuda/gpu_build.h"

#include "common/cuda_check.h"

namespace argent {
namespace {

__global__ void bloom_signatures_kernel(const BloomParams p, const FeatureStoreView f,
                                        int64_t n_rows, uint64_t* sigs) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= n_rows) return;
  uint64_t* sig = sigs + row * p.words;
  for (int w = 0; w < p.words; ++w) sig[w] = 0;
  const int64_t off = f.offset[row];
  for (int32_t i = 0; i < f.count[row]; ++i) {
    const BloomTerm t = bloom_term(p, f.feature_ids[off + i], f.values[off + i]);
    sig[t.word] |= t.mask;
  }
}

__global__ void list_summaries_kernel(const uint64_t* sigs, int words, const int64_t* offsets,
                                      const int64_t* sizes, uint64_t* summaries) {
  const int64_t l = blockIdx.x;
  for (int w = 0; w < words; ++w) {
    uint64_t acc = 0;
    for (int64_t r = threadIdx.x; r < sizes[l]; r += blockDim.x)
      acc |= sigs[(offsets[l] + r) * words + w];
    // OR across the warp, then across warps through shared memory.
    for (int s = 16; s > 0; s /= 2) acc |= __shfl_xor_sync(0xFFFFFFFFu, acc, s);
    __shared__ unsigned long long warp_or[32];
    if ((threadIdx.x & 31) == 0) warp_or[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t all = 0;
      for (int i = 0; i < int(blockDim.x / 32); ++i) all |= warp_or[i];
      summaries[l * words + w] = all;
    }
    __syncthreads();
  }
}

}  // namespace

void run_gpu_bloom_signatures(const BloomParams& p, const FeatureStoreView& features,
                              int64_t n_rows, uint64_t* sigs, cudaStream_t stream) {
  if (n_rows == 0) return;
  bloom_signatures_kernel<<<unsigned((n_rows + 255) / 256), 256, 0, stream>>>(p, features, n_rows,
                                                                            sigs);
  ARGENT_CUDA_CHECK_LAUNCH("bloom_signatures_kernel");
}

void run_gpu_list_summaries(const uint64_t* sigs, int words, const int64_t* list_offsets,
                            const int64_t* list_sizes, int64_t n_lists, uint64_t* summaries,
                            cudaStream_t stream) {
  if (n_lists == 0) return;
  list_summaries_kernel<<<unsigned(n_lists), 256, 0, stream>>>(sigs, words, list_offsets,
                                                               list_sizes, summaries);
  ARGENT_CUDA_CHECK_LAUNCH("list_summaries_kernel");
}

}  // namespace argent
