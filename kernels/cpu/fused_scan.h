// The fused CPU search: for a batch of queries over their probed IVF lists, int8 scores, Bloom
// eligibility, exact filter verification of the few candidates that could enter the top-K, and
// top-K selection, in one pass over the items; no [queries x items] score matrix is written.
#pragma once

#include <cstdint>

#include "kernels/cpu/bloom.h"
#include "kernels/filter_plan.h"

namespace argent {

// A shard's tensors, read-only for the duration of a call.
struct ScanIndexView {
  const int8_t* codes = nullptr;          // blocked layout (kernels/layout.h), n_rows rows
  const float* scales = nullptr;          // [n_rows]
  const int64_t* ids = nullptr;           // [n_rows]; kEmptyId for free or deleted rows
  const uint64_t* signatures = nullptr;   // [n_rows, bloom_words]
  int bloom_words = 0;
  int d_pad = 0;
  int64_t n_rows = 0;                     // a multiple of 16, below 2^31
  const int64_t* list_offsets = nullptr;  // [n_lists] first row of each list, a multiple of 16
  const int64_t* list_sizes = nullptr;    // [n_lists] rows in use (live or deleted)
  const uint64_t* list_summaries = nullptr;  // [n_lists, bloom_words] OR of the list's signatures
  int64_t n_lists = 0;
  FeatureStoreView features;
};

// Quantized queries (kernels/cpu/quantize.h) and their filters.
struct ScanQueriesView {
  const int8_t* codes = nullptr;   // [n, d_pad] row-major
  const float* scales = nullptr;   // [n]
  const int32_t* bias = nullptr;   // [n]
  int64_t n = 0;
  const FilterPlanView* plans = nullptr;  // [n_plans]
  int n_plans = 0;
  const int32_t* plan_of_query = nullptr;  // [n]: index into plans, or -1; null: no filters
  // [n_plans] or null: per plan, null or its exact eligibility over the whole index, one mask
  // per 16-row block (bit r: row r is live and passes the filter exactly; shard/filter_cache.h).
  // A plan with masks skips the Bloom evaluation and the exact checks.
  const uint16_t* const* plan_masks = nullptr;
  // [n] or null: per query, the worst of k results it already holds from elsewhere (an earlier
  // pass over other lists), or score -inf and id INT64_MAX for none. Only rows that order
  // before it (score greater, or equal with a smaller id) are kept, so that query may get fewer
  // than k; the rows kept are exactly those that can enter its merged top k, and the rows that
  // cannot are neither checked against the filter nor pushed.
  const float* floor_scores = nullptr;
  const int64_t* floor_ids = nullptr;
};

// The lists each query scans: lists [n, nprobe], -1 for unused slots. lists == null scans every
// list (exact search). Lists whose Bloom summary rules out the query's filter are skipped.
struct ScanProbesView {
  const int32_t* lists = nullptr;
  int nprobe = 0;
};

struct ScanStats {
  int64_t rows_scanned = 0;      // (query, row) pairs in the lists scanned
  int64_t rows_packed = 0;       // eligible rows gathered into blocks for a selective plan
  int64_t lists_scanned = 0;     // (query, list) pairs scanned
  int64_t lists_skipped = 0;     // (query, list) pairs skipped by the list's Bloom summary
  int64_t exact_checks = 0;      // candidates verified against the exact feature store
  int64_t bloom_false_positives = 0;  // of those, rejected: Bloom passed, the filter did not
  int64_t filters_cached = 0;    // (batch, plan) pairs whose exact masks the filter cache gave

  void add(const ScanStats& o);
};

// Writes each query's best k rows, score descending then id ascending, into scores/ids/rows
// [n, k] (rows may be null); fewer than k eligible rows leave score -inf, id -1, row -1. Every
// returned row satisfies its query's filter exactly. Uses up to `threads` OpenMP threads (0: the
// OpenMP default). Throws Error(kInvalidArgument) for k < 0 or mismatched shapes.
void fused_scan(const ScanIndexView& index, const ScanQueriesView& queries,
                const ScanProbesView& probes, int64_t k, float* scores, int64_t* ids,
                int64_t* rows, ScanStats* stats, int threads = 0);

}  // namespace argent
