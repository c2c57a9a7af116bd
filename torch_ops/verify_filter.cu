#include "torch_ops/verify_filter.h"

#include "common/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"

namespace argent::ops {
namespace {

__global__ void verify_filter_kernel(const FilterOp* ops, const int32_t* plan_begin,
                                     const int32_t* plan_len, const int32_t* plan_of_query,
                                     const int64_t* rows, int64_t n, int64_t k,
                                     FeatureStoreView f, bool* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * k) return;
  const int64_t row = rows[i];
  if (row < 0) {
    out[i] = false;
    return;
  }
  const int32_t p = plan_of_query[i / k];
  if (p < 0) {
    out[i] = true;
    return;
  }
  // The scan kernel's own exact test (kernels/cuda/device_utils.cuh).
  const int64_t first = f.offset[row];
  out[i] = cuda::eval_plan_exact(ops + plan_begin[p], plan_len[p], f.feature_ids + first,
                                 f.values + first, f.count[row]);
}

}  // namespace

void run_verify_filter(const FilterOp* ops, const int32_t* plan_begin, const int32_t* plan_len,
                       const int32_t* plan_of_query, const int64_t* rows, int64_t n, int64_t k,
                       const FeatureStoreView& features, bool* out, cudaStream_t stream) {
  if (n * k == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = (n * k + kThreads - 1) / kThreads;
  verify_filter_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(
      ops, plan_begin, plan_len, plan_of_query, rows, n, k, features, out);
  ARGENT_CUDA_CHECK_LAUNCH("verify_filter_kernel");
}

}  // namespace argent::ops
