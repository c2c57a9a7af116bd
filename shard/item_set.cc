#include "shard/item_set.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"
#include "common/vecs.h"
#include "common/npy.h"
#include "kernels/layout.h"

namespace argent {

void ItemSet::push_features(std::vector<std::pair<int32_t, int64_t>> pairs) {
  std::sort(pairs.begin(), pairs.end());
  pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  for (const auto& [f, v] : pairs) {
    feature_ids.push_back(f);
    feature_values.push_back(v);
  }
  feature_offsets.push_back(int64_t(feature_ids.size()));
}

void validate_item_set(const ItemSet& items) {
  const int64_t n = items.size();
  ARGENT_CHECK(items.dim >= 1 && items.dim <= kMaxDim, "items: dimension ", items.dim,
               " is outside [1, ", kMaxDim, "]");
  ARGENT_CHECK(int64_t(items.embeddings.size()) == n * items.dim, "items: ", n, " ids but ",
               items.embeddings.size(), " embedding values for dim ", items.dim);
  ARGENT_CHECK(int64_t(items.feature_offsets.size()) == n + 1, "items: feature offsets for ",
               items.feature_offsets.size() - 1, " items, expected ", n);
  ARGENT_CHECK(!items.quantized() || (int64_t(items.scales.size()) == n &&
                                      int64_t(items.codes.size()) == n * items.dim),
               "items: ", items.scales.size(), " scales and ", items.codes.size(),
               " codes for ", n, " items of dim ", items.dim);
  for (size_t i = 0; i < items.embeddings.size(); ++i)
    ARGENT_CHECK(std::isfinite(items.embeddings[i]), "items: embedding of item ",
                 items.ids[i / size_t(items.dim)], " has a non-finite value (NaN or inf)");
  std::unordered_set<int64_t> seen;
  seen.reserve(size_t(n));
  for (int64_t id : items.ids) {
    ARGENT_CHECK(id != kEmptyId, "items: id -1 is reserved");
    ARGENT_CHECK(seen.insert(id).second, "items: duplicate id ", id);
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = items.feature_offsets[size_t(i)], e = items.feature_offsets[size_t(i) + 1];
    ARGENT_CHECK(b <= e && e <= int64_t(items.feature_ids.size()), "items: bad feature offsets");
    for (int64_t j = b; j < e; ++j) {
      ARGENT_CHECK(items.feature_ids[size_t(j)] >= 0, "items: item ", items.ids[size_t(i)],
                   " has negative feature id ", items.feature_ids[size_t(j)]);
      if (j > b)
        ARGENT_CHECK(std::make_pair(items.feature_ids[size_t(j - 1)], items.feature_values[size_t(j - 1)]) <
                         std::make_pair(items.feature_ids[size_t(j)], items.feature_values[size_t(j)]),
                     "items: features of item ", items.ids[size_t(i)], " are not sorted");
    }
  }
}

namespace {

using FeatureList = std::vector<std::pair<int32_t, int64_t>>;

int64_t json_int(const nlohmann::json& v, const std::string& where) {
  ARGENT_CHECK(v.is_number_integer(), where, ": expected an integer, got ", v.dump());
  return v.get<int64_t>();
}

std::unordered_map<int64_t, FeatureList> read_features_jsonl(const std::string& path) {
  std::ifstream in(path);
  ARGENT_CHECK(in.good(), "features: cannot open ", path);
  std::unordered_map<int64_t, FeatureList> out;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      ARGENT_CHECK(false, where, ": not valid JSON: ", e.what());
    }
    ARGENT_CHECK(j.is_object() && j.contains("id"), where, ": expected {\"id\": ..., \"features\": {...}}");
    const int64_t id = json_int(j["id"], where + " id");
    FeatureList& list = out[id];
    ARGENT_CHECK(list.empty(), where, ": id ", id, " appears twice");
    if (!j.contains("features")) continue;
    const nlohmann::json& f = j["features"];
    ARGENT_CHECK(f.is_object(), where, ": \"features\" must be an object of feature id -> values");
    for (const auto& [key, values] : f.items()) {
      int32_t feature = -1;
      try {
        size_t used = 0;
        const long parsed = std::stol(key, &used);
        ARGENT_CHECK(used == key.size() && parsed >= 0 && parsed <= INT32_MAX, "bad key");
        feature = int32_t(parsed);
      } catch (const std::exception&) {
        ARGENT_CHECK(false, where, ": feature id \"", key, "\" is not an int32 >= 0");
      }
      if (values.is_array()) {
        for (const auto& v : values) list.emplace_back(feature, json_int(v, where + " value"));
      } else {
        list.emplace_back(feature, json_int(values, where + " value"));
      }
    }
  }
  return out;
}

}  // namespace

