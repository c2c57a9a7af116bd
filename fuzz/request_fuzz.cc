// Fuzzes the gateway's request decoding and validation: bytes -> argent.v1.Request ->
// validate_search / validate_upsert / validate_delete / required_role, as Gateway::handle runs
// them, against a small fixed index (dim 8) and the default caps. Properties checked:
//   - a search that validates has k in [1, search.max_k], the index's dimension, finite values,
//     at most gateway.max_exclude_ids excluded ids and a filter that compiles;
//   - a write that validates survives the write-ahead log's codec unchanged
//     (decode_mutation(encode_mutation(b)) == b), has 1..updates.max_request_items entries and
//     no id -1;
//   - admin-only requests need the admin role.
// Built twice: request_fuzz mutates raw bytes; request_structured_fuzz (ARGENT_STRUCTURED)
// adds a custom mutator that decodes the message, changes fields towards the caps' edges and
// re-encodes it (libprotobuf-mutator is not packaged in Debian; request_mutator.h is ours).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <google/protobuf/stubs/logging.h>

#include "common/config.h"
#include "common/error.h"
#include "coordinator/access_control.h"
#include "coordinator/mutation_request.h"
#include "coordinator/request_validation.h"
#include "kernels/layout.h"
#ifdef ARGENT_STRUCTURED
#include "request_mutator.h"
#endif

namespace {

constexpr int kDim = 8;

const argent::IndexMeta& fuzz_meta() {
  static const argent::IndexMeta meta = [] {
    argent::IndexMeta m;
    m.dim = kDim;
    m.d_pad = argent::padded_dim(kDim);
    m.nlist = 4;
    m.partitions = 4;
    m.n_items = 100;
    m.centroids.assign(size_t(m.nlist * kDim), 0.5f);
    return m;
  }();
  return meta;
}

// Two configurations, so both the reranking and the plain validation paths are reached.
const argent::Config& fuzz_config(bool rerank) {
  static const argent::Config plain = [] {
    argent::Config c;
    c.search.max_k = 1000;
    c.updates.max_request_items = 64;
    c.gateway.max_exclude_ids = 256;
    c.gateway.max_filter_chars = 512;
    c.gateway.max_filter_depth = 16;
    c.gateway.max_item_features = 32;
    return c;
  }();
  static const argent::Config reranking = [] {
    argent::Config c = plain;
    c.rerank.enabled = true;
    c.rerank.model = "unused";
    c.gateway.max_rerank_depth = 5000;
    return c;
  }();
  return rerank ? reranking : plain;
}

bool same_batch(const argent::MutationBatch& a, const argent::MutationBatch& b) {
  // Embeddings bit for bit: a logged NaN must come back as the same NaN (== would say no).
  const bool same_embeddings =
      a.items.embeddings.size() == b.items.embeddings.size() &&
      (a.items.embeddings.empty() ||
       std::memcmp(a.items.embeddings.data(), b.items.embeddings.data(),
                   a.items.embeddings.size() * sizeof(float)) == 0);
  return a.kind == b.kind && a.ids == b.ids && a.items.ids == b.items.ids && same_embeddings &&
         a.items.feature_offsets == b.items.feature_offsets &&
         a.items.feature_ids == b.items.feature_ids &&
         a.items.feature_values == b.items.feature_values;
}

void check_write(const argent::MutationBatch& batch, const argent::Config& config) {
  if (batch.size() < 1 || batch.size() > config.updates.max_request_items) __builtin_trap();
  const std::vector<uint8_t> bytes = argent::encode_mutation(batch);
  const argent::MutationBatch back = argent::decode_mutation(bytes.data(), bytes.size(), kDim);
  if (!same_batch(batch, back)) __builtin_trap();
}

}  // namespace

// Protobuf logs every string field that is not UTF-8; hostile input is expected here.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  argent::v1::Request request;
  if (!request.ParseFromArray(data, int(size))) return 0;
  const argent::Config& config = fuzz_config(size % 2 == 1);
  const argent::ClientRole needed = argent::required_role(request);
  const bool admin_only = request.has_upsert() || request.has_delete_() || request.has_admin();
  if (admin_only != (needed == argent::ClientRole::kAdmin)) __builtin_trap();
  if (argent::role_allows(argent::ClientRole::kQuery, needed) == admin_only) __builtin_trap();
  try {
    if (request.has_search()) {
      argent::PendingSearch out;
      if (!argent::validate_search(request.search(), fuzz_meta(), config, &out).empty()) return 0;
      if (out.k < 1 || out.k > config.search.max_k) __builtin_trap();
      if (out.embedding.size() != size_t(kDim)) __builtin_trap();
      for (float v : out.embedding)
        if (!std::isfinite(v)) __builtin_trap();
      if (int64_t(out.exclude_ids.size()) > config.gateway.max_exclude_ids) __builtin_trap();
      (void)argent::compile_filter(out.filter, fuzz_meta().bloom);  // must not throw
    } else if (request.has_upsert()) {
      argent::MutationBatch batch;
      if (!argent::validate_upsert(request.upsert(), fuzz_meta(), config, &batch).empty())
        return 0;
      for (int64_t id : batch.items.ids)
        if (id == -1) __builtin_trap();
      check_write(batch, config);
    } else if (request.has_delete_()) {
      argent::MutationBatch batch;
      if (!argent::validate_delete(request.delete_(), config, &batch).empty()) return 0;
      for (int64_t id : batch.ids)
        if (id == -1) __builtin_trap();
      check_write(batch, config);
    }
  } catch (const argent::Error&) {
    __builtin_trap();  // validation reports problems as strings; a throw here is a bug
  }
  return 0;
}
