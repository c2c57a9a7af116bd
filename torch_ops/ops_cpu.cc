// torch.ops.argent: the operator schemas (TORCH_LIBRARY) and their CPU kernels. Each kernel
// checks its tensors (op_args.h) and calls the function the service runs for the same step:
// quantize_rows, bloom_signatures, probe_lists, fused_scan, eval_plan_exact, merge_topk and the
// Reranker. docs/torch.md documents every schema with shapes and dtypes.
#include <torch/library.h>

#include <c10/util/Exception.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/bloom.h"
#include "kernels/cpu/fused_scan.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/topk.h"
#include "kernels/layout.h"
#include "shard/prober.h"
#include "torch_ops/op_args.h"
#include "torch_ops/ops.h"

namespace argent::ops {
namespace {

using at::Tensor;

const at::Device kCpu(at::kCPU);

std::tuple<Tensor, Tensor, Tensor> quantize_cpu(const Tensor& x, int64_t d_pad, bool normalize) {
  const char* op = "argent::quantize";
  TORCH_CHECK(x.dim() == 2, op, ": x must be float32 [n, dim], got ", x.sizes());
  check_tensor(op, "x", x, at::kFloat, {kAny, kAny}, kCpu);
  const int64_t n = x.size(0), dim = x.size(1);
  TORCH_CHECK(dim >= 1 && dim <= kMaxDim && d_pad == padded_dim(int(dim)), op, ": d_pad ", d_pad,
              " must be dim ", dim, " rounded up to a multiple of 4 (", padded_dim(int(dim)),
              "), dim in [1, ", kMaxDim, "]");
  TORCH_CHECK(x.isfinite().all().item<bool>(), op, ": x holds a NaN or infinite value");
  Tensor codes = at::empty({n, d_pad}, at::kChar), scales = at::empty({n}, at::kFloat),
         bias = at::empty({n}, at::kInt);
  quantize_rows(x.data_ptr<float>(), n, int(dim), int(d_pad), normalize, codes.data_ptr<int8_t>(),
                scales.data_ptr<float>(), bias.data_ptr<int32_t>());
  return {codes, scales, bias};
}

Tensor bloom_signatures_cpu(const Tensor& feature_offset, const Tensor& feature_count,
                            const Tensor& feature_ids, const Tensor& feature_values,
                            int64_t bloom_words, int64_t bloom_hashes, int64_t bloom_seed) {
  const char* op = "argent::bloom_signatures";
  const BloomParams p = bloom_params(op, bloom_words, bloom_hashes, bloom_seed);
  const FeatureStoreView f =
      check_features(op, kCpu, feature_offset, feature_count, feature_ids, feature_values);
  check_feature_ranges(op, feature_offset, feature_count, feature_ids.size(0));
  const int64_t rows = feature_offset.size(0);
  Tensor sigs = at::empty({rows, bloom_words}, at::kLong);
  bloom_signatures(p, f, rows, data_as<uint64_t>(sigs));
  return sigs;
}

Tensor probe_cpu(const Tensor& query_codes, const Tensor& query_scales, const Tensor& query_bias,
                 const Tensor& plan_ops, const Tensor& plan_spans, const Tensor& centroid_codes,
                 const Tensor& centroid_scales, const Tensor& list_sizes,
                 const Tensor& list_summaries, int64_t nprobe) {
  const char* op = "argent::probe";
  const QueryArgs q = check_queries(op, query_codes, query_scales, query_bias);
  const Centroids c = check_centroids(op, q.d_pad, kCpu, centroid_codes, centroid_scales,
                                      list_sizes, list_summaries, nprobe);
  const PlanBatch plans = check_plans(op, plan_ops, plan_spans, q.n, c.bloom_words);
  Tensor lists = at::empty({q.n, nprobe}, at::kInt);
  probe_lists(scan_queries(query_codes, query_scales, query_bias, q, plans), q.d_pad,
              data_as<int8_t>(centroid_codes), data_as<float>(centroid_scales), c.n_lists,
              c.rows, data_as<int64_t>(list_sizes), data_as<uint64_t>(list_summaries),
              c.bloom_words, int(nprobe), data_as<int32_t>(lists));
  return lists;
}

std::tuple<Tensor, Tensor, Tensor> search_cpu(
    const Tensor& query_codes, const Tensor& query_scales, const Tensor& query_bias,
    const Tensor& plan_ops, const Tensor& plan_spans, const c10::optional<Tensor>& probes,
    int64_t k, const Tensor& codes, const Tensor& scales, const Tensor& item_ids,
    const Tensor& signatures, const Tensor& list_offsets, const Tensor& list_sizes,
    const Tensor& list_summaries, const Tensor& feature_offset, const Tensor& feature_count,
    const Tensor& feature_ids, const Tensor& feature_values) {
  const char* op = "argent::search";
  check_k(op, k);
  const QueryArgs q = check_queries(op, query_codes, query_scales, query_bias);
  const IndexArgs ix = check_index(op, q.d_pad, kCpu, codes, scales, item_ids, signatures,
                                   list_offsets, list_sizes, list_summaries, feature_offset,
                                   feature_count, feature_ids, feature_values);
  check_list_tables(op, ix, list_offsets, list_sizes);
  const PlanBatch plans = check_plans(op, plan_ops, plan_spans, q.n, ix.view.bloom_words);
  ScanProbesView pv;
  if (probes.has_value()) {
    check_probes(op, *probes, q.n, ix.view.n_lists, kCpu);
    pv.lists = data_as<int32_t>(*probes);
    pv.nprobe = int(probes->size(1));
  }
  Tensor out_scores = at::empty({q.n, k}, at::kFloat), out_ids = at::empty({q.n, k}, at::kLong),
         out_rows = at::empty({q.n, k}, at::kLong);
  fused_scan(ix.view, scan_queries(query_codes, query_scales, query_bias, q, plans), pv, k,
             out_scores.data_ptr<float>(), out_ids.data_ptr<int64_t>(),
             out_rows.data_ptr<int64_t>(), nullptr);
  return {out_scores, out_ids, out_rows};
}

Tensor verify_filter_cpu(const Tensor& rows, const Tensor& plan_ops, const Tensor& plan_spans,
                         const Tensor& feature_offset, const Tensor& feature_count,
                         const Tensor& feature_ids, const Tensor& feature_values) {
  const char* op = "argent::verify_filter";
  TORCH_CHECK(rows.dim() == 2, op, ": rows must be int64 [n, k], got ", rows.sizes());
  check_tensor(op, "rows", rows, at::kLong, {kAny, kAny}, kCpu);
  const FeatureStoreView f =
      check_features(op, kCpu, feature_offset, feature_count, feature_ids, feature_values);
  check_feature_ranges(op, feature_offset, feature_count, feature_ids.size(0));
  const int64_t n = rows.size(0), k = rows.size(1), n_rows = feature_offset.size(0);
  const PlanBatch plans = check_plans(op, plan_ops, plan_spans, n, kMaxBloomWordsForChecks);
  Tensor out = at::empty({n, k}, at::kBool);
  const int64_t* r = rows.data_ptr<int64_t>();
  bool* o = out.data_ptr<bool>();
  for (int64_t i = 0; i < n * k; ++i)
    TORCH_CHECK(r[i] >= -1 && r[i] < n_rows, op, ": rows[", i / k, ", ", i % k, "] = ", r[i],
                " is not a row in [0, ", n_rows, ") or -1");
  for (int64_t q = 0; q < n; ++q) {
    const int32_t p = plans.plan_of_query[size_t(q)];
    const FilterPlanView plan = p >= 0 ? plans.views[size_t(p)] : FilterPlanView{};
    for (int64_t j = 0; j < k; ++j) {
      const int64_t row = r[q * k + j];
      o[q * k + j] = row >= 0 && eval_plan_exact(plan, f, row);
    }
  }
  return out;
}

std::tuple<Tensor, Tensor, Tensor> merge_topk_cpu(at::TensorList scores, at::TensorList ids,
                                                  int64_t k) {
  const char* op = "argent::merge_topk";
  const MergeArgs m = check_merge(op, scores, ids, k, kCpu);
  std::vector<const float*> s;
  std::vector<const int64_t*> d;
  for (size_t i = 0; i < scores.size(); ++i) {
    s.push_back(scores[i].data_ptr<float>());
    d.push_back(ids[i].data_ptr<int64_t>());
  }
  Tensor out_scores = at::empty({m.n, k}, at::kFloat), out_ids = at::empty({m.n, k}, at::kLong),
         origin = at::empty({m.n, k}, at::kLong);
  merge_topk(int(scores.size()), s.data(), d.data(), m.n, m.k_in, k, out_scores.data_ptr<float>(),
             out_ids.data_ptr<int64_t>(), origin.data_ptr<int64_t>());
  return {out_scores, out_ids, origin};
}

}  // namespace

TORCH_LIBRARY(argent, m) {
  m.def("quantize(Tensor x, int d_pad, bool normalize) -> (Tensor codes, Tensor scales, "
        "Tensor bias)");
  m.def("bloom_signatures(Tensor feature_offset, Tensor feature_count, Tensor feature_ids, "
        "Tensor feature_values, int bloom_words, int bloom_hashes, int bloom_seed) -> Tensor");
  m.def("compile_filter(str expression, int bloom_words, int bloom_hashes, int bloom_seed) -> "
        "Tensor",
        &compile_filter_op);
  m.def("probe(Tensor query_codes, Tensor query_scales, Tensor query_bias, Tensor plan_ops, "
        "Tensor plan_spans, Tensor centroid_codes, Tensor centroid_scales, Tensor list_sizes, "
        "Tensor list_summaries, int nprobe) -> Tensor");
  m.def("search(Tensor query_codes, Tensor query_scales, Tensor query_bias, Tensor plan_ops, "
        "Tensor plan_spans, Tensor? probes, int k, Tensor codes, Tensor scales, Tensor item_ids, "
        "Tensor signatures, Tensor list_offsets, Tensor list_sizes, Tensor list_summaries, "
        "Tensor feature_offset, Tensor feature_count, Tensor feature_ids, Tensor feature_values) "
        "-> (Tensor scores, Tensor ids, Tensor rows)");
  m.def("verify_filter(Tensor rows, Tensor plan_ops, Tensor plan_spans, Tensor feature_offset, "
        "Tensor feature_count, Tensor feature_ids, Tensor feature_values) -> Tensor");
  m.def("merge_topk(Tensor[] scores, Tensor[] ids, int k) -> (Tensor scores, Tensor ids, "
        "Tensor origin)");
  m.def("gather_embeddings(Tensor codes, Tensor scales, Tensor rows, int dim) -> Tensor");
  m.def("rerank(Tensor users, Tensor items, Tensor task_weights, Tensor retrieval, "
        "float retrieval_weight, Tensor[] weights, Tensor[] biases, Tensor head_weight, "
        "Tensor head_bias, str activation) -> (Tensor task_scores, Tensor values)");
  m.def("load_index(str path, float list_slack) -> Dict(str, Tensor)", &load_index_op);
  m.def("apply_updates(Dict(str, Tensor) index, Tensor upsert_ids, Tensor upsert_embeddings, "
        "Tensor upsert_feature_offsets, Tensor upsert_feature_ids, Tensor upsert_feature_values, "
        "Tensor delete_ids) -> Dict(str, Tensor)",
        &apply_updates_op);
}

TORCH_LIBRARY_IMPL(argent, CPU, m) {
  m.impl("quantize", &quantize_cpu);
  m.impl("bloom_signatures", &bloom_signatures_cpu);
  m.impl("probe", &probe_cpu);
  m.impl("search", &search_cpu);
  m.impl("verify_filter", &verify_filter_cpu);
  m.impl("merge_topk", &merge_topk_cpu);
  m.impl("gather_embeddings", &gather_embeddings_op);
  m.impl("rerank", &rerank_op);
}

}  // namespace argent::ops
