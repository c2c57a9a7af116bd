#include "kernels/cpu/kmeans.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "common/error.h"
#include "kernels/cpu/dense_scores.h"
#include "kernels/cpu/layout_pack.h"
#include "kernels/cpu/quantize.h"
#include "kernels/layout.h"

namespace argent {
namespace {

constexpr int64_t kAssignChunk = 2048;

void normalize_row(float* v, int dim) {
  double sq = 0;
  for (int j = 0; j < dim; ++j) sq += double(v[j]) * v[j];
  if (sq <= 0) return;
  const float inv = float(1.0 / std::sqrt(sq));
  for (int j = 0; j < dim; ++j) v[j] *= inv;
}

// Best centroid and its score for each row, chunk by chunk so the score matrix stays small.
void assign_with_scores(const int8_t* codes, const float* scales, const int32_t* bias, int64_t n,
                        const QuantizedCentroids& c, int32_t* labels, float* best_scores) {
  std::vector<float> scores(size_t(kAssignChunk * c.n_rows));
  for (int64_t i0 = 0; i0 < n; i0 += kAssignChunk) {
    const int64_t m = std::min(kAssignChunk, n - i0);
    dense_scores(codes + i0 * c.d_pad, scales + i0, bias + i0, m, c.blocked.data(),
                 c.scales.data(), c.n_rows, c.d_pad, scores.data(), c.n_rows);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i) {
      const float* s = scores.data() + i * c.n_rows;
      int64_t best = 0;
      for (int64_t j = 1; j < c.n_clusters; ++j)
        if (s[j] > s[best]) best = j;
      labels[i0 + i] = int32_t(best);
      if (best_scores) best_scores[i0 + i] = s[best];
    }
  }
}

}  // namespace

QuantizedCentroids quantize_centroids(const float* centroids, int64_t n_clusters, int dim) {
  QuantizedCentroids q;
  q.n_clusters = n_clusters;
  q.n_rows = round_up_rows(n_clusters);
  q.d_pad = padded_dim(dim);
  std::vector<int8_t> rows(size_t(n_clusters * q.d_pad));
  q.scales.assign(size_t(q.n_rows), 0.0f);
  quantize_rows(centroids, n_clusters, dim, q.d_pad, false, rows.data(), q.scales.data(), nullptr);
  q.blocked.assign(size_t(q.n_rows) * size_t(q.d_pad), 0);
  pack_rows(rows.data(), n_clusters, q.d_pad, q.blocked.data(), 0);
  return q;
}

void assign_to_centroids(const int8_t* codes, const float* scales, const int32_t* bias, int64_t n,
                         const QuantizedCentroids& centroids, int32_t* labels) {
  assign_with_scores(codes, scales, bias, n, centroids, labels, nullptr);
}

std::vector<float> spherical_kmeans(const float* x, int64_t n, int dim, const KMeansParams& p,
                                    const std::function<void(int)>& on_iteration) {
  const int64_t k = p.n_clusters;
  ARGENT_CHECK(k >= 1 && k <= n, "k-means: ", k, " clusters for ", n,
               " points (need 1 <= clusters <= points)");
  std::mt19937_64 rng(p.seed);

  // Training sample: a seeded random subset, normalized.
  const int64_t m = std::min<int64_t>(n, std::max<int64_t>(k, k * p.max_points_per_cluster));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = 0; i < m; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, n - 1);
    std::swap(order[size_t(i)], order[size_t(pick(rng))]);
  }
  std::vector<float> sample(size_t(m * dim));
  for (int64_t i = 0; i < m; ++i) {
    std::copy(x + order[size_t(i)] * dim, x + (order[size_t(i)] + 1) * dim,
              sample.data() + i * dim);
    normalize_row(sample.data() + i * dim, dim);
  }
  const int d_pad = padded_dim(dim);
  std::vector<int8_t> codes(size_t(m * d_pad));
  std::vector<float> scales(static_cast<size_t>(m));
  std::vector<int32_t> bias(static_cast<size_t>(m));
  quantize_rows(sample.data(), m, dim, d_pad, false, codes.data(), scales.data(), bias.data());

  // Initial centroids: the first k sample points (the sample is already a random permutation).
  std::vector<float> centroids(sample.begin(), sample.begin() + k * dim);
  std::vector<int32_t> labels(static_cast<size_t>(m));
  std::vector<float> best(static_cast<size_t>(m));
  const int n_threads = omp_get_max_threads();
  for (int it = 0; it < p.iterations; ++it) {
    const QuantizedCentroids qc = quantize_centroids(centroids.data(), k, dim);
    assign_with_scores(codes.data(), scales.data(), bias.data(), m, qc, labels.data(),
                       best.data());
    // Update: per-thread sums, then reduce, then normalize.
    std::vector<std::vector<double>> sums(static_cast<size_t>(n_threads));
    std::vector<std::vector<int64_t>> counts(static_cast<size_t>(n_threads));
    // num_threads is a request: under OMP_THREAD_LIMIT or OMP_DYNAMIC the team can be smaller
    // than omp_get_max_threads(), and the accumulators of threads that never ran stay empty.
    // The reduction below covers the team that ran (read after the region's closing barrier).
    int team = 1;
#pragma omp parallel num_threads(n_threads)
    {
      const int t = omp_get_thread_num();
#pragma omp master
      team = omp_get_num_threads();
      sums[size_t(t)].assign(size_t(k * dim), 0.0);
      counts[size_t(t)].assign(size_t(k), 0);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < m; ++i) {
        double* s = sums[size_t(t)].data() + int64_t(labels[size_t(i)]) * dim;
        const float* v = sample.data() + i * dim;
        for (int j = 0; j < dim; ++j) s[j] += v[j];
        ++counts[size_t(t)][size_t(labels[size_t(i)])];
      }
    }
    std::vector<int64_t> count(static_cast<size_t>(k), 0);
    for (int t = 1; t < team; ++t)
      for (int64_t i = 0; i < k * dim; ++i) sums[0][size_t(i)] += sums[size_t(t)][size_t(i)];
    for (int t = 0; t < team; ++t)
      for (int64_t c = 0; c < k; ++c) count[size_t(c)] += counts[size_t(t)][size_t(c)];
    // Empty clusters take the sample points worst served by their centroids.
    std::vector<int64_t> worst;
    for (int64_t c = 0; c < k; ++c) {
      if (count[size_t(c)] > 0) {
        for (int j = 0; j < dim; ++j) centroids[size_t(c * dim + j)] = float(sums[0][size_t(c * dim + j)]);
        normalize_row(centroids.data() + c * dim, dim);
        continue;
      }
      if (worst.empty()) {
        worst.resize(size_t(m));
        std::iota(worst.begin(), worst.end(), 0);
        std::sort(worst.begin(), worst.end(), [&](int64_t a, int64_t b) {
          return best[size_t(a)] < best[size_t(b)] || (best[size_t(a)] == best[size_t(b)] && a < b);
        });
        std::reverse(worst.begin(), worst.end());
      }
      const int64_t i = worst.back();
      worst.pop_back();
      std::copy(sample.begin() + i * dim, sample.begin() + (i + 1) * dim,
                centroids.begin() + c * dim);
    }
    if (on_iteration) on_iteration(it);
  }
  return centroids;
}

}  // namespace argent
