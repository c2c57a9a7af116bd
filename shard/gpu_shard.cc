#include "shard/gpu_shard.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/config.h"
#include "common/cuda_check.h"
#include "kernels/cuda/batch_upload.h"
#include "kernels/cuda/device_array.h"
#include "kernels/cuda/filter_cache.h"
#include "kernels/layout.h"

namespace argent {
namespace {

// Every host-to-device copy goes on the search stream, in order before the kernels that read it.
// A plain cudaMemcpy would run on the legacy default stream, which the non-blocking search stream
// does not wait for, and from pageable memory it may return before its DMA has landed.
template <typename T>
const T* upload(DeviceArray& dst, const void* src, size_t count, cudaStream_t stream) {
  return upload_async<T>(dst, static_cast<const T*>(src), count, stream);
}

template <typename T>
const T* upload_tensor(DeviceArray& dst, const at::Tensor& t, cudaStream_t stream) {
  const at::Tensor c = t.contiguous();  // pageable: staged before the copy call returns
  return upload<T>(dst, c.data_ptr(), size_t(c.numel()), stream);
}

// The feature pool grows at its end between reallocations: its device copy gets room for a
// quarter more entries, so a stream of upserts re-copies the shard only once per ~25 % growth.
template <typename T>
const T* upload_pool(DeviceArray& dst, const at::Tensor& t, int64_t used, int64_t* capacity,
                     cudaStream_t stream) {
  *capacity = used + used / 4 + 1024;
  T* p = dst.reserve_as<T>(size_t(*capacity));
  if (used > 0)
    ARGENT_CUDA_CHECK(cudaMemcpyAsync(p, t.data_ptr(), size_t(used) * sizeof(T),
                                      cudaMemcpyHostToDevice, stream));
  return p;
}

// Copies elements [first, first + count) of host `src` over the same elements of `dst`.
template <typename T>
void copy_range(const T* dst, const at::Tensor& src, int64_t first, int64_t count,
                cudaStream_t stream) {
  if (count <= 0) return;
  ARGENT_CUDA_CHECK(cudaMemcpyAsync(const_cast<T*>(dst) + first,
                                    static_cast<const T*>(src.data_ptr()) + first,
                                    size_t(count) * sizeof(T), cudaMemcpyHostToDevice, stream));
}

}  // namespace

int cuda_device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

bool cuda_device_available() { return cuda_device_count() > 0; }

struct GpuShard::State {
  int device = 0;
  cudaStream_t stream = nullptr;
  DeviceArray codes, scales, ids, signatures, list_offsets, list_sizes, list_summaries;
  DeviceArray f_offset, f_count, f_ids, f_values, centroid_codes, centroid_scales;
  std::unique_ptr<GpuIndexTables> tables;
  GpuSearchWorkspace workspace;
  // What the device copy holds: the view over it, and where the shard was when it was made.
  ScanIndexView view;
  bool rows_layout = false;  // view.codes row-major (GpuIndexView::rows_layout)
  const int8_t* device_centroid_codes = nullptr;
  const float* device_centroid_scales = nullptr;
  uint64_t version = 0;
  int64_t pool_used = 0, pool_capacity = 0;
  // Exact words of recurring filters over this copy's rows; sync() refreshes the written blocks.
  GpuFilterCache filter_cache{size_t(SearchConfig{}.filter_cache_mb) << 20};
  DeviceArray written_blocks;
  // Per batch; the plans also on the host, for the filter cache's keys.
  PackedUpload batch_arrays;  // the queries' codes, scales and filter plans, one copy
  // A one-query batch's plans, when its probe's launch is to carry them (GpuSearchOptions::
  // unsent_plans): placed, not sent, so the batch makes one copy (its queries) ahead of the probe.
  PackedUpload one_query_plans;
  UnsentPlans unsent;
  DeviceArray lists, out_scores, out_ids, out_rows;
  std::vector<FilterOp> ops;
  std::vector<int32_t> begin, len;

  ~State() {
    if (stream) cudaStreamDestroy(stream);
  }

