// The expected contents of an index under a stream of writes: id -> (embedding, features), with
// items that carry their own id and a version unique to each write as features, so a search can
// tell which write it sees. Shared by the update tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "shard/item_set.h"
#include "tests/util/test_util.h"

namespace argent::test {

constexpr int32_t kIdFeature = 100;      // every item carries (100, its id)
constexpr int32_t kVersionFeature = 99;  // and (99, a version unique to each write)

struct ModelItem {
  std::vector<float> embedding;
  FeatureList features;
  int64_t version = 0;
};
using Model = std::map<int64_t, ModelItem>;

// A random item of dimension `dim` with random_features(n_features, n_values, 0.3) plus its id
// and version features.
inline ModelItem random_model_item(Rng& rng, int dim, int n_features, int n_values, int64_t id,
                                   int64_t version) {
  ModelItem m;
  m.embedding = random_normal(rng, static_cast<size_t>(dim));
  m.features = random_features(rng, n_features, n_values, 0.3);
  m.features.emplace_back(kVersionFeature, version);
  m.features.emplace_back(kIdFeature, id);
  std::sort(m.features.begin(), m.features.end());
  m.version = version;
  return m;
}

// The model as items for build_index (a fresh build of the same final set).
inline ItemSet to_item_set(const Model& model, int dim) {
  ItemSet items;
  items.dim = dim;
  for (const auto& [id, m] : model) {
    items.ids.push_back(id);
    items.embeddings.insert(items.embeddings.end(), m.embedding.begin(), m.embedding.end());
    items.push_features(m.features);
  }
  return items;
}

}  // namespace argent::test
