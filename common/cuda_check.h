// ARGENT_CUDA_CHECK: the error idiom for CUDA runtime calls (common/error.h has the others).
// Host-only; include it from .cc and .cu files that call the CUDA runtime.
#pragma once

#include <cuda_runtime_api.h>

#include "common/error.h"

#define ARGENT_CUDA_CHECK(call)                                                              \
  do {                                                                                       \
    const cudaError_t argent_cuda_rc = (call);                                               \
    if (argent_cuda_rc != cudaSuccess)                                                       \
      ARGENT_THROW(::argent::ErrorCode::kInternal, #call, " failed: ",                       \
                   cudaGetErrorString(argent_cuda_rc));                                      \
  } while (0)

// After a kernel launch: a bad configuration shows up here, a fault at the next synchronisation.
#define ARGENT_CUDA_CHECK_LAUNCH(name)                                                       \
  do {                                                                                       \
    const cudaError_t argent_cuda_rc = cudaGetLastError();                                   \
    if (argent_cuda_rc != cudaSuccess)                                                       \
      ARGENT_THROW(::argent::ErrorCode::kInternal, "launch of ", name, " failed: ",          \
                   cudaGetErrorString(argent_cuda_rc));                                      \
  } while (0)
