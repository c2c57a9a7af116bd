// Items as a user hands them to Argent: ids, float embeddings and categorical features. This is
// the input of an index build and of the synthetic generator; the index holds them quantized.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace argent {

struct ItemSet {
  int32_t dim = 0;
  std::vector<int64_t> ids;                    // [n], unique
  std::vector<float> embeddings;               // [n, dim] row-major, finite
  std::vector<int64_t> feature_offsets = {0};  // [n + 1] CSR into feature_ids / feature_values
  std::vector<int32_t> feature_ids;            // per item sorted by (id, value), no duplicates
  std::vector<int64_t> feature_values;
  // Pre-quantized items (argent export's codes.npy + scales.npy): when set, the index stores
  // exactly these codes [n, dim] and scales [n] instead of quantizing `embeddings` (which then
  // hold codes * scale, for k-means).
  std::vector<int8_t> codes;
  std::vector<float> scales;

  bool quantized() const { return !scales.empty(); }
  int64_t size() const { return int64_t(ids.size()); }
  const float* embedding(int64_t i) const { return embeddings.data() + i * dim; }
  // Appends the features of the next item (any order, duplicates dropped).
  void push_features(std::vector<std::pair<int32_t, int64_t>> pairs);
};

// Checks what an index build relies on: 1 <= dim <= kMaxDim, sizes consistent, embeddings
// finite, ids unique and not -1, features sorted. Throws Error(kInvalidArgument) naming the
// first problem.
void validate_item_set(const ItemSet& items);

// Loads items from files (argent build-index): embeddings .npy float32/float16 [N, d]; ids .npy
// int64/int32 [N] (empty path: ids 0..N-1); features JSON Lines (empty path: none), one object a
// line, {"id": 7, "features": {"3": [100, 101], "5": 2}}, items without a line have no features.
ItemSet load_item_set(const std::string& embeddings_path, const std::string& ids_path,
                      const std::string& features_path);

// The same from pre-quantized items: codes .npy int8 [N, d] and scales .npy float32 [N] (finite,
// >= 0), as `argent export` writes them. The index built from them holds these exact codes and
// scales.
ItemSet load_quantized_item_set(const std::string& codes_path, const std::string& scales_path,
                                const std::string& ids_path, const std::string& features_path);

}  // namespace argent
