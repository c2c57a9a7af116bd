// Reading and writing NumPy .npy files (format versions 1.0-3.0, C order, little-endian).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace argent {

struct NpyArray {
  std::string dtype;           // NumPy descr, e.g. "<f4", "<f2", "<i8", "<i4"
  std::vector<int64_t> shape;  // empty for a scalar
  std::vector<uint8_t> data;   // raw little-endian elements, C order

  int64_t element_count() const;
};

// Throws Error(kInvalidArgument) naming the file for anything it cannot take: not a .npy file,
// Fortran order, big-endian, or a payload shorter than the shape says.
NpyArray read_npy(const std::string& path);

// A 2-D float matrix [rows, cols] from a float32, float16, uint8 or int32 array (1-D arrays are
// one row; int32 values beyond 2^24 round to the nearest float).
// Throws when the dtype is anything else or a value is NaN or infinite.
std::vector<float> npy_to_float_matrix(const NpyArray& array, const std::string& what,
                                       int64_t* rows, int64_t* cols);

// A 1-D int64 vector from an int64 or int32 array.
std::vector<int64_t> npy_to_int64_vector(const NpyArray& array, const std::string& what);
// Every element of an int64 or int32 array of any shape, in row-major order.
std::vector<int64_t> npy_to_int64_values(const NpyArray& array, const std::string& what);

void write_npy(const std::string& path, const std::string& dtype,
               const std::vector<int64_t>& shape, const void* data, size_t bytes);

inline void write_npy_f32(const std::string& path, const float* data, int64_t rows,
                          int64_t cols) {
  write_npy(path, "<f4", {rows, cols}, data, size_t(rows * cols) * sizeof(float));
}

float half_to_float(uint16_t h);

}  // namespace argent
