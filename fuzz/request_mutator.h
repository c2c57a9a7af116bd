// A structure-aware mutator for argent.v1.Request (libFuzzer's LLVMFuzzerCustomMutator): decodes
// the input, changes one field the way hostile clients do (caps' edges, NaN, wrong dimension,
// repeated or reserved ids, negative feature ids, deep filters, a different body) and re-encodes
// it. Inputs that do not decode are mutated as raw bytes, as are one in eight of the rest, so
// the decoder itself keeps seeing broken encodings.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "argent/v1/service.pb.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace argent::fuzz {

inline int64_t edge_int(std::mt19937_64& rng) {
  static const int64_t kEdges[] = {0, 1, -1, 2, 7, 8, 9, 63, 64, 65, 100, 1000, 1001, 5000, 5001,
                                   100000, 100001, std::numeric_limits<int32_t>::max(),
                                   std::numeric_limits<int32_t>::min(),
                                   std::numeric_limits<int64_t>::max(),
                                   std::numeric_limits<int64_t>::min()};
  if (rng() % 4 == 0) return int64_t(rng());
  return kEdges[rng() % (sizeof kEdges / sizeof kEdges[0])];
}

inline float edge_float(std::mt19937_64& rng) {
  static const float kEdges[] = {0.f, -0.f, 1.f, -1.f, 1e-38f, 3e38f, -3e38f,
                                 std::numeric_limits<float>::quiet_NaN(),
                                 std::numeric_limits<float>::infinity(),
                                 -std::numeric_limits<float>::infinity(),
                                 std::numeric_limits<float>::denorm_min()};
  if (rng() % 2 == 0) return std::uniform_real_distribution<float>(-2.f, 2.f)(rng);
  return kEdges[rng() % (sizeof kEdges / sizeof kEdges[0])];
}

inline std::string mutate_text(const std::string& text, std::mt19937_64& rng) {
  static const char* kFragments[] = {"1:3", " AND ", " OR ", "NOT ", "!", "(", ")", "&", "|",
                                     "-9223372036854775808", "2147483648", ":0.5", "  ", "and",
                                     "((((((((((", "))))))))))", "NOT NOT NOT NOT "};
  std::string out = text;
  if (rng() % 2 == 0) {
    const size_t at = out.empty() ? 0 : rng() % (out.size() + 1);
    out.insert(at, kFragments[rng() % (sizeof kFragments / sizeof kFragments[0])]);
  } else {
    out.resize(out.size() + 16);
    out.resize(LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(&out[0]), out.size() - 16,
                                out.size()));
  }
  return out;
}

inline void resize_floats(google::protobuf::RepeatedField<float>* values, std::mt19937_64& rng) {
  static const int kSizes[] = {0, 1, 7, 8, 9, 16};
  const int n = kSizes[rng() % (sizeof kSizes / sizeof kSizes[0])];
  values->Resize(n, 0.f);
  for (int i = 0; i < n; ++i) values->Set(i, std::uniform_real_distribution<float>(-1.f, 1.f)(rng));
}

inline void mutate_search(v1::SearchRequest* s, std::mt19937_64& rng) {
  switch (rng() % 10) {
    case 0: s->set_k(int32_t(edge_int(rng))); break;
    case 1: resize_floats(s->mutable_embedding(), rng); break;
    case 2:
      if (s->embedding_size() > 0) s->set_embedding(int(rng() % s->embedding_size()), edge_float(rng));
      break;
    case 3: s->set_filter(mutate_text(s->filter(), rng)); break;
    case 4: s->set_nprobe(int32_t(edge_int(rng))); break;
    case 5: s->set_exact(!s->exact()); break;
    case 6: {
      const int n = int(rng() % 300);
      for (int i = 0; i < n; ++i) s->add_exclude_ids(edge_int(rng));
      break;
    }
    case 7: {
      s->clear_task_weights();
      const int n = int(rng() % 6);
      for (int i = 0; i < n; ++i) s->add_task_weights(edge_float(rng));
      break;
    }
    case 8: s->set_rerank_depth(int32_t(edge_int(rng))); break;
    default: s->set_timeout_ms(edge_int(rng)); break;
  }
}

inline void mutate_item(v1::Item* item, std::mt19937_64& rng) {
  switch (rng() % 4) {
    case 0: item->set_id(edge_int(rng)); break;
    case 1: resize_floats(item->mutable_embedding(), rng); break;
    case 2:
      if (item->embedding_size() > 0)
        item->set_embedding(int(rng() % item->embedding_size()), edge_float(rng));
      break;
    default: {
      v1::FeatureValues& values = (*item->mutable_features())[int32_t(edge_int(rng) % 100)];
      const int n = int(rng() % 40);
      for (int i = 0; i < n; ++i) values.add_values(edge_int(rng));
      break;
    }
  }
}

inline void mutate_request(v1::Request* r, std::mt19937_64& rng) {
  if (r->body_case() == v1::Request::BODY_NOT_SET || rng() % 16 == 0) {
    switch (rng() % 6) {
      case 0: resize_floats(r->mutable_search()->mutable_embedding(), rng); break;
      case 1: mutate_item(r->mutable_upsert()->add_items(), rng); break;
      case 2: r->mutable_delete_()->add_ids(edge_int(rng)); break;
      case 3: r->mutable_stats()->set_request_id(uint64_t(edge_int(rng))); break;
      case 4: r->mutable_health()->set_request_id(uint64_t(edge_int(rng))); break;
      default: r->mutable_admin()->set_request_id(uint64_t(edge_int(rng))); break;
    }
    return;
  }
  if (r->has_search()) return mutate_search(r->mutable_search(), rng);
  if (r->has_upsert()) {
    v1::UpsertRequest* u = r->mutable_upsert();
    if (u->items_size() == 0 || rng() % 3 == 0) {
      v1::Item* item = u->add_items();
      if (u->items_size() > 1 && rng() % 2 == 0) *item = u->items(int(rng() % (u->items_size() - 1)));
      mutate_item(item, rng);
    } else {
      mutate_item(u->mutable_items(int(rng() % u->items_size())), rng);
    }
    return;
  }
  if (r->has_delete_()) {
    const int n = 1 + int(rng() % 80);
    for (int i = 0; i < n; ++i) r->mutable_delete_()->add_ids(edge_int(rng));
    return;
  }
  if (r->has_admin()) r->mutable_admin()->set_request_id(uint64_t(edge_int(rng)));
}

}  // namespace argent::fuzz

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  std::mt19937_64 rng(seed);
  argent::v1::Request request;
  if (rng() % 8 == 0 || !request.ParseFromArray(data, int(size)))
    return LLVMFuzzerMutate(data, size, max_size);
  argent::fuzz::mutate_request(&request, rng);
  const std::string out = request.SerializeAsString();
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
