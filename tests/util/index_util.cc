#include "tests/util/index_util.h"

#include <cmath>

#include "kernels/cpu/layout_pack.h"
#include "kernels/layout.h"

namespace argent::test {

ItemSet random_items(Rng& rng, int64_t n, int dim, const std::vector<int64_t>& ids, int n_features,
                     int n_values, double p) {
  ItemSet items;
  items.dim = dim;
  items.ids = ids;
  items.embeddings = random_normal(rng, size_t(n) * size_t(dim));
  for (int64_t i = 0; i < n; ++i)
    items.push_features(random_features(rng, n_features, n_values, p));
  return items;
}

FeatureList features_of(const ItemSet& items, int64_t i) {
  FeatureList out;
  for (int64_t j = items.feature_offsets[size_t(i)]; j < items.feature_offsets[size_t(i) + 1]; ++j)
    out.emplace_back(items.feature_ids[size_t(j)], items.feature_values[size_t(j)]);
  return out;
}

StoredItems read_back(const ShardIndex& shard) {
  StoredItems out;
  const ScanIndexView v = shard.view();
  out.d_pad = v.d_pad;
  std::vector<int8_t> row(static_cast<size_t>(v.d_pad));
  for (int64_t r = 0; r < v.n_rows; ++r) {
    if (v.ids[r] == kEmptyId) continue;
    out.ids.push_back(v.ids[r]);
    unpack_row(v.codes, v.d_pad, r, row.data());
    out.codes.insert(out.codes.end(), row.begin(), row.end());
    out.scales.push_back(v.scales[r]);
    out.features.push_back(shard.features_of_row(r));
  }
  return out;
}

std::vector<Scored> exact_int8_reference(const StoredItems& items, const QueryBatch& q, int64_t qi,
                                         const RefExpr* eligible) {
  const int d_pad = items.d_pad;
  const int8_t* qc = q.codes.data() + qi * d_pad;
  const double qs = q.scales[size_t(qi)];
  std::vector<Scored> out;
  for (size_t i = 0; i < items.ids.size(); ++i) {
    if (eligible != nullptr && !ref_eval(*eligible, items.features[i])) continue;
    const int8_t* xc = items.codes.data() + i * size_t(d_pad);
    const double xs = items.scales[i];
    double s = 0;
    for (int j = 0; j < d_pad; ++j) s += (double(qc[j]) * qs) * (double(xc[j]) * xs);
    out.push_back({items.ids[i], s});
  }
  sort_reference(out);
  return out;
}

std::vector<Scored> exact_float_reference(const ItemSet& items, const float* x, bool normalize,
                                          const RefExpr* eligible) {
  const int dim = items.dim;
  double qn = 0;
  for (int j = 0; j < dim; ++j) qn += double(x[j]) * x[j];
  qn = normalize && qn > 0 ? 1.0 / std::sqrt(qn) : 1.0;
  std::vector<Scored> out;
  for (int64_t i = 0; i < items.size(); ++i) {
    if (eligible != nullptr && !ref_eval(*eligible, features_of(items, i))) continue;
    const float* e = items.embedding(i);
    double dot = 0, sq = 0;
    for (int j = 0; j < dim; ++j) {
      dot += double(x[j]) * e[j];
      sq += double(e[j]) * e[j];
    }
    const double xn = normalize && sq > 0 ? 1.0 / std::sqrt(sq) : 1.0;
    out.push_back({items.ids[size_t(i)], dot * qn * xn});
  }
  sort_reference(out);
  return out;
}

IndexConfig small_index_config(int32_t partitions, int64_t nlist) {
  IndexConfig cfg;
  cfg.partitions = partitions;
  cfg.nlist = nlist;
  cfg.kmeans_iterations = 4;
  cfg.seed = 7;
  return cfg;
}

}  // namespace argent::test
