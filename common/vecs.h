// The ANN benchmark formats (.fvecs, .bvecs, .ivecs: the TEXMEX / BIGANN corpora) and one reader
// that picks the format from a file's extension, so every command that takes vectors or ids
// takes them in any of these formats.
//
// A *vecs file is a sequence of records, one per vector, all little-endian:
//   +0  int32  d, the dimension (the same in every record, >= 1)
//   +4  d elements: float32 (.fvecs), uint8 (.bvecs) or int32 (.ivecs)
#pragma once

#include <string>

#include "common/npy.h"

namespace argent {

// Reads a .fvecs / .bvecs / .ivecs file as an array [n, d] of dtype "<f4", "|u1" or "<i4". An
// .ivecs file of dimension 1 (a column of ids) reads as the 1-D array [n]. Throws
// Error(kInvalidArgument) naming the file and the record for a truncated file, a dimension that
// is not positive or changes between records, or more than 2^31 elements per record.
NpyArray read_vecs(const std::string& path);

// By extension: .fvecs / .bvecs / .ivecs as read_vecs, anything else as .npy (read_npy).
NpyArray read_array(const std::string& path);

// Writes rows of float32 [rows, cols] as .fvecs (tests and export of benchmark data).
void write_fvecs(const std::string& path, const float* data, int64_t rows, int64_t cols);

}  // namespace argent
