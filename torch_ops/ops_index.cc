#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <numeric>

#include "common/error.h"
#include "coordinator/reranker.h"
#include "kernels/cpu/kmeans.h"
#include "kernels/layout.h"
#include "shard/filter.h"
#include "shard/index_meta.h"
#include "shard/mutation.h"
#include "shard/shard_index.h"
#include "torch_ops/op_args.h"
#include "torch_ops/ops.h"

namespace argent::ops {
namespace {

using at::Tensor;
using IndexDict = c10::Dict<std::string, Tensor>;

Tensor scalar(int64_t v) { return at::scalar_tensor(v, at::kLong); }

Tensor entry(const IndexDict& d, const char* name) {
  TORCH_CHECK(d.contains(name), "argent::apply_updates: the index has no tensor '", name,
              "' (pass the dict argent::load_index returns, or ArgentRetrieval.index_tensors())");
  return d.at(name);
}

int64_t scalar_of(const IndexDict& d, const char* name) {
  const Tensor t = entry(d, name);
  TORCH_CHECK(t.numel() == 1, "argent::apply_updates: '", name, "' must hold one value");
  return t.item<int64_t>();
}

// Errors of the service code (argent::Error) surface in Python as RuntimeError, with the
// operator's name in front.
template <typename F>
auto translate(const char* op, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    TORCH_CHECK(false, op, ": ", e.what());
  }
}

}  // namespace

Tensor compile_filter_op(const std::string& expression, int64_t bloom_words, int64_t bloom_hashes,
                         int64_t bloom_seed) {
  const char* op = "argent::compile_filter";
  const BloomParams p = bloom_params(op, bloom_words, bloom_hashes, bloom_seed);
  const FilterPlan plan = translate(op, [&] { return compile_filter(expression, p); });
  Tensor out = at::empty({int64_t(plan.ops.size()), 4}, at::kLong);
  if (!plan.ops.empty())
    std::memcpy(out.data_ptr(), plan.ops.data(), plan.ops.size() * sizeof(FilterOp));
  return out;
}

IndexDict load_index_op(const std::string& path, double list_slack) {
  const char* op = "argent::load_index";
  return translate(op, [&] {
    const IndexMeta meta = read_manifest(path);
    std::vector<int32_t> all(size_t(meta.partitions));
    std::iota(all.begin(), all.end(), 0);
    const ShardIndex shard = ShardIndex::load(path, meta, all, list_slack);
    IndexDict d;
    for (const ShardTensorField& f : kShardTensorFields)
      d.insert(f.name, shard.tensors().*f.member);
    d.insert("centroids",
             at::from_blob(const_cast<float*>(meta.centroids.data()), {meta.nlist, meta.dim},
                           at::kFloat)
                 .clone());
    QuantizedCentroids c = quantize_centroids(meta.centroids.data(), meta.nlist, meta.dim);
    d.insert("centroid_codes", at::from_blob(c.blocked.data(), {int64_t(c.blocked.size())},
                                             at::kChar).clone());
    d.insert("centroid_scales",
             at::from_blob(c.scales.data(), {int64_t(c.scales.size())}, at::kFloat).clone());
    d.insert("dim", scalar(meta.dim));
    d.insert("d_pad", scalar(meta.d_pad));
    d.insert("normalize", scalar(meta.normalize ? 1 : 0));
    d.insert("nlist", scalar(meta.nlist));
    d.insert("partitions", scalar(meta.partitions));
    d.insert("bloom_words", scalar(meta.bloom.words));
    d.insert("bloom_hashes", scalar(meta.bloom.hashes));
    d.insert("bloom_seed", scalar(int64_t(meta.bloom.seed)));
    d.insert("list_slack_ppm", scalar(int64_t(list_slack * 1e6 + 0.5)));
    return d;
  });
}

