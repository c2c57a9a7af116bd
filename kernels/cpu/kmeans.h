// Spherical k-means for the IVF coarse quantizer. Items are assigned to the centroid of highest
// inner product, with the int8 arithmetic the search uses, so build-time assignment and query-time
// probing rank lists the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace argent {

struct KMeansParams {
  int64_t n_clusters = 0;
  int iterations = 10;
  int64_t max_points_per_cluster = 64;  // training sample = min(n, n_clusters * this)
  uint64_t seed = 1234;
};

// Trains on x [n, dim] (row-major floats, finite). Returns centroids [n_clusters, dim], each of
// unit L2 norm. Requires 1 <= n_clusters <= n. Initialization: distinct random sample points;
// an empty cluster is re-seeded with the sample point worst served by its centroid.
// `on_iteration(i)` is called after each Lloyd pass (for progress reporting).
std::vector<float> spherical_kmeans(const float* x, int64_t n, int dim, const KMeansParams& params,
                                    const std::function<void(int)>& on_iteration = {});

// Quantized centroids in the blocked layout, ready for dense_scores: codes for
// round_up_rows(n_clusters) rows; padding rows have scale 0.
struct QuantizedCentroids {
  std::vector<int8_t> blocked;
  std::vector<float> scales;
  int64_t n_clusters = 0;
  int64_t n_rows = 0;
  int d_pad = 0;
};
QuantizedCentroids quantize_centroids(const float* centroids, int64_t n_clusters, int dim);

// labels [n] = index of the best-scoring centroid (ties: the smallest index) for each quantized
// row (codes [n, d_pad], scales, bias).
void assign_to_centroids(const int8_t* codes, const float* scales, const int32_t* bias, int64_t n,
                         const QuantizedCentroids& centroids, int32_t* labels);

}  // namespace argent