  // probe_may_carry: run_gpu_search is to probe on the GPU (IVF without the caller's lists); a
  // one-query batch's plans that its probe's launch can carry are then placed, not sent
  // (`unsent`).
  GpuQueriesView upload_queries(const QueryBatch& q, bool probe_may_carry) {
    ops.clear();
    begin.clear();
    len.clear();
    for (const FilterPlan& p : q.plans) {
      begin.push_back(int32_t(ops.size()));
      len.push_back(int32_t(p.ops.size()));
      ops.insert(ops.end(), p.ops.begin(), p.ops.end());
    }
    PackedUpload& u = batch_arrays;
    u.clear();
    const size_t codes = u.add(q.codes.data(), q.codes.size());
    const size_t scales = u.add(q.scales.data(), q.scales.size());
    unsent = UnsentPlans{};
    bool plans_apart = false;
    PlanOffsets plans;  // in one_query_plans when apart, else in u
    if (probe_may_carry && q.n == 1 && !begin.empty()) {
      one_query_plans.clear();
      plans = add_filter_plans(one_query_plans, ops, begin, len, q.plan_of_query);
      plans_apart = one_query_plans.size() <= kMaxCarriedPlanBytes;
    }
    if (!plans_apart) plans = add_filter_plans(u, ops, begin, len, q.plan_of_query);
    u.send(stream);
    GpuQueriesView v;
    v.n = q.n;
    v.codes = u.at<int8_t>(codes);
    v.scales = u.at<float>(scales);
    if (plans_apart)
      unsent = place_packed_plans(one_query_plans, plans, begin, len, q.plan_of_query, &v);
    else
      point_at_filter_plans(u, plans, &v);
    return v;
  }
};

GpuShard::GpuShard(const ShardIndex& shard, const QuantizedCentroids& centroids, int device)
    : s_(std::make_unique<State>()) {
  ARGENT_CHECK(cuda_device_available(), "device: cuda, but no CUDA device is available here");
  s_->device = device;
  ARGENT_CUDA_CHECK(cudaSetDevice(device));
  ARGENT_CUDA_CHECK(cudaStreamCreateWithFlags(&s_->stream, cudaStreamNonBlocking));
  const ShardTensors& t = shard.tensors();
  const ScanIndexView host = shard.view();
  ScanIndexView d = host;
  d.codes = upload_tensor<int8_t>(s_->codes, t.codes, s_->stream);
  // The device keeps d = 128 codes row-major (GpuIndexView::rows_layout): the host's blocked
  // layout is rewritten in place once here, and each written block in sync().
  s_->rows_layout = d.d_pad == kRowsLayoutDim;
  if (s_->rows_layout)
    blocked_codes_to_rows(const_cast<int8_t*>(d.codes), 0, d.n_rows / kBlockRows, d.d_pad,
                          s_->stream);
  d.scales = upload_tensor<float>(s_->scales, t.scales, s_->stream);
  d.ids = upload_tensor<int64_t>(s_->ids, t.ids, s_->stream);
  d.signatures = upload_tensor<uint64_t>(s_->signatures, t.signatures, s_->stream);
  d.list_offsets = upload_tensor<int64_t>(s_->list_offsets, t.list_offsets, s_->stream);
  d.list_sizes = upload_tensor<int64_t>(s_->list_sizes, t.list_sizes, s_->stream);
  d.list_summaries = upload_tensor<uint64_t>(s_->list_summaries, t.list_summaries, s_->stream);
  d.features.offset = upload_tensor<int64_t>(s_->f_offset, t.feature_offset, s_->stream);
  d.features.count = upload_tensor<int32_t>(s_->f_count, t.feature_count, s_->stream);
  s_->version = shard.version();
  s_->pool_used = shard.pool_used();
  d.features.feature_ids = upload_pool<int32_t>(s_->f_ids, t.feature_ids, s_->pool_used,
                                                &s_->pool_capacity, s_->stream);
  d.features.values = upload_pool<int64_t>(s_->f_values, t.feature_values, s_->pool_used,
                                           &s_->pool_capacity, s_->stream);
  const int8_t* cc = upload<int8_t>(s_->centroid_codes, centroids.blocked.data(),
                                    centroids.blocked.size(), s_->stream);
  const float* cs = upload<float>(s_->centroid_scales, centroids.scales.data(),
                                  centroids.scales.size(), s_->stream);
  s_->tables = std::make_unique<GpuIndexTables>(d, host.list_offsets, host.list_sizes, cc, cs,
                                                s_->stream, s_->rows_layout);
  s_->view = d;
  s_->device_centroid_codes = cc;
  s_->device_centroid_scales = cs;
}

uint64_t GpuShard::version() const { return s_->version; }

bool GpuShard::sync(const ShardIndex& shard) {
  std::vector<int64_t> rows;
  if (!shard.rows_written_since(s_->version, &rows)) return false;
  if (shard.n_rows() != s_->view.n_rows || shard.pool_used() > s_->pool_capacity) return false;
  ARGENT_CUDA_CHECK(cudaSetDevice(s_->device));
  const ShardTensors& t = shard.tensors();
  const ScanIndexView& d = s_->view;
  const int64_t words = d.bloom_words;
  cudaStream_t stream = s_->stream;
  // Whole 16-row blocks (a block's codes interleave its rows), a run of adjacent blocks per copy.
  std::vector<int64_t> blocks;  // written, each once (rows come in ascending order)
  for (int64_t r : rows)
    if (blocks.empty() || blocks.back() != r / kBlockRows) blocks.push_back(r / kBlockRows);
  for (size_t i = 0; i < blocks.size();) {
    const int64_t first = blocks[i];
    int64_t last = first;
    while (i < blocks.size() && blocks[i] <= last + 1) last = blocks[i++];
    const int64_t r0 = first * kBlockRows, nr = (last - first + 1) * kBlockRows;
    copy_range(d.codes, t.codes, r0 * d.d_pad, nr * d.d_pad, stream);
    if (s_->rows_layout)
      blocked_codes_to_rows(const_cast<int8_t*>(d.codes), first, last - first + 1, d.d_pad,
                            stream);
    copy_range(d.scales, t.scales, r0, nr, stream);
    copy_range(d.ids, t.ids, r0, nr, stream);
    copy_range(d.signatures, t.signatures, r0 * words, nr * words, stream);
    copy_range(d.features.offset, t.feature_offset, r0, nr, stream);
    copy_range(d.features.count, t.feature_count, r0, nr, stream);
  }
  const int64_t pool_used = shard.pool_used();
  copy_range(d.features.feature_ids, t.feature_ids, s_->pool_used, pool_used - s_->pool_used,
             stream);
  copy_range(d.features.values, t.feature_values, s_->pool_used, pool_used - s_->pool_used,
             stream);
  copy_range(d.list_sizes, t.list_sizes, 0, d.n_lists, stream);
  copy_range(d.list_summaries, t.list_summaries, 0, d.n_lists * words, stream);
  // The chunking follows the list sizes; the constructor waits for the stream, so every copy
  // above has landed when it returns.
  const ScanIndexView host = shard.view();
  s_->tables = std::make_unique<GpuIndexTables>(d, host.list_offsets, host.list_sizes,
                                                s_->device_centroid_codes,
                                                s_->device_centroid_scales, stream,
                                                s_->rows_layout);
  s_->version = shard.version();
  s_->pool_used = pool_used;
  // The written rows' eligibility may have changed: their blocks' filter words are recomputed.
  const int64_t* d_blocks = upload<int64_t>(s_->written_blocks, blocks.data(), blocks.size(), stream);
  s_->filter_cache.refresh_blocks(d, d_blocks, int64_t(blocks.size()), shard.n_items(), stream);
  return true;
}

GpuShard::~GpuShard() = default;

void GpuShard::search(const QueryBatch& q, bool exact, const int32_t* lists, int nprobe, int64_t k,
                      float* scores, int64_t* ids, int64_t* rows, GpuSearchStats* stats,
                      const Tuning& tuning) {
  ARGENT_CUDA_CHECK(cudaSetDevice(s_->device));
  const GpuQueriesView qv = s_->upload_queries(q, /*probe_may_carry=*/!exact && !lists);
  GpuSearchOptions o;
  o.k = k;
  o.exact = exact;
  o.nprobe = nprobe;
  o.sample_stride = tuning.sample_stride;
  o.candidate_cap = tuning.candidate_cap;
  if (!exact && lists)
    o.probes = upload<int32_t>(s_->lists, lists, size_t(q.n) * nprobe, s_->stream);
  if (!s_->begin.empty()) {
    o.filter_cache = &s_->filter_cache;
    o.host_plan_ops = s_->ops.data();
    o.host_plan_begin = s_->begin.data();
    o.host_plan_len = s_->len.data();
  }
  if (s_->unsent.bytes > 0) o.unsent_plans = &s_->unsent;
  const size_t out = size_t(q.n) * size_t(k);
  float* d_scores = s_->out_scores.reserve_as<float>(out);
  int64_t* d_ids = s_->out_ids.reserve_as<int64_t>(out);
  int64_t* d_rows = rows ? s_->out_rows.reserve_as<int64_t>(out) : nullptr;
  run_gpu_search(s_->tables->view(), qv, o, d_scores, d_ids, d_rows, s_->workspace, stats,
                 s_->stream);
  ARGENT_CUDA_CHECK(cudaMemcpy(scores, d_scores, out * sizeof(float), cudaMemcpyDeviceToHost));
  ARGENT_CUDA_CHECK(cudaMemcpy(ids, d_ids, out * sizeof(int64_t), cudaMemcpyDeviceToHost));
  if (rows)
    ARGENT_CUDA_CHECK(cudaMemcpy(rows, d_rows, out * sizeof(int64_t), cudaMemcpyDeviceToHost));
}

void GpuShard::probe(const QueryBatch& q, int nprobe, int32_t* lists) {
  ARGENT_CUDA_CHECK(cudaSetDevice(s_->device));
  const GpuQueriesView qv = s_->upload_queries(q, /*probe_may_carry=*/false);
  int32_t* d_lists = s_->lists.reserve_as<int32_t>(size_t(q.n) * nprobe);
  run_gpu_probe(s_->tables->view(), qv, nprobe, d_lists, s_->workspace, s_->stream);
  ARGENT_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  ARGENT_CUDA_CHECK(cudaMemcpy(lists, d_lists, size_t(q.n) * nprobe * sizeof(int32_t),
                               cudaMemcpyDeviceToHost));
}

void GpuShard::set_filter_cache_bytes(size_t max_bytes) {
  s_->filter_cache.set_capacity(max_bytes);
}

size_t GpuShard::device_bytes() const {
  size_t b = s_->tables->device_bytes() + s_->filter_cache.device_bytes();
  for (const DeviceArray* a :
       {&s_->codes, &s_->scales, &s_->ids, &s_->signatures, &s_->list_offsets, &s_->list_sizes,
        &s_->list_summaries, &s_->f_offset, &s_->f_count, &s_->f_ids, &s_->f_values,
        &s_->centroid_codes, &s_->centroid_scales})
    b += a->bytes();
  return b;
}

}  // namespace argent