IndexDict apply_updates_op(const IndexDict& index, const Tensor& upsert_ids,
                           const Tensor& upsert_embeddings, const Tensor& upsert_feature_offsets,
                           const Tensor& upsert_feature_ids, const Tensor& upsert_feature_values,
                           const Tensor& delete_ids) {
  const char* op = "argent::apply_updates";
  const at::Device cpu(at::kCPU);
  IndexMeta meta;
  meta.dim = int32_t(scalar_of(index, "dim"));
  meta.d_pad = int32_t(scalar_of(index, "d_pad"));
  meta.normalize = scalar_of(index, "normalize") != 0;
  meta.nlist = scalar_of(index, "nlist");
  meta.partitions = int32_t(scalar_of(index, "partitions"));
  meta.bloom = bloom_params(op, scalar_of(index, "bloom_words"), scalar_of(index, "bloom_hashes"),
                            scalar_of(index, "bloom_seed"));
  const double slack = double(scalar_of(index, "list_slack_ppm")) * 1e-6;
  const Tensor centroids = entry(index, "centroids");
  check_tensor(op, "index['centroids']", centroids, at::kFloat, {meta.nlist, meta.dim}, cpu);
  meta.centroids.assign(centroids.data_ptr<float>(),
                        centroids.data_ptr<float>() + centroids.numel());

  const int64_t m = upsert_ids.numel();
  check_tensor(op, "upsert_ids", upsert_ids, at::kLong, {m}, cpu);
  check_tensor(op, "upsert_embeddings", upsert_embeddings, at::kFloat, {m, meta.dim}, cpu);
  check_tensor(op, "upsert_feature_offsets", upsert_feature_offsets, at::kLong, {m + 1}, cpu);
  const int64_t nf = upsert_feature_ids.numel();
  check_tensor(op, "upsert_feature_ids", upsert_feature_ids, at::kInt, {nf}, cpu);
  check_tensor(op, "upsert_feature_values", upsert_feature_values, at::kLong, {nf}, cpu);
  check_tensor(op, "delete_ids", delete_ids, at::kLong, {delete_ids.numel()}, cpu);

  return translate(op, [&] {
    ShardTensors t;
    for (const ShardTensorField& f : kShardTensorFields) t.*f.member = entry(index, f.name);
    std::vector<int32_t> all(size_t(meta.partitions));
    std::iota(all.begin(), all.end(), 0);
    ShardIndex shard = ShardIndex::from_tensors(meta, std::move(t), all, slack);

    ItemSet items;
    items.dim = meta.dim;
    const int64_t* ids = upsert_ids.data_ptr<int64_t>();
    const int64_t* fo = upsert_feature_offsets.data_ptr<int64_t>();
    items.ids.assign(ids, ids + m);
    items.embeddings.assign(upsert_embeddings.data_ptr<float>(),
                            upsert_embeddings.data_ptr<float>() + m * meta.dim);
    for (int64_t i = 0; i < m; ++i) {
      ARGENT_CHECK(fo[i] >= 0 && fo[i] <= fo[i + 1] && fo[i + 1] <= nf, "upsert item ", i,
                   ": upsert_feature_offsets [", fo[i], ", ", fo[i + 1],
                   ") is not a range of the ", nf, " features");
      std::vector<std::pair<int32_t, int64_t>> pairs;
      for (int64_t j = fo[i]; j < fo[i + 1]; ++j)
        pairs.emplace_back(upsert_feature_ids.data_ptr<int32_t>()[j],
                           upsert_feature_values.data_ptr<int64_t>()[j]);
      items.push_features(std::move(pairs));
    }
    if (m > 0) {
      // The service's path: LocalEngine::upsert and the serving updater prepare and apply
      // exactly so (shard/mutation.h, shard/shard_update.cc).
      const QuantizedCentroids c = quantize_centroids(meta.centroids.data(), meta.nlist, meta.dim);
      for (const PreparedItem& item : prepare_upserts(items, meta, c)) shard.upsert(item);
    }
    const int64_t* del = delete_ids.data_ptr<int64_t>();
    for (int64_t i = 0; i < delete_ids.numel(); ++i) shard.remove(del[i]);

    IndexDict out = index.copy();
    for (const ShardTensorField& f : kShardTensorFields)
      out.insert_or_assign(f.name, shard.tensors().*f.member);
    return out;
  });
}

