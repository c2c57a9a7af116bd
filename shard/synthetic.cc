#include "shard/synthetic.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/hash.h"
#include "kernels/layout.h"

namespace argent {
namespace {

// A small counter-based generator: stream (seed, key) gives the same numbers everywhere.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t key) : state_(mix64(seed ^ mix64(key))) {}
  uint64_t next() { return mix64(state_ += 0x9E3779B97F4A7C15ull); }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double normal() {  // Box-Muller
    const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

constexpr uint64_t kCenterStream = 1ull << 62;
constexpr uint64_t kQueryStream = 1ull << 61;

std::vector<float> make_centers(int64_t clusters, int dim, uint64_t seed) {
  std::vector<float> centers(size_t(clusters * dim));
  for (int64_t c = 0; c < clusters; ++c) {
    Rng rng(seed, kCenterStream + uint64_t(c));
    double sq = 0;
    float* v = centers.data() + c * dim;
    for (int j = 0; j < dim; ++j) {
      v[j] = float(rng.normal());
      sq += double(v[j]) * v[j];
    }
    const float inv = float(1.0 / std::sqrt(std::max(sq, 1e-30)));
    for (int j = 0; j < dim; ++j) v[j] *= inv;
  }
  return centers;
}

void draw_point(Rng& rng, const std::vector<float>& centers, int64_t clusters, int dim,
                double spread, float* out) {
  const int64_t c = int64_t(rng.next() % uint64_t(clusters));
  const double sigma = spread / std::sqrt(double(dim));
  for (int j = 0; j < dim; ++j) out[j] = float(centers[size_t(c * dim + j)] + sigma * rng.normal());
}

void check_synthetic(int64_t n, int dim, const SyntheticConfig& cfg) {
  ARGENT_CHECK(n >= 1, "synthetic: item count ", n, " must be >= 1");
  ARGENT_CHECK(dim >= 1 && dim <= kMaxDim, "synthetic: dimension ", dim, " is outside [1, ",
               kMaxDim, "]");
  ARGENT_CHECK(cfg.clusters >= 1, "synthetic.clusters must be >= 1");
}

}  // namespace

ItemSet generate_synthetic_items(int64_t n, int dim, uint64_t seed, const SyntheticConfig& cfg) {
  check_synthetic(n, dim, cfg);
  const std::vector<float> centers = make_centers(cfg.clusters, dim, seed);
  // Zipf CDF over value ranks 0..values_per_feature-1.
  std::vector<double> cdf(size_t(std::max<int64_t>(cfg.values_per_feature, 1)));
  double total = 0;
  for (size_t r = 0; r < cdf.size(); ++r) cdf[r] = (total += std::pow(double(r + 1), -cfg.zipf_exponent));
  for (double& c : cdf) c /= total;
  auto zipf = [&](Rng& rng) {
    return int64_t(std::lower_bound(cdf.begin(), cdf.end(), rng.uniform()) - cdf.begin());
  };

  ItemSet items;
  items.dim = dim;
  items.ids.resize(size_t(n));
  items.embeddings.resize(size_t(n * dim));
  std::vector<std::vector<std::pair<int32_t, int64_t>>> features(static_cast<size_t>(n));
  const int per_item = std::min(cfg.features_per_item, cfg.feature_ids);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed, uint64_t(i));
    items.ids[size_t(i)] = i;
    draw_point(rng, centers, cfg.clusters, dim, cfg.cluster_spread, items.embeddings.data() + i * dim);
    auto& f = features[size_t(i)];
    for (int32_t fid = 0; fid < per_item; ++fid) f.emplace_back(fid, zipf(rng));
    if (per_item > 0 && (rng.next() & 1)) f.emplace_back(0, zipf(rng));
  }
  for (auto& f : features) items.push_features(std::move(f));
  return items;
}

std::vector<float> generate_synthetic_queries(int64_t n, int dim, uint64_t seed,
                                              const SyntheticConfig& cfg) {
  check_synthetic(n, dim, cfg);
  const std::vector<float> centers = make_centers(cfg.clusters, dim, seed);
  std::vector<float> out(size_t(n * dim));
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed, kQueryStream + uint64_t(i));
    draw_point(rng, centers, cfg.clusters, dim, cfg.cluster_spread, out.data() + i * dim);
  }
  return out;
}

}  // namespace argent