namespace {

// Ids (default 0..rows-1) and features of `rows` items whose embeddings are already in `items`.
void load_ids_and_features(ItemSet& items, int64_t rows, const std::string& what,
                           const std::string& ids_path, const std::string& features_path);

}  // namespace

ItemSet load_item_set(const std::string& embeddings_path, const std::string& ids_path,
                      const std::string& features_path) {
  ItemSet items;
  int64_t rows = 0, cols = 0;
  items.embeddings = npy_to_float_matrix(read_array(embeddings_path), embeddings_path, &rows, &cols);
  ARGENT_CHECK(cols >= 1 && cols <= kMaxDim, embeddings_path, ": dimension ", cols,
               " is outside [1, ", kMaxDim, "]");
  items.dim = int32_t(cols);
  load_ids_and_features(items, rows, embeddings_path, ids_path, features_path);
  return items;
}

ItemSet load_quantized_item_set(const std::string& codes_path, const std::string& scales_path,
                                const std::string& ids_path, const std::string& features_path) {
  const NpyArray codes = read_npy(codes_path);
  ARGENT_CHECK(codes.dtype == "|i1" && codes.shape.size() == 2, codes_path,
               ": expected int8 codes [N, d], got dtype '", codes.dtype, "' with ",
               codes.shape.size(), " dimensions");
  const int64_t rows = codes.shape[0], cols = codes.shape[1];
  ARGENT_CHECK(cols >= 1 && cols <= kMaxDim, codes_path, ": dimension ", cols,
               " is outside [1, ", kMaxDim, "]");
  const NpyArray scales = read_npy(scales_path);
  ARGENT_CHECK(scales.dtype == "<f4" && scales.shape.size() == 1 && scales.shape[0] == rows,
               scales_path, ": expected float32 scales [", rows, "] (one per code row)");
  ItemSet items;
  items.dim = int32_t(cols);
  items.codes.resize(size_t(rows * cols));
  std::memcpy(items.codes.data(), codes.data.data(), items.codes.size());
  items.scales.resize(size_t(rows));
  std::memcpy(items.scales.data(), scales.data.data(), items.scales.size() * sizeof(float));
  items.embeddings.resize(size_t(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    const float scale = items.scales[size_t(i)];
    ARGENT_CHECK(std::isfinite(scale) && scale >= 0, scales_path, ": scale ", i, " is ", scale,
                 "; scales are finite and >= 0");
    for (int64_t j = 0; j < cols; ++j) {
      const int8_t c = items.codes[size_t(i * cols + j)];
      ARGENT_CHECK(c != -128, codes_path, ": row ", i, " column ", j,
                   " is -128; codes are in [-127, 127]");
      items.embeddings[size_t(i * cols + j)] = float(c) * scale;
    }
  }
  load_ids_and_features(items, rows, codes_path, ids_path, features_path);
  return items;
}

namespace {

void load_ids_and_features(ItemSet& items, int64_t rows, const std::string& what,
                           const std::string& ids_path, const std::string& features_path) {
  if (ids_path.empty()) {
    items.ids.resize(size_t(rows));
    for (int64_t i = 0; i < rows; ++i) items.ids[size_t(i)] = i;
  } else {
    items.ids = npy_to_int64_vector(read_array(ids_path), ids_path);
    ARGENT_CHECK(int64_t(items.ids.size()) == rows, ids_path, ": ", items.ids.size(),
                 " ids for ", rows, " rows of ", what);
  }
  std::unordered_map<int64_t, FeatureList> features;
  if (!features_path.empty()) features = read_features_jsonl(features_path);
  size_t matched = 0;
  for (int64_t id : items.ids) {
    auto it = features.find(id);
    if (it == features.end()) {
      items.push_features({});
    } else {
      items.push_features(std::move(it->second));
      ++matched;
    }
  }
  ARGENT_CHECK(matched == features.size(), features_path, ": ", features.size() - matched,
               " lines name ids that are not among the embeddings' ids");
  validate_item_set(items);
}

}  // namespace

}  // namespace argent
