// How many CTAs of a kernel stay resident on the current GPU at once: the size of a persistent
// grid. Host-only; internal to kernels/cuda.
#pragma once

#include <cstddef>

namespace argent {
namespace cuda {

// Resident CTAs per SM (at least 1) times the SMs, for `threads` threads and `dynamic_smem`
// bytes of dynamic shared memory per CTA. Worked out once per (device, kernel, threads,
// dynamic_smem) and cached, so a launch on the hot path costs a lookup. max_dynamic_smem > 0:
// the kernel's dynamic shared memory limit is raised to it first (needed above 48 KiB).
int resident_ctas(const void* kernel, int threads, size_t dynamic_smem, int max_dynamic_smem = 0);

}  // namespace cuda
}  // namespace argent
