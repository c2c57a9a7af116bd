#include "common/npy.h"

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/file_util.h"

namespace argent {
namespace {

// Finds `'key': value` in the header dict and returns the raw value text.
std::string header_value(const std::string& header, const std::string& key,
                         const std::string& path) {
  const std::string needle = "'" + key + "'";
  size_t pos = header.find(needle);
  ARGENT_CHECK(pos != std::string::npos, path, ": .npy header has no '", key, "' entry");
  pos = header.find(':', pos + needle.size());
  ARGENT_CHECK(pos != std::string::npos, path, ": malformed .npy header");
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  size_t end = pos;
  if (header[pos] == '(') {
    end = header.find(')', pos);
    ARGENT_CHECK(end != std::string::npos, path, ": malformed shape in .npy header");
    return header.substr(pos + 1, end - pos - 1);
  }
  if (header[pos] == '\'') {
    end = header.find('\'', pos + 1);
    ARGENT_CHECK(end != std::string::npos, path, ": malformed .npy header");
    return header.substr(pos + 1, end - pos - 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  return header.substr(pos, end - pos);
}

size_t dtype_size(const std::string& dtype, const std::string& path) {
  ARGENT_CHECK(dtype.size() >= 3, path, ": unsupported dtype '", dtype, "'");
  ARGENT_CHECK(dtype[0] == '<' || dtype[0] == '|', path, ": dtype '", dtype,
               "' is not little-endian");
  return size_t(std::stoul(dtype.substr(2)));
}

}  // namespace

int64_t NpyArray::element_count() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

NpyArray read_npy(const std::string& path) {
  const std::vector<uint8_t> bytes = read_whole_file(path);
  ARGENT_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, path,
               ": not a .npy file");
  const int major = bytes[6];
  size_t header_len, offset;
  if (major == 1) {
    header_len = size_t(bytes[8]) | size_t(bytes[9]) << 8;
    offset = 10;
  } else {
    ARGENT_CHECK(major <= 3 && bytes.size() >= 12, path, ": unsupported .npy version ", major);
    header_len = size_t(bytes[8]) | size_t(bytes[9]) << 8 | size_t(bytes[10]) << 16 |
                 size_t(bytes[11]) << 24;
    offset = 12;
  }
  ARGENT_CHECK(offset + header_len <= bytes.size(), path, ": truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(bytes.data() + offset), header_len);
  NpyArray out;
  out.dtype = header_value(header, "descr", path);
  const std::string fortran = header_value(header, "fortran_order", path);
  ARGENT_CHECK(fortran.find("False") != std::string::npos, path,
               ": Fortran-order arrays are not supported; save with np.ascontiguousarray");
  const std::string shape = header_value(header, "shape", path);
  size_t pos = 0;
  while (pos < shape.size()) {
    while (pos < shape.size() && (shape[pos] == ' ' || shape[pos] == ',')) ++pos;
    if (pos >= shape.size()) break;
    size_t end = pos;
    while (end < shape.size() && shape[end] != ',') ++end;
    out.shape.push_back(std::stoll(shape.substr(pos, end - pos)));
    ARGENT_CHECK(out.shape.back() >= 0, path, ": negative dimension in shape");
    pos = end;
  }
  const size_t elem = dtype_size(out.dtype, path);
  const size_t need = size_t(out.element_count()) * elem;
  const size_t have = bytes.size() - offset - header_len;
  ARGENT_CHECK(have >= need, path, ": truncated .npy payload (", have, " bytes, shape needs ",
               need, ")");
  out.data.assign(bytes.begin() + long(offset + header_len),
                  bytes.begin() + long(offset + header_len + need));
  return out;
}

std::vector<float> npy_to_float_matrix(const NpyArray& a, const std::string& what,
                                       int64_t* rows, int64_t* cols) {
  ARGENT_CHECK(a.shape.size() == 1 || a.shape.size() == 2, what, ": expected a 2-D array [n, d], got ",
               a.shape.size(), " dimensions");
  *rows = a.shape.size() == 2 ? a.shape[0] : 1;
  *cols = a.shape.back();
  const int64_t n = a.element_count();
  std::vector<float> out(static_cast<size_t>(n));
  if (a.dtype == "<f4") {
    std::memcpy(out.data(), a.data.data(), size_t(n) * 4);
  } else if (a.dtype == "<f2") {
    const auto* h = reinterpret_cast<const uint16_t*>(a.data.data());
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = half_to_float(h[i]);
  } else if (a.dtype == "|u1") {  // .bvecs (SIFT1B) and uint8 .npy: every value exact in float
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = float(a.data[size_t(i)]);
  } else if (a.dtype == "<i4") {  // .ivecs as vectors
    const auto* p = reinterpret_cast<const int32_t*>(a.data.data());
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = float(p[i]);
  } else {
    ARGENT_CHECK(false, what, ": dtype '", a.dtype, "' is not float32, float16, uint8 or int32");
  }
  for (int64_t i = 0; i < n; ++i) {
    ARGENT_CHECK(std::isfinite(out[size_t(i)]), what, ": row ", i / std::max<int64_t>(*cols, 1),
                 " column ", i % std::max<int64_t>(*cols, 1), " is ", out[size_t(i)],
                 " (NaN and infinity are not valid embedding values)");
  }
  return out;
}

std::vector<int64_t> npy_to_int64_vector(const NpyArray& a, const std::string& what) {
  ARGENT_CHECK(a.shape.size() == 1, what, ": expected a 1-D array of ids, got ", a.shape.size(),
               " dimensions");
  return npy_to_int64_values(a, what);
}

std::vector<int64_t> npy_to_int64_values(const NpyArray& a, const std::string& what) {
  const int64_t n = a.element_count();
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (a.dtype == "<i8") {
    std::memcpy(out.data(), a.data.data(), size_t(n) * 8);
  } else if (a.dtype == "<i4") {
    const auto* p = reinterpret_cast<const int32_t*>(a.data.data());
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = p[i];
  } else {
    ARGENT_CHECK(false, what, ": dtype '", a.dtype, "' is not int64 or int32");
  }
  return out;
}

void write_npy(const std::string& path, const std::string& dtype,
               const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  std::string shape_text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    shape_text += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) shape_text += ",";
    if (i + 1 < shape.size()) shape_text += " ";
  }
  shape_text += ")";
  std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': " +
                       shape_text + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string prefix = "\x93NUMPY";
  prefix += char(1);
  prefix += char(0);
  prefix += char(header.size() & 0xFF);
  prefix += char(header.size() >> 8);
  AtomicFileWriter file(path);
  file.write(prefix.data(), prefix.size());
  file.write(header.data(), header.size());
  file.write(data, bytes);
  file.commit();
}

}  // namespace argent