Tensor gather_embeddings_op(const Tensor& codes, const Tensor& scales, const Tensor& rows,
                            int64_t dim) {
  const char* op = "argent::gather_embeddings";
  TORCH_CHECK(rows.dim() == 2, op, ": rows must be int64 [n, k], got ", rows.sizes());
  TORCH_CHECK(scales.dim() == 1 && scales.size(0) % kBlockRows == 0 && scales.size(0) > 0, op,
              ": scales must be float32 [rows], rows a positive multiple of 16");
  const int64_t n_rows = scales.size(0);
  TORCH_CHECK(codes.dim() == 1 && codes.size(0) % n_rows == 0, op,
              ": codes must be int8 [rows * d_pad]");
  const int64_t d_pad = codes.size(0) / n_rows;
  TORCH_CHECK(dim >= 1 && d_pad == padded_dim(int(dim)), op, ": dim ", dim,
              " does not match the codes' d_pad ", d_pad);
  const at::Device device = codes.device();
  check_tensor(op, "codes", codes, at::kChar, {n_rows * d_pad}, device);
  check_tensor(op, "scales", scales, at::kFloat, {n_rows}, device);
  check_tensor(op, "rows", rows, at::kLong, {rows.size(0), rows.size(1)}, device);
  TORCH_CHECK(rows.numel() == 0 || (rows.min().item<int64_t>() >= -1 &&
                                    rows.max().item<int64_t>() < n_rows),
              op, ": rows holds a value outside [-1, ", n_rows, ")");
  // kernels/layout.h code_offset, evaluated for every (row, dim) at once.
  const Tensor r = rows.clamp_min(0).unsqueeze(-1);
  const Tensor j = at::arange(dim, rows.options()).view({1, 1, dim});
  const Tensor offset = at::div(r, kBlockRows, "floor") * (kBlockRows * d_pad) +
                        at::div(j, kGroupDims, "floor") * kGroupBytes +
                        at::remainder(r, kBlockRows) * kGroupDims + at::remainder(j, kGroupDims);
  const Tensor values = codes.take(offset).to(at::kFloat);
  // The score arithmetic multiplies code by scale in float32, as dequantize_rows does.
  const Tensor out = values * scales.take(r);
  return out.masked_fill(rows.lt(0).unsqueeze(-1), 0.0f);
}

std::tuple<Tensor, Tensor> rerank_op(const Tensor& users, const Tensor& items,
                                     const Tensor& task_weights, const Tensor& retrieval,
                                     double retrieval_weight, at::TensorList weights,
                                     at::TensorList biases, const Tensor& head_weight,
                                     const Tensor& head_bias, const std::string& activation) {
  const char* op = "argent::rerank";
  TORCH_CHECK(users.dim() == 2, op, ": users must be float32 [m, dim], got ", users.sizes());
  TORCH_CHECK(head_weight.dim() == 2, op, ": head_weight must be float32 [T, hidden]");
  const at::Device device = users.device();
  const int64_t m = users.size(0), dim = users.size(1), tasks = head_weight.size(0);
  check_tensor(op, "users", users, at::kFloat, {m, dim}, device);
  check_tensor(op, "items", items, at::kFloat, {m, dim}, device);
  check_tensor(op, "task_weights", task_weights, at::kFloat, {m, tasks}, device);
  check_tensor(op, "retrieval", retrieval, at::kFloat, {m}, device);
  TORCH_CHECK(!weights.empty() && weights.size() == biases.size(), op, ": ", weights.size(),
              " weight and ", biases.size(), " bias tensors; give one of each per hidden layer");
  RerankModel model;
  model.dim = dim;
  model.activation = activation;
  int64_t width = 3 * dim;
  for (size_t l = 0; l < weights.size(); ++l) {
    const std::string wn = "weights[" + std::to_string(l) + "]";
    const std::string bn = "biases[" + std::to_string(l) + "]";
    TORCH_CHECK(weights[l].dim() == 2, op, ": ", wn, " must be float32 [hidden, ", width, "]");
    const int64_t h = weights[l].size(0);
    check_tensor(op, wn.c_str(), weights[l], at::kFloat, {h, width}, device);
    check_tensor(op, bn.c_str(), biases[l], at::kFloat, {h}, device);
    model.weights.push_back(weights[l]);
    model.biases.push_back(biases[l]);
    width = h;
  }
  check_tensor(op, "head_weight", head_weight, at::kFloat, {tasks, width}, device);
  check_tensor(op, "head_bias", head_bias, at::kFloat, {tasks}, device);
  model.head_weight = head_weight;
  model.head_bias = head_bias;
  for (int64_t t = 0; t < tasks; ++t) model.tasks.push_back("task" + std::to_string(t));
  c10::InferenceMode no_autograd;
  return translate(op, [&] {
    const Reranker reranker(std::move(model), device, /*chunk_rows=*/std::max<int64_t>(1, m));
    auto [scores, values] =
        reranker.score_rows(users, items, task_weights, retrieval, float(retrieval_weight));
    return std::make_tuple(scores, values);
  });
}

}  // namespace argent::ops
