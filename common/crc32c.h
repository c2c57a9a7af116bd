// CRC32C (Castagnoli), the checksum of every section Argent writes to disk or to its log.
#pragma once

#include <cstddef>
#include <cstdint>

namespace argent {

// Extends `crc` (0 for a fresh checksum) over [data, data + size). Uses the SSE4.2 instruction
// when the CPU has it (checked once at run time) and a table otherwise; both give equal results.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size);

inline uint32_t crc32c(const void* data, size_t size) { return crc32c_extend(0, data, size); }

}  // namespace argent
