// The container every Argent file uses: a header, then checksummed sections.
//
//   header (32 bytes)  magic "ARGENT\x1a\n" | kind (8 chars) | u32 version | u32 section count |
//                      u32 reserved | u32 CRC32C of the previous 28 bytes
//   section (24 bytes) u32 tag | u32 CRC32C of payload | u64 payload length | u64 reserved,
//                      then the payload, zero-padded to a multiple of 8 bytes
//
// All integers are little-endian. Readers check the magic, kind, version, every length against
// the bytes left, and every checksum before any payload is used; docs/formats.md draws it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace argent {

constexpr uint32_t section_tag(const char (&name)[5]) {
  return uint32_t(uint8_t(name[0])) | uint32_t(uint8_t(name[1])) << 8 |
         uint32_t(uint8_t(name[2])) << 16 | uint32_t(uint8_t(name[3])) << 24;
}
std::string section_tag_name(uint32_t tag);

struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// Collects sections and writes them atomically (temporary file, fsync, rename). The writer does
// not copy payloads: each ByteView must stay valid until write_file returns.
class SectionWriter {
 public:
  SectionWriter(const std::string& kind, uint32_t version);

  void add(uint32_t tag, ByteView payload);
  template <typename T>
  void add_array(uint32_t tag, const T* data, size_t count) {
    add(tag, ByteView{reinterpret_cast<const uint8_t*>(data), count * sizeof(T)});
  }
  void add_string(uint32_t tag, const std::string& text);  // copies `text`

  void write_file(const std::string& path) const;

 private:
  std::string kind_;
  uint32_t version_;
  std::vector<std::pair<uint32_t, ByteView>> sections_;
  std::deque<std::string> owned_strings_;  // deque: push_back keeps earlier elements in place
};

// A whole file read into memory and verified. Throws Error(kDataLoss) naming the file and the
// problem (bad magic, wrong kind, unsupported version, truncated section, checksum mismatch) and
// Error(kIo) when the file cannot be read.
class SectionFile {
 public:
  static SectionFile read(const std::string& path, const std::string& kind,
                          uint32_t max_version);

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  bool has(uint32_t tag) const { return sections_.count(tag) != 0; }
  ByteView section(uint32_t tag) const;
  std::string string(uint32_t tag) const;

  // The section as `count` elements of T (count < 0: any whole number of elements).
  template <typename T>
  std::vector<T> array(uint32_t tag, int64_t count = -1) const {
    ByteView v = section(tag);
    ARGENT_CHECK_DATA(v.size % sizeof(T) == 0, path_, ": section ", section_tag_name(tag),
                      " has ", v.size, " bytes, not a multiple of ", sizeof(T));
    const int64_t n = int64_t(v.size / sizeof(T));
    ARGENT_CHECK_DATA(count < 0 || n == count, path_, ": section ", section_tag_name(tag),
                      " holds ", n, " elements, expected ", count);
    std::vector<T> out(static_cast<size_t>(n));
    if (n > 0) std::memcpy(out.data(), v.data, v.size);
    return out;
  }

 private:
  std::string path_;
  uint32_t version_ = 0;
  std::vector<uint8_t> bytes_;
  std::map<uint32_t, ByteView> sections_;
};

}  // namespace argent
