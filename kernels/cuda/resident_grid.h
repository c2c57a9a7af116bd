// How many CTAs of a kernel stay resident on the current GPU at once: the size of a persistent
// grid; and the raise of a kernel's dynamic shared memory limit it may need first. Host-only;
// internal to kernels/cuda.
#pragma once

#include <cstddef>

namespace argent {
namespace cuda {

// Raises `kernel`'s dynamic shared memory limit to `bytes` on the current device (a launch
// asking for more than 48 KiB needs it), unless an earlier call raised it as far: later calls
// cost a lookup.
void allow_dynamic_shared_memory(const void* kernel, int bytes);

// Resident CTAs per SM (at least 1) times the SMs, for `threads` threads and `dynamic_smem`
// bytes of dynamic shared memory per CTA. Worked out once per (device, kernel, threads,
// dynamic_smem) and cached, so a launch on the hot path costs a lookup. max_dynamic_smem > 0:
// the kernel's dynamic shared memory limit is raised to it first (needed above 48 KiB).
int resident_ctas(const void* kernel, int threads, size_t dynamic_smem, int max_dynamic_smem = 0);

}  // namespace cuda
}  // namespace argent
