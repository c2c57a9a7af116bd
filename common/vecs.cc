#include "common/vecs.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "common/file_util.h"

namespace argent {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

NpyArray read_vecs(const std::string& path) {
  size_t element = 0;
  NpyArray out;
  if (ends_with(path, ".fvecs")) {
    out.dtype = "<f4", element = 4;
  } else if (ends_with(path, ".bvecs")) {
    out.dtype = "|u1", element = 1;
  } else if (ends_with(path, ".ivecs")) {
    out.dtype = "<i4", element = 4;
  } else {
    ARGENT_CHECK(false, path, ": not a .fvecs, .bvecs or .ivecs file");
  }
  std::ifstream in(path, std::ios::binary);
  ARGENT_CHECK(in.good(), path, ": cannot open");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = 0;
  int32_t dim = 0;
  int64_t rows = 0;
  while (at < bytes.size()) {
    ARGENT_CHECK(bytes.size() - at >= 4, path, ": record ", rows, " at byte ", at,
                 " is cut short (", bytes.size() - at, " bytes left, its dimension needs 4)");
    int32_t d = 0;
    std::memcpy(&d, bytes.data() + at, 4);
    ARGENT_CHECK(d >= 1, path, ": record ", rows, " has dimension ", d, "; expected >= 1");
    ARGENT_CHECK(rows == 0 || d == dim, path, ": record ", rows, " has dimension ", d,
                 ", the records before it ", dim);
    dim = d;
    const size_t payload = size_t(d) * element;
    ARGENT_CHECK(bytes.size() - at - 4 >= payload, path, ": record ", rows, " at byte ", at,
                 " is cut short (", bytes.size() - at - 4, " bytes left, ", payload, " needed)");
    out.data.insert(out.data.end(), bytes.begin() + long(at + 4), bytes.begin() + long(at + 4 + payload));
    at += 4 + payload;
    ++rows;
  }
  ARGENT_CHECK(rows > 0, path, ": no vectors");
  if (out.dtype == "<i4" && dim == 1) {
    out.shape = {rows};
  } else {
    out.shape = {rows, dim};
  }
  return out;
}

NpyArray read_array(const std::string& path) {
  if (ends_with(path, ".fvecs") || ends_with(path, ".bvecs") || ends_with(path, ".ivecs"))
    return read_vecs(path);
  return read_npy(path);
}

void write_fvecs(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  ARGENT_CHECK(cols >= 1 && cols <= INT32_MAX, path, ": dimension ", cols, " out of range");
  std::vector<char> bytes;
  bytes.reserve(size_t(rows) * (4 + size_t(cols) * 4));
  const int32_t d = int32_t(cols);
  for (int64_t r = 0; r < rows; ++r) {
    bytes.insert(bytes.end(), reinterpret_cast<const char*>(&d), reinterpret_cast<const char*>(&d) + 4);
    const char* row = reinterpret_cast<const char*>(data + r * cols);
    bytes.insert(bytes.end(), row, row + cols * 4);
  }
  AtomicFileWriter file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

}  // namespace argent
