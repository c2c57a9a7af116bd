// A batch of queries made ready for the kernels: validated, normalized when the index is cosine,
// quantized to int8 per query, and with their filter expressions compiled (identical expressions
// compile once and share a plan). This is also what the coordinator broadcasts to the shards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/fused_scan.h"
#include "shard/filter.h"
#include "shard/index_meta.h"

namespace argent {

struct QueryBatch {
  int64_t n = 0;
  int32_t d_pad = 0;
  std::vector<int8_t> codes;   // [n, d_pad]
  std::vector<float> scales;   // [n]
  std::vector<int32_t> bias;   // [n]
  std::vector<FilterPlan> plans;
  std::vector<int32_t> plan_of_query;  // [n]: index into plans, -1 for no filter

  // Views into this batch; valid while it is alive and unchanged.
  ScanQueriesView view() const;

 private:
  mutable std::vector<FilterPlanView> plan_views_;
};

// Prepares `n` queries x [n, dim] against an index. `filters` is empty (no filter), one
// expression for every query, or one per query ("" for none). Throws Error(kInvalidArgument)
// naming the query for a wrong dimension, a NaN or infinite value, or a bad filter; queries are
// numbered from `first` (the batch's offset in a larger request) in those messages.
QueryBatch prepare_queries(const float* x, int64_t n, int dim, const IndexMeta& meta,
                           const std::vector<std::string>& filters, int64_t first = 0);

}  // namespace argent
