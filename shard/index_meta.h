// What describes a whole index: dimensions, similarity, IVF and Bloom parameters, partitioning
// and the coarse quantizer's centroids. Stored in DIR/MANIFEST.argent (docs/formats.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/filter_plan.h"

namespace argent {

constexpr uint32_t kIndexFormatVersion = 1;

struct IndexMeta {
  int32_t dim = 0;
  int32_t d_pad = 0;
  bool normalize = true;
  int64_t nlist = 0;
  int32_t partitions = 0;
  BloomParams bloom;
  int64_t n_items = 0;
  std::vector<float> centroids;  // [nlist, dim], unit L2 norm
};

std::string manifest_path(const std::string& dir);
std::string partition_path(const std::string& dir, int32_t partition);

void write_manifest(const std::string& dir, const IndexMeta& meta);
// Throws Error(kDataLoss) for a corrupt or inconsistent manifest, Error(kIo) when unreadable.
IndexMeta read_manifest(const std::string& dir);

}  // namespace argent
