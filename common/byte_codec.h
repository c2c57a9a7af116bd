// Flat little-endian byte strings with explicit sizes, for payloads Argent writes to its log or
// sends between ranks. Reading checks every size against the bytes left, so a corrupt or
// truncated payload fails with Error(kDataLoss) naming `what` instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"

namespace argent {

class ByteWriter {
 public:
  template <typename T>
  void put(const T& v) {
    append(&v, sizeof(T));
  }
  template <typename T>
  void put_array(const T* data, size_t n) {
    append(data, n * sizeof(T));
  }
  std::vector<uint8_t>& bytes() { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  void append(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
  }
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  // Reads [data, data + size), which must outlive the reader; `what` names it in errors.
  ByteReader(const uint8_t* data, size_t size, std::string what)
      : data_(data), size_(size), what_(std::move(what)) {}

  template <typename T>
  T get() {
    T v;
    take(&v, sizeof(T));
    return v;
  }
  // `n` elements; `n` was read from the payload, so it is checked before anything is allocated.
  template <typename T>
  std::vector<T> get_array(int64_t n) {
    ARGENT_CHECK_DATA(n >= 0 && uint64_t(n) <= (size_ - at_) / sizeof(T), what_, ": ", n,
                      " elements at byte ", at_, " overrun the ", size_, "-byte payload");
    std::vector<T> v(static_cast<size_t>(n));
    take(v.data(), size_t(n) * sizeof(T));
    return v;
  }
  size_t left() const { return size_ - at_; }
  bool done() const { return at_ == size_; }
  const std::string& what() const { return what_; }

 private:
  void take(void* p, size_t n) {
    ARGENT_CHECK_DATA(n <= size_ - at_, what_, ": payload truncated at byte ", at_);
    if (n > 0) std::memcpy(p, data_ + at_, n);
    at_ += n;
  }
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
  std::string what_;
};

}  // namespace argent
