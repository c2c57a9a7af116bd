// Bloom signatures and the three evaluations of a compiled filter (kernels/filter_plan.h).
#pragma once

#include <cstdint>

#include "kernels/filter_plan.h"

namespace argent {

// The exact categorical features of rows: row r owns pairs [offset[r], offset[r] + count[r]) of
// (feature_ids, values), sorted by (feature id, value) without duplicates. Row-addressed with an
// explicit count (not CSR offsets[n+1]) so an update can point a row at freshly appended pairs.
struct FeatureStoreView {
  const int64_t* offset = nullptr;
  const int32_t* count = nullptr;
  const int32_t* feature_ids = nullptr;
  const int64_t* values = nullptr;
};

// Computes the signature of one row's features into sig [p.words] (overwritten).
void bloom_signature(const BloomParams& p, const int32_t* feature_ids, const int64_t* values,
                     int32_t n_features, uint64_t* sig);

// Signatures of rows [0, n_rows) from a feature store into sigs [n_rows, p.words].
void bloom_signatures(const BloomParams& p, const FeatureStoreView& features, int64_t n_rows,
                      uint64_t* sigs);

// Evaluates `plan` for the 16 rows of one block whose signatures are sigs [16, words]. Returns
// masks with bit r set for row r: `possible` (may match; never clear for a true match) and
// `definite` (certainly matches, without an exact check). An empty plan gives all-ones masks.
struct BlockEligibility {
  uint16_t possible;
  uint16_t definite;
};
BlockEligibility eval_plan_block(const FilterPlanView& plan, const uint64_t* sigs, int words);

// Whether any row whose signature is covered by `summary` [words] (an OR of signatures) could
// satisfy `plan`; false proves that no such row does.
bool eval_plan_summary(const FilterPlanView& plan, const uint64_t* summary, int words);

// Exact evaluation against one row's feature set.
bool eval_plan_exact(const FilterPlanView& plan, const FeatureStoreView& features, int64_t row);

}  // namespace argent
