#include "common/section_file.h"

#include <algorithm>
#include <cstring>

#include "common/crc32c.h"
#include "common/file_util.h"

namespace argent {
namespace {

constexpr char kMagic[8] = {'A', 'R', 'G', 'E', 'N', 'T', '\x1a', '\n'};
constexpr size_t kHeaderBytes = 32;
constexpr size_t kSectionHeaderBytes = 24;
constexpr uint32_t kMaxSections = 256;

size_t padded(size_t n) { return (n + 7) & ~size_t(7); }

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::string kind8(const std::string& kind) {
  ARGENT_ASSERT(kind.size() <= 8, "file kind '", kind, "' longer than 8 characters");
  return kind + std::string(8 - kind.size(), ' ');
}

}  // namespace

std::string section_tag_name(uint32_t tag) {
  std::string s(4, ' ');
  for (int i = 0; i < 4; ++i) s[i] = char((tag >> (8 * i)) & 0xFF);
  return "'" + s + "'";
}

SectionWriter::SectionWriter(const std::string& kind, uint32_t version)
    : kind_(kind8(kind)), version_(version) {}

void SectionWriter::add(uint32_t tag, ByteView payload) { sections_.emplace_back(tag, payload); }

void SectionWriter::add_string(uint32_t tag, const std::string& text) {
  const std::string& owned = owned_strings_.emplace_back(text);
  add(tag, ByteView{reinterpret_cast<const uint8_t*>(owned.data()), owned.size()});
}

void SectionWriter::write_file(const std::string& path) const {
  std::vector<uint8_t> header;
  header.insert(header.end(), kMagic, kMagic + 8);
  header.insert(header.end(), kind_.begin(), kind_.end());
  put<uint32_t>(header, version_);
  put<uint32_t>(header, uint32_t(sections_.size()));
  put<uint32_t>(header, 0);
  put<uint32_t>(header, crc32c(header.data(), header.size()));

  AtomicFileWriter file(path);
  file.write(header.data(), header.size());
  static const uint8_t zeros[8] = {};
  for (const auto& [tag, stored] : sections_) {
    const ByteView payload = stored;
    std::vector<uint8_t> sh;
    put<uint32_t>(sh, tag);
    put<uint32_t>(sh, crc32c(payload.data, payload.size));
    put<uint64_t>(sh, payload.size);
    put<uint64_t>(sh, 0);
    file.write(sh.data(), sh.size());
    file.write(payload.data, payload.size);
    file.write(zeros, padded(payload.size) - payload.size);
  }
  file.commit();
}

SectionFile SectionFile::read(const std::string& path, const std::string& kind,
                              uint32_t max_version) {
  SectionFile f;
  f.path_ = path;
  f.bytes_ = read_whole_file(path);
  const std::vector<uint8_t>& b = f.bytes_;
  ARGENT_CHECK_DATA(b.size() >= kHeaderBytes, path, ": truncated header (", b.size(),
                    " bytes, need ", kHeaderBytes, ")");
  ARGENT_CHECK_DATA(std::memcmp(b.data(), kMagic, 8) == 0, path, ": not an Argent file (bad magic)");
  ARGENT_CHECK_DATA(get<uint32_t>(b.data() + 28) == crc32c(b.data(), 28), path,
                    ": header checksum mismatch");
  const std::string file_kind(reinterpret_cast<const char*>(b.data() + 8), 8);
  ARGENT_CHECK_DATA(file_kind == kind8(kind), path, ": is a '", file_kind, "' file, expected '",
                    kind, "'");
  f.version_ = get<uint32_t>(b.data() + 16);
  ARGENT_CHECK_DATA(f.version_ >= 1 && f.version_ <= max_version, path, ": format version ",
                    f.version_, " is not supported (this build reads 1..", max_version, ")");
  const uint32_t n_sections = get<uint32_t>(b.data() + 20);
  ARGENT_CHECK_DATA(n_sections <= kMaxSections, path, ": ", n_sections, " sections (max ",
                    kMaxSections, ")");
  size_t pos = kHeaderBytes;
  for (uint32_t i = 0; i < n_sections; ++i) {
    ARGENT_CHECK_DATA(b.size() - pos >= kSectionHeaderBytes, path, ": truncated at section ", i,
                      " header (offset ", pos, " of ", b.size(), ")");
    const uint32_t tag = get<uint32_t>(b.data() + pos);
    const uint32_t crc = get<uint32_t>(b.data() + pos + 4);
    const uint64_t length = get<uint64_t>(b.data() + pos + 8);
    const uint64_t reserved = get<uint64_t>(b.data() + pos + 16);
    pos += kSectionHeaderBytes;
    // The bytes no checksum covers (the reserved field and the padding) must be zero, so that
    // every byte of the file is verified.
    ARGENT_CHECK_DATA(reserved == 0, path, ": section ", section_tag_name(tag),
                      " has a non-zero reserved field (corrupt file)");
    ARGENT_CHECK_DATA(length <= b.size() - pos, path, ": section ", section_tag_name(tag),
                      " claims ", length, " bytes but only ", b.size() - pos,
                      " remain (truncated file)");
    ARGENT_CHECK_DATA(crc32c(b.data() + pos, length) == crc, path, ": section ",
                      section_tag_name(tag), " checksum mismatch (corrupt file)");
    ARGENT_CHECK_DATA(f.sections_.count(tag) == 0, path, ": duplicate section ",
                      section_tag_name(tag));
    f.sections_[tag] = ByteView{b.data() + pos, size_t(length)};
    const size_t padding = padded(length) - length;
    ARGENT_CHECK_DATA(padding <= b.size() - pos - length, path, ": section ",
                      section_tag_name(tag), " padding is cut short (truncated file)");
    for (size_t i = 0; i < padding; ++i)
      ARGENT_CHECK_DATA(b[pos + length + i] == 0, path, ": section ", section_tag_name(tag),
                        " has non-zero padding (corrupt file)");
    pos += padded(length);
  }
  ARGENT_CHECK_DATA(pos == b.size(), path, ": ", b.size() - pos,
                    " unexpected bytes after the last section");
  return f;
}

ByteView SectionFile::section(uint32_t tag) const {
  auto it = sections_.find(tag);
  ARGENT_CHECK_DATA(it != sections_.end(), path_, ": missing section ", section_tag_name(tag));
  return it->second;
}

std::string SectionFile::string(uint32_t tag) const {
  ByteView v = section(tag);
  return std::string(reinterpret_cast<const char*>(v.data), v.size);
}

}  // namespace argent
