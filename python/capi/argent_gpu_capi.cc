// libargent_gpu: a C ABI over the CUDA search for Python (ctypes) and other hosts that already
// hold the index as device tensors (e.g. PyTorch). bench/gpu_bench.py drives it on the very
// tensors it hands to SilverTorch's ops, so both systems search the same bytes.
//
// Every pointer argument named d_* is a device pointer; h_* are host pointers. Functions return
// 0 on success, or -1 with a message in `err` (the message names the argument and the problem).
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/cuda_check.h"
#include "kernels/cuda/batch_upload.h"
#include "kernels/cuda/device_array.h"
#include "kernels/cuda/filter_cache.h"
#include "kernels/cuda/gpu_build.h"
#include "kernels/cuda/gpu_search.h"
#include "shard/filter.h"

namespace argent {
namespace {

struct Handle {
  BloomParams bloom;
  std::unique_ptr<GpuIndexTables> tables;
  GpuSearchWorkspace workspace;
  PackedUpload plans;  // the batch's filter plans, one copy
  GpuFilterCache filter_cache{0};  // off until argent_gpu_index_set_filter_cache
};

int fail(char* err, int err_len, const std::exception& e) {
  if (err && err_len > 0) {
    std::strncpy(err, e.what(), size_t(err_len) - 1);
    err[err_len - 1] = '\0';
  }
  return -1;
}

}  // namespace
}  // namespace argent

using argent::Handle;

