// A move-only owner of one device allocation that grows on demand (contents are not kept).
// Host-only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "common/cuda_check.h"

namespace argent {

class DeviceArray {
 public:
  DeviceArray() = default;
  ~DeviceArray() { release(); }
  DeviceArray(DeviceArray&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = o.bytes_;
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  // At least `bytes` bytes; reallocates (synchronously, losing the contents) when smaller.
  void* reserve(size_t bytes) {
    if (bytes > bytes_) {
      release();
      ARGENT_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
      bytes_ = bytes;
    }
    return ptr_;
  }
  template <typename T>
  T* reserve_as(size_t count) {
    return static_cast<T*>(reserve(count * sizeof(T) + 16));
  }
  size_t bytes() const { return bytes_; }
  void* data() const { return ptr_; }

 private:
  void release() {
    if (ptr_) cudaFree(ptr_);  // no throw from a destructor; a failure here leaks nothing new
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Copies host[0, count) into `dst` (grown as needed) on `stream` and returns the device copy.
// Asynchronous: a pageable source is staged before cudaMemcpyAsync returns, so the host array
// may change at once, and no host synchronisation is paid.
template <typename T>
const T* upload_async(DeviceArray& dst, const T* host, size_t count, cudaStream_t stream) {
  T* p = dst.reserve_as<T>(count > 0 ? count : 1);
  if (count > 0)
    ARGENT_CUDA_CHECK(
        cudaMemcpyAsync(p, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
  return p;
}

}  // namespace argent
