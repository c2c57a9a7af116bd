// torch.ops.argent's CUDA kernels: the same checks as the CPU registration (op_args.h), then the
// service's CUDA launchers (kernels/cuda/gpu_search.h, gpu_build.h) on the tensors' device
// memory. Steps the service itself runs on the host (query quantization and the top-K merge,
// which the coordinator does on the CPU) run the same host kernels here, with the copies the
// service makes. Built with the CUDA backend only; against a CPU-only LibTorch (Debian's) it
// compiles and registers, and is never reached, as no CUDA tensor can exist there.
#include <torch/library.h>

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#if defined(ARGENT_TORCH_CUDA)
#include <c10/cuda/CUDAStream.h>
#endif

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "common/cuda_check.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/topk.h"
#include "kernels/cuda/batch_upload.h"
#include "kernels/cuda/gpu_build.h"
#include "kernels/cuda/device_array.h"
#include "kernels/cuda/gpu_search.h"
#include "kernels/layout.h"
#include "torch_ops/op_args.h"
#include "torch_ops/ops.h"
#include "torch_ops/verify_filter.h"

namespace argent::ops {
namespace {

using at::Tensor;

// The stream PyTorch is using on the tensors' device, so the ops order with the surrounding
// graph; the legacy default stream against a LibTorch without CUDA support compiled in.
cudaStream_t current_stream(const at::Device& device) {
  ARGENT_CUDA_CHECK(cudaSetDevice(device.index() < 0 ? 0 : device.index()));
#if defined(ARGENT_TORCH_CUDA)
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
#else
  return cudaStreamLegacy;
#endif
}

// The dispatcher picks the CUDA kernel when any tensor argument is on a CUDA device; the checks
// then hold every tensor to the device of the call's first tensor, which must be that one.
void check_on_cuda(const char* op, const char* name, const Tensor& t) {
  TORCH_CHECK(t.defined() && t.is_cuda(), op, ": ", name,
              " is on the CPU while another argument is on a CUDA device; give all tensors of a "
              "call on one device");
}

// Translates the kernels' argent::Error into a c10::Error naming the op.
template <typename F>
auto guarded(const char* op, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    TORCH_CHECK(false, op, ": ", e.what());
  }
}

// Uploads the plans of a batch (one plan per filtered query) into the op's device cache in one
// transfer, without a host synchronisation, and points v's plan fields at the copies.
void upload_plans(const PlanBatch& p, PackedUpload& u, cudaStream_t stream, GpuQueriesView* v) {
  send_filter_plans(u, p.ops, p.begin, p.length, p.plan_of_query, stream, v);
}

GpuQueriesView gpu_queries(const Tensor& codes, const Tensor& scales, int64_t n,
                           const PlanBatch& p, PackedUpload& d, cudaStream_t stream) {
  GpuQueriesView v;
  v.codes = data_as<int8_t>(codes);
  v.scales = data_as<float>(scales);
  v.n = n;
  if (p.any()) upload_plans(p, d, stream, &v);
  return v;
}

// GpuIndexTables, a workspace and plan buffers per device. The tables are rebuilt when an index
// tensor changes (TensorStamp: another tensor, or an in-place write such as apply_updates);
// building them costs a pass over the scales and a host copy of the list tables, searching with
// the cache costs what GpuShard::search costs. Every use holds cache_mutex.
struct DeviceCache {
  std::vector<TensorStamp> index_stamps;
  std::unique_ptr<GpuIndexTables> tables;
  GpuSearchWorkspace workspace;
  PackedUpload plans;
};
std::mutex cache_mutex;
std::map<int, std::unique_ptr<DeviceCache>> caches;

bool stamps_match(const std::vector<TensorStamp>& stamps,
                  const std::vector<const Tensor*>& tensors) {
  if (stamps.size() != tensors.size()) return false;
  for (size_t i = 0; i < stamps.size(); ++i)
    if (!stamps[i].matches(*tensors[i])) return false;
  return true;
}

DeviceCache& cache_for(const at::Device& device) {
  std::unique_ptr<DeviceCache>& c = caches[device.index()];
  if (!c) c = std::make_unique<DeviceCache>();
  return *c;
}

std::tuple<Tensor, Tensor, Tensor> quantize_cuda(const Tensor& x, int64_t d_pad, bool normalize) {
  // The service quantizes queries on the host (shard/query_batch.cc); so does this op.
  const Tensor h = x.to(at::kCPU);
  auto [codes, scales, bias] = c10::Dispatcher::singleton()
                                   .findSchemaOrThrow("argent::quantize", "")
                                   .typed<std::tuple<Tensor, Tensor, Tensor>(const Tensor&,
                                                                            int64_t, bool)>()
                                   .call(h, d_pad, normalize);
  return {codes.to(x.device()), scales.to(x.device()), bias.to(x.device())};
}

Tensor bloom_signatures_cuda(const Tensor& feature_offset, const Tensor& feature_count,
                             const Tensor& feature_ids, const Tensor& feature_values,
                             int64_t bloom_words, int64_t bloom_hashes, int64_t bloom_seed) {
  const char* op = "argent::bloom_signatures";
  check_on_cuda(op, "feature_offset", feature_offset);
  const at::Device device = feature_offset.device();
  const BloomParams p = bloom_params(op, bloom_words, bloom_hashes, bloom_seed);
  const FeatureStoreView f =
      check_features(op, device, feature_offset, feature_count, feature_ids, feature_values);
  check_feature_ranges(op, feature_offset, feature_count, feature_ids.size(0));
  const int64_t rows = feature_offset.size(0);
  Tensor sigs = at::empty({rows, bloom_words}, feature_offset.options().dtype(at::kLong));
  guarded(op, [&] {
    run_gpu_bloom_signatures(p, f, rows, data_as<uint64_t>(sigs), current_stream(device));
    return 0;
  });
  return sigs;
}

Tensor probe_cuda(const Tensor& query_codes, const Tensor& query_scales, const Tensor& query_bias,
                  const Tensor& plan_ops, const Tensor& plan_spans, const Tensor& centroid_codes,
                  const Tensor& centroid_scales, const Tensor& list_sizes,
                  const Tensor& list_summaries, int64_t nprobe) {
  const char* op = "argent::probe";
  check_on_cuda(op, "query_codes", query_codes);
  const QueryArgs q = check_queries(op, query_codes, query_scales, query_bias);
  const at::Device device = query_codes.device();
  const Centroids c = check_centroids(op, q.d_pad, device, centroid_codes, centroid_scales,
                                      list_sizes, list_summaries, nprobe);
  const PlanBatch plans = check_plans(op, plan_ops, plan_spans, q.n, c.bloom_words);
  // The probe reads the list tables and the centroids only (kernels/cuda/probe_invert.cu).
  GpuIndexView index{};
  index.scan.list_sizes = data_as<int64_t>(list_sizes);
  index.scan.list_summaries = data_as<uint64_t>(list_summaries);
  index.scan.n_lists = c.n_lists;
  index.scan.bloom_words = c.bloom_words;
  index.scan.d_pad = q.d_pad;
  index.centroid_codes = data_as<int8_t>(centroid_codes);
  index.centroid_scales = data_as<float>(centroid_scales);
  Tensor lists = at::empty({q.n, nprobe}, query_codes.options().dtype(at::kInt));
  if (q.n == 0) return lists;
  guarded(op, [&] {
    std::lock_guard<std::mutex> lock(cache_mutex);
    const cudaStream_t stream = current_stream(device);
    DeviceCache& cache = cache_for(device);
    run_gpu_probe(index, gpu_queries(query_codes, query_scales, q.n, plans, cache.plans, stream),
                  int(nprobe), data_as<int32_t>(lists), cache.workspace, stream);
    return 0;
  });
  return lists;
}

std::tuple<Tensor, Tensor, Tensor> search_cuda(
    const Tensor& query_codes, const Tensor& query_scales, const Tensor& query_bias,
    const Tensor& plan_ops, const Tensor& plan_spans, const c10::optional<Tensor>& probes,
    int64_t k, const Tensor& codes, const Tensor& scales, const Tensor& item_ids,
    const Tensor& signatures, const Tensor& list_offsets, const Tensor& list_sizes,
    const Tensor& list_summaries, const Tensor& feature_offset, const Tensor& feature_count,
    const Tensor& feature_ids, const Tensor& feature_values) {
  const char* op = "argent::search";
  check_on_cuda(op, "query_codes", query_codes);
  check_k(op, k);
  const QueryArgs q = check_queries(op, query_codes, query_scales, query_bias);
  const at::Device device = query_codes.device();
  const IndexArgs ix = check_index(op, q.d_pad, device, codes, scales, item_ids, signatures,
                                   list_offsets, list_sizes, list_summaries, feature_offset,
                                   feature_count, feature_ids, feature_values);
  const PlanBatch plans = check_plans(op, plan_ops, plan_spans, q.n, ix.view.bloom_words);
  GpuSearchOptions o;
  o.k = k;
  o.exact = !probes.has_value();
  if (probes.has_value()) {
    // Shapes here; the entries are checked on the device (run_gpu_search refuses a list number
    // out of range or repeated in a row at its one synchronisation).
    check_probes_shape(op, *probes, q.n, device);
    o.probes = data_as<int32_t>(*probes);
    o.nprobe = int(probes->size(1));
  }
  const auto opts = query_codes.options();
  Tensor out_scores = at::empty({q.n, k}, opts.dtype(at::kFloat)),
         out_ids = at::empty({q.n, k}, opts.dtype(at::kLong)),
         out_rows = at::empty({q.n, k}, opts.dtype(at::kLong));
  if (q.n == 0 || k == 0) return {out_scores, out_ids, out_rows};
  guarded(op, [&] {
    std::lock_guard<std::mutex> lock(cache_mutex);
    const cudaStream_t stream = current_stream(device);
    DeviceCache& cache = cache_for(device);
    const std::vector<const Tensor*> index_tensors = {
        &codes,          &scales,         &item_ids,      &signatures,  &list_offsets,
        &list_sizes,     &list_summaries, &feature_offset, &feature_count, &feature_ids,
        &feature_values};
    if (!cache.tables || !stamps_match(cache.index_stamps, index_tensors)) {
      cache.tables.reset();
      cache.index_stamps.clear();
      const ListTables lists = check_list_tables(op, ix, list_offsets, list_sizes);
      cache.tables = std::make_unique<GpuIndexTables>(ix.view, lists.offsets.data(),
                                                      lists.sizes.data(), nullptr, nullptr,
                                                      stream);
      for (const Tensor* t : index_tensors) cache.index_stamps.emplace_back(*t);
    }
    run_gpu_search(cache.tables->view(),
                   gpu_queries(query_codes, query_scales, q.n, plans, cache.plans, stream), o,
                   data_as<float>(out_scores), data_as<int64_t>(out_ids),
                   data_as<int64_t>(out_rows), cache.workspace, nullptr, stream);
    return 0;
  });
  return {out_scores, out_ids, out_rows};
}

Tensor verify_filter_cuda(const Tensor& rows, const Tensor& plan_ops, const Tensor& plan_spans,
                          const Tensor& feature_offset, const Tensor& feature_count,
                          const Tensor& feature_ids, const Tensor& feature_values) {
  const char* op = "argent::verify_filter";
  check_on_cuda(op, "rows", rows);
  TORCH_CHECK(rows.dim() == 2, op, ": rows must be int64 [n, k], got ", rows.sizes());
  const at::Device device = rows.device();
  check_tensor(op, "rows", rows, at::kLong, {kAny, kAny}, device);
  const FeatureStoreView f =
      check_features(op, device, feature_offset, feature_count, feature_ids, feature_values);
  check_feature_ranges(op, feature_offset, feature_count, feature_ids.size(0));
  const int64_t n = rows.size(0), k = rows.size(1), n_rows = feature_offset.size(0);
  TORCH_CHECK(rows.numel() == 0 || (rows.min().item<int64_t>() >= -1 &&
                                    rows.max().item<int64_t>() < n_rows),
              op, ": rows holds a value outside [-1, ", n_rows, ")");
  PlanBatch plans = check_plans(op, plan_ops, plan_spans, n, kMaxBloomWordsForChecks);
  // The kernel indexes plans by query; a batch without filters gets one empty table.
  if (!plans.any()) plans.ops.resize(1);
  plans.begin.push_back(0);
  plans.length.push_back(0);
  Tensor out = at::empty({n, k}, rows.options().dtype(at::kBool));
  guarded(op, [&] {
    std::lock_guard<std::mutex> lock(cache_mutex);
    const cudaStream_t stream = current_stream(device);
    GpuQueriesView dp;
    upload_plans(plans, cache_for(device).plans, stream, &dp);
    run_verify_filter(dp.plan_ops, dp.plan_begin, dp.plan_len, dp.plan_of_query,
                      data_as<int64_t>(rows), n, k, f, data_as<bool>(out), stream);
    return 0;
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor> merge_topk_cuda(at::TensorList scores, at::TensorList ids,
                                                   int64_t k) {
  // The coordinator merges the ranks' lists on the host; so does this op, with merge_topk.
  const char* op = "argent::merge_topk";
  TORCH_CHECK(!scores.empty(), op, ": no sources");
  check_on_cuda(op, "scores[0]", scores[0]);
  const at::Device device = scores[0].device();
  const MergeArgs m = check_merge(op, scores, ids, k, device);
  std::vector<Tensor> hs, hi;
  std::vector<const float*> s;
  std::vector<const int64_t*> d;
  for (size_t i = 0; i < scores.size(); ++i) {
    hs.push_back(scores[i].to(at::kCPU));
    hi.push_back(ids[i].to(at::kCPU));
    s.push_back(hs.back().data_ptr<float>());
    d.push_back(hi.back().data_ptr<int64_t>());
  }
  Tensor out_scores = at::empty({m.n, k}, at::kFloat), out_ids = at::empty({m.n, k}, at::kLong),
         origin = at::empty({m.n, k}, at::kLong);
  merge_topk(int(scores.size()), s.data(), d.data(), m.n, m.k_in, k, out_scores.data_ptr<float>(),
             out_ids.data_ptr<int64_t>(), origin.data_ptr<int64_t>());
  return {out_scores.to(device), out_ids.to(device), origin.to(device)};
}

}  // namespace

TORCH_LIBRARY_IMPL(argent, CUDA, m) {
  m.impl("quantize", &quantize_cuda);
  m.impl("bloom_signatures", &bloom_signatures_cuda);
  m.impl("probe", &probe_cuda);
  m.impl("search", &search_cuda);
  m.impl("verify_filter", &verify_filter_cuda);
  m.impl("merge_topk", &merge_topk_cuda);
  m.impl("gather_embeddings", &gather_embeddings_op);
  m.impl("rerank", &rerank_op);
}

}  // namespace argent::ops
