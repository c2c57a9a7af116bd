#include "kernels/cuda/resident_grid.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "common/cuda_check.h"

namespace argent {
namespace cuda {

void allow_dynamic_shared_memory(const void* kernel, int bytes) {
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, int> limit;  // the largest asked for so far
  int device = 0;
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mu);
  int& current = limit[std::make_pair(device, kernel)];
  if (bytes <= current) return;
  ARGENT_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  current = bytes;
}

int resident_ctas(const void* kernel, int threads, size_t dynamic_smem, int max_dynamic_smem) {
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, int, size_t>, int> cache;
  int device = 0;
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(device, kernel, threads, dynamic_smem);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (max_dynamic_smem > 0) allow_dynamic_shared_memory(kernel, max_dynamic_smem);
    int per_sm = 0, sms = 0;
    ARGENT_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, dynamic_smem));
    ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    it = cache.emplace(key, std::max(1, per_sm) * sms).first;
  }
  return it->second;
}

}  // namespace cuda
}  // namespace argent
