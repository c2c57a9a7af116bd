// Helpers shared by the fuzz targets: a scratch directory per process, whole-file writes, and a
// reader of fuzz input as a sequence of length-prefixed chunks.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace argent::fuzz {

// A directory that lives as long as the process (libFuzzer runs one input at a time), in
// /dev/shm when there is one: the loaders fsync what they write, which on a disk would bound a
// fuzzer to a few dozen inputs a second.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    char templ[] = "/dev/shm/argent-fuzz-XXXXXX";
    if (::access("/dev/shm", W_OK) != 0) std::memcpy(templ, "/tmp/argent-fuzz-XXXXXX", 24);
    const char* made = mkdtemp(templ);
    if (made == nullptr) std::abort();
    return std::string(made);
  }();
  return dir;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += size_t(n);
  }
  ::close(fd);
}

// Reads the input front to back: bytes, little-endian integers and chunks with a 16-bit length.
// Past the end it yields zeros and empty chunks, so a harness never reads out of bounds.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool done() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() { return uint16_t(byte() | (uint16_t(byte()) << 8)); }
  std::vector<uint8_t> chunk() {
    size_t n = u16();
    if (n > size_ - pos_) n = size_ - pos_;
    std::vector<uint8_t> out(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
    return out;
  }
  std::vector<uint8_t> rest() {
    std::vector<uint8_t> out(data_ + pos_, data_ + size_);
    pos_ = size_;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace argent::fuzz
