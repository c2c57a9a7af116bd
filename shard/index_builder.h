// Builds an index directory from items: trains the IVF coarse quantizer (spherical k-means),
// quantizes every item to int8, assigns it to its list, splits items into partitions by a hash of
// their id, and writes one file per partition and the manifest (written last, so a directory
// without a manifest is an unfinished build).
#pragma once

#include <cstdint>
#include <string>

#include "common/config.h"
#include "shard/index_meta.h"
#include "shard/item_set.h"

namespace argent {

// The automatic list count: about 4 * sqrt(n), at least 1 and at most n / 32 (so lists keep
// enough items to be worth a probe).
int64_t auto_nlist(int64_t n_items);

struct BuildReport {
  int64_t n_items = 0;
  int64_t nlist = 0;
  int32_t partitions = 0;
  double train_seconds = 0;
  double total_seconds = 0;
};

// Validates `items` and writes the index to `out_dir` (created if missing; an existing index
// there is replaced). Shows a progress bar when stderr is a terminal.
BuildReport build_index(const ItemSet& items, const IndexConfig& cfg, const std::string& out_dir);

}  // namespace argent
