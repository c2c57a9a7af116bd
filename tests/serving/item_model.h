// The expected contents of an index under a stream of writes: id -> (embedding, features), with
// items that carry their own id and a version unique to each write as features, so a search can
// tell which write it sees; and the gateway requests that write and search it. Shared by the
// update, rebalance and crash tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "argent/v1/service.pb.h"
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

// The gateway request that upserts `items`.
inline v1::Request upsert_request(const Model& items) {
  v1::Request r;
  for (const auto& [id, m] : items) {
    v1::Item* item = r.mutable_upsert()->add_items();
    item->set_id(id);
    item->mutable_embedding()->Add(m.embedding.begin(), m.embedding.end());
    for (const auto& [f, v] : m.features) (*item->mutable_features())[f].add_values(v);
  }
  return r;
}

inline v1::Request delete_request(const std::vector<int64_t>& ids) {
  v1::Request r;
  for (int64_t id : ids) r.mutable_delete_()->add_ids(id);
  return r;
}

// A top-k search for `x` under `filter`; exact (every list) unless told otherwise.
inline v1::SearchRequest search_request(const std::vector<float>& x, int64_t k,
                                        const std::string& filter, bool exact = true) {
  v1::SearchRequest r;
  r.mutable_embedding()->Add(x.begin(), x.end());
  r.set_k(int32_t(k));
  r.set_filter(filter);
  r.set_exact(exact);
  return r;
}

// The filter term "f:v".
inline std::string term(int32_t f, int64_t v) { return std::to_string(f) + ":" + std::to_string(v); }

}  // namespace argent::test