extern "C" {

// Bloom signatures [n_rows, words] and list summaries [n_lists, words] from a feature store.
int argent_gpu_build_bloom(int32_t words, int32_t hashes, uint64_t seed, const int64_t* d_offset,
                           const int32_t* d_count, const int32_t* d_feature_ids,
                           const int64_t* d_values, int64_t n_rows, const int64_t* d_list_offsets,
                           const int64_t* d_list_sizes, int64_t n_lists, uint64_t* d_sigs,
                           uint64_t* d_summaries, void* stream, char* err, int err_len) {
  try {
    argent::BloomParams p;
    p.words = words;
    p.hashes = hashes;
    p.seed = seed;
    const argent::FeatureStoreView f{d_offset, d_count, d_feature_ids, d_values};
    auto s = static_cast<cudaStream_t>(stream);
    argent::run_gpu_bloom_signatures(p, f, n_rows, d_sigs, s);
    argent::run_gpu_list_summaries(d_sigs, words, d_list_offsets, d_list_sizes, n_lists,
                                   d_summaries, s);
    ARGENT_CUDA_CHECK(cudaStreamSynchronize(s));
    return 0;
  } catch (const std::exception& e) {
    return argent::fail(err, err_len, e);
  }
}

// An index over device tensors in Argent's layout (docs/formats.md): codes blocked, or
// row-major [n_rows, 128] with codes_rows != 0 (GpuIndexView::rows_layout; d_pad 128 only), lists
// at multiples of 16 rows. The tensors must outlive the handle. Returns null on error.
void* argent_gpu_index_create(const int8_t* d_codes, const float* d_scales, const int64_t* d_ids,
                              const uint64_t* d_sigs, int32_t bloom_words, int32_t bloom_hashes,
                              uint64_t bloom_seed, int32_t d_pad, int64_t n_rows,
                              const int64_t* d_list_offsets, const int64_t* d_list_sizes,
                              const uint64_t* d_list_summaries, int64_t n_lists,
                              const int64_t* h_list_offsets, const int64_t* h_list_sizes,
                              const int64_t* d_f_offset, const int32_t* d_f_count,
                              const int32_t* d_f_ids, const int64_t* d_f_values,
                              const int8_t* d_centroid_codes, const float* d_centroid_scales,
                              int32_t codes_rows, void* stream, char* err, int err_len) {
  try {
    auto h = std::make_unique<Handle>();
    h->bloom.words = bloom_words;
    h->bloom.hashes = bloom_hashes;
    h->bloom.seed = bloom_seed;
    argent::ScanIndexView v;
    v.codes = d_codes;
    v.scales = d_scales;
    v.ids = d_ids;
    v.signatures = d_sigs;
    v.bloom_words = bloom_words;
    v.d_pad = d_pad;
    v.n_rows = n_rows;
    v.list_offsets = d_list_offsets;
    v.list_sizes = d_list_sizes;
    v.list_summaries = d_list_summaries;
    v.n_lists = n_lists;
    v.features = argent::FeatureStoreView{d_f_offset, d_f_count, d_f_ids, d_f_values};
    h->tables = std::make_unique<argent::GpuIndexTables>(
        v, h_list_offsets, h_list_sizes, d_centroid_codes, d_centroid_scales,
        static_cast<cudaStream_t>(stream), codes_rows != 0);
    return h.release();
  } catch (const std::exception& e) {
    argent::fail(err, err_len, e);
    return nullptr;
  }
}

void argent_gpu_index_destroy(void* handle) { delete static_cast<Handle*>(handle); }

// Searches n quantized queries (d_q_codes [n, d_pad], d_q_scales [n]); filters: null, or n C
// strings ("" for none). Writes d_scores/d_ids [n, k]. stats_out (host, may be null) receives
// {candidates, re-run queries, workspace bytes, sample stride, re-sorted queries}.
int argent_gpu_search(void* handle, const int8_t* d_q_codes, const float* d_q_scales, int64_t n,
                      const char* const* h_filters, int64_t k, int32_t exact, int32_t nprobe,
                      float* d_scores, int64_t* d_ids, int64_t* stats_out, void* stream,
                      char* err, int err_len) {
  try {
    auto* h = static_cast<Handle*>(handle);
    auto s = static_cast<cudaStream_t>(stream);
    argent::GpuQueriesView q;
    q.codes = d_q_codes;
    q.scales = d_q_scales;
    q.n = n;
    std::vector<argent::FilterOp> ops;  // the batch's plans, on the host
    std::vector<int32_t> begin, len;
    argent::UnsentPlans unsent;
    if (h_filters) {
      // Identical expressions compile once and share a plan, as on the CPU path.
      std::map<std::string, int32_t> plan_of_text;
      std::vector<int32_t> plan_of_query(static_cast<size_t>(n), -1);
      for (int64_t i = 0; i < n; ++i) {
        const std::string text = h_filters[i] ? h_filters[i] : "";
        if (text.empty()) continue;
        auto it = plan_of_text.find(text);
        if (it == plan_of_text.end()) {
          argent::FilterExpr expr;
          if (!argent::parse_filter(text, &expr)) continue;
          const argent::FilterPlan plan = argent::compile_filter(expr, h->bloom);
          it = plan_of_text.emplace(text, int32_t(begin.size())).first;
          begin.push_back(int32_t(ops.size()));
          len.push_back(int32_t(plan.ops.size()));
          ops.insert(ops.end(), plan.ops.begin(), plan.ops.end());
        }
        plan_of_query[size_t(i)] = it->second;
      }
      // Copied by run_gpu_search, or carried by a one-query batch's probe launch.
      if (!begin.empty())
        unsent = argent::place_filter_plans(h->plans, ops, begin, len, plan_of_query, &q);
    }
    argent::GpuSearchOptions o;
    o.k = k;
    o.exact = exact != 0;
    o.nprobe = nprobe;
    if (q.n_plans > 0) {
      o.filter_cache = &h->filter_cache;
      o.host_plan_ops = ops.data();
      o.host_plan_begin = begin.data();
      o.host_plan_len = len.data();
      o.unsent_plans = &unsent;
    }
    argent::GpuSearchStats st;
    argent::run_gpu_search(h->tables->view(), q, o, d_scores, d_ids, nullptr, h->workspace,
                           stats_out ? &st : nullptr, s);
    if (stats_out) {
      stats_out[0] = st.candidates;
      stats_out[1] = st.rescued_queries;
      stats_out[2] = int64_t(st.workspace_bytes);
      stats_out[3] = st.sample_stride;
      stats_out[4] = st.resorted_queries;
    }
    return 0;
  } catch (const std::exception& e) {
    return argent::fail(err, err_len, e);
  }
}

// The filter cache of recurring filters (kernels/cuda/filter_cache.h): up to max_bytes of exact
// eligibility words on the GPU (a filter takes n_rows / 4 bytes); 0 turns it off (the default).
// The index's tensors must not change while it is on (or call this again with 0 to forget).
int argent_gpu_index_set_filter_cache(void* handle, int64_t max_bytes, char* err, int err_len) {
  try {
    ARGENT_CHECK(max_bytes >= 0, "filter cache size ", max_bytes, " is negative");
    auto* h = static_cast<Handle*>(handle);
    h->filter_cache.clear();
    h->filter_cache.set_capacity(size_t(max_bytes));
    return 0;
  } catch (const std::exception& e) {
    return argent::fail(err, err_len, e);
  }
}

// out (host) receives {batches served from the cache, filters computed, evictions, device bytes}.
void argent_gpu_filter_cache_stats(void* handle, int64_t* out) {
  const auto& c = static_cast<Handle*>(handle)->filter_cache;
  out[0] = c.stats().hits;
  out[1] = c.stats().builds;
  out[2] = c.stats().evictions;
  out[3] = int64_t(c.device_bytes());
}

}  // extern "C"
