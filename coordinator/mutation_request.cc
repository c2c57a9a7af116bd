#include "coordinator/mutation_request.h"

#include <cmath>
#include <sstream>
#include <unordered_set>

#include "common/byte_codec.h"
#include "kernels/layout.h"

namespace argent {

std::string validate_upsert(const v1::UpsertRequest& request, const IndexMeta& meta,
                            const Config& config, MutationBatch* out) {
  std::ostringstream why;
  const int64_t n = request.items_size();
  if (n == 0) return "upsert: no items";
  if (n > config.updates.max_request_items) {
    why << "upsert: " << n << " items; at most updates.max_request_items = "
        << config.updates.max_request_items << " per request";
    return why.str();
  }
  MutationBatch b;
  b.kind = MutationKind::kUpsert;
  b.items.dim = meta.dim;
  b.items.ids.reserve(size_t(n));
  b.items.embeddings.reserve(size_t(n) * size_t(meta.dim));
  std::unordered_set<int64_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    const v1::Item& item = request.items(int(i));
    if (item.id() == kEmptyId) {
      why << "upsert: item " << i << ": id -1 is reserved";
      return why.str();
    }
    if (!seen.insert(item.id()).second) {
      why << "upsert: item " << i << ": id " << item.id() << " appears twice in one request";
      return why.str();
    }
    if (item.embedding_size() != meta.dim) {
      why << "upsert: item " << i << " (id " << item.id() << ") has " << item.embedding_size()
          << " embedding values, the index has dimension " << meta.dim;
      return why.str();
    }
    for (int j = 0; j < item.embedding_size(); ++j) {
      if (!std::isfinite(item.embedding(j))) {
        why << "upsert: item " << i << " (id " << item.id() << "): embedding[" << j << "] is "
            << item.embedding(j) << "; values must be finite";
        return why.str();
      }
    }
    int64_t pairs = 0;  // counted before any is copied
    for (const auto& [feature, values] : item.features()) pairs += values.values_size();
    if (pairs > config.gateway.max_item_features) {
      why << "upsert: item " << i << " (id " << item.id() << ") has " << pairs
          << " (feature, value) pairs; at most gateway.max_item_features = "
          << config.gateway.max_item_features;
      return why.str();
    }
    std::vector<std::pair<int32_t, int64_t>> features;
    for (const auto& [feature, values] : item.features()) {
      if (feature < 0) {
        why << "upsert: item " << i << " (id " << item.id() << "): feature id " << feature
            << " is negative";
        return why.str();
      }
      for (int64_t v : values.values()) features.emplace_back(feature, v);
    }
    b.items.ids.push_back(item.id());
    b.items.embeddings.insert(b.items.embeddings.end(), item.embedding().begin(),
                              item.embedding().end());
    b.items.push_features(std::move(features));  // sorts and drops duplicates
  }
  *out = std::move(b);
  return "";
}

std::string validate_delete(const v1::DeleteRequest& request, const Config& config,
                            MutationBatch* out) {
  std::ostringstream why;
  const int64_t n = request.ids_size();
  if (n == 0) return "delete: no ids";
  if (n > config.updates.max_request_items) {
    why << "delete: " << n << " ids; at most updates.max_request_items = "
        << config.updates.max_request_items << " per request";
    return why.str();
  }
  MutationBatch b;
  b.kind = MutationKind::kDelete;
  std::unordered_set<int64_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = request.ids(int(i));
    if (id == kEmptyId) {
      why << "delete: ids[" << i << "] is -1, which is reserved";
      return why.str();
    }
    if (seen.insert(id).second) b.ids.push_back(id);  // deleting twice is deleting once
  }
  *out = std::move(b);
  return "";
}

std::string validate_snapshot(const v1::AdminRequest& request) {
  std::ostringstream why;
  if (request.action() != v1::AdminRequest::SNAPSHOT) {
    why << "admin: unknown action " << int(request.action()) << " (SNAPSHOT = "
        << int(v1::AdminRequest::SNAPSHOT) << ", REBALANCE = " << int(v1::AdminRequest::REBALANCE)
        << ")";
    return why.str();
  }
  if (!request.plan().empty() || request.rank() != 0 || request.moves_size() != 0)
    return "admin: SNAPSHOT takes no plan, rank or moves (those are REBALANCE's)";
  return "";
}

std::vector<uint8_t> encode_mutation(const MutationBatch& b) {
  ByteWriter w;
  w.put<uint8_t>(uint8_t(b.kind));
  w.put_array<uint8_t>(std::vector<uint8_t>(3, 0).data(), 3);
  const int32_t dim = b.kind == MutationKind::kUpsert ? b.items.dim : 0;
  w.put<uint32_t>(uint32_t(dim));
  w.put<int64_t>(b.size());
  if (b.kind == MutationKind::kDelete) {
    w.put_array(b.ids.data(), b.ids.size());
    return w.take();
  }
  for (int64_t i = 0; i < b.items.size(); ++i) {
    w.put<int64_t>(b.items.ids[size_t(i)]);
    w.put_array(b.items.embedding(i), size_t(dim));
    const int64_t fb = b.items.feature_offsets[size_t(i)], fe = b.items.feature_offsets[size_t(i) + 1];
    w.put<uint32_t>(uint32_t(fe - fb));
    for (int64_t j = fb; j < fe; ++j) {
      w.put<int32_t>(b.items.feature_ids[size_t(j)]);
      w.put<int64_t>(b.items.feature_values[size_t(j)]);
    }
  }
  return w.take();
}

MutationBatch decode_mutation(const uint8_t* data, size_t size, int32_t dim) {
  ByteReader r(data, size, "write-ahead log record");
  MutationBatch b;
  const uint8_t kind = r.get<uint8_t>();
  r.get_array<uint8_t>(3);
  const uint32_t record_dim = r.get<uint32_t>();
  const int64_t n = r.get<int64_t>();
  ARGENT_CHECK_DATA(n >= 0, r.what(), ": ", n, " items");
  if (kind == uint8_t(MutationKind::kDelete)) {
    b.kind = MutationKind::kDelete;
    b.ids = r.get_array<int64_t>(n);
  } else {
    ARGENT_CHECK_DATA(kind == uint8_t(MutationKind::kUpsert), r.what(), ": unknown kind ",
                      int(kind));
    ARGENT_CHECK_DATA(int64_t(record_dim) == dim, r.what(), ": dimension ", record_dim,
                      " != index dimension ", dim);
    b.kind = MutationKind::kUpsert;
    b.items.dim = dim;
    for (int64_t i = 0; i < n; ++i) {
      b.items.ids.push_back(r.get<int64_t>());
      const std::vector<float> x = r.get_array<float>(dim);
      b.items.embeddings.insert(b.items.embeddings.end(), x.begin(), x.end());
      const uint32_t m = r.get<uint32_t>();
      ARGENT_CHECK_DATA(uint64_t(m) * 12 <= r.left(), r.what(), ": ", m, " features overrun it");
      std::vector<std::pair<int32_t, int64_t>> features;
      for (uint32_t j = 0; j < m; ++j) {
        const int32_t f = r.get<int32_t>();
        features.emplace_back(f, r.get<int64_t>());
      }
      b.items.push_features(std::move(features));
    }
  }
  ARGENT_CHECK_DATA(r.done(), r.what(), ": ", r.left(), " trailing bytes");
  return b;
}

}  // namespace argent
