// All scores of a set of queries against every row of a blocked int8 matrix: the IVF probe
// (queries x centroids) and k-means assignment use it, with the same arithmetic as the scan.
#pragma once

#include <cstdint>
#include <functional>

namespace argent {

// out[q * out_stride + r] = combine_score(dot(query q, row r), ...) for q < n_queries and
// r < n_rows (a multiple of 16). Queries are row-major [n_queries, d_pad] with scales and bias
// (kernels/cpu/quantize.h). Multi-threaded; `out` is caller-owned.
void dense_scores(const int8_t* query_codes, const float* query_scales, const int32_t* query_bias,
                  int64_t n_queries, const int8_t* blocked, const float* row_scales,
                  int64_t n_rows, int d_pad, float* out, int64_t out_stride);

// For each query, the best `nprobe` lists by score (descending, then list id ascending) among
// those with usable(q, l), written to out [n_queries, nprobe]; -1 fills slots when fewer lists
// qualify. usable(q, l) is asked only of the lists the selection walks, in score order, until
// nprobe usable ones are found (about nprobe per query unless most lists are unusable): a test
// such as a filter's Bloom summary would add up over every list. It is called from several
// threads at once for different queries.
void select_probes(const float* scores, int64_t n_queries, int64_t n_lists, int nprobe,
                   const std::function<bool(int64_t, int32_t)>& usable, int32_t* out);

}  // namespace argent
