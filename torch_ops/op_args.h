// Checking the tensors a torch.ops.argent operator receives, and turning them into the views the
// kernels take (kernels/cpu/fused_scan.h, kernels/filter_plan.h). Shared by the CPU and CUDA
// registrations (ops_cpu.cc, ops_cuda.cc); docs/torch.md lists every schema.
//
// Every check is a TORCH_CHECK whose message names the operator, the argument, what it must be
// and what it is, e.g.
//   argent::search: scales must be float32 [4096] on cpu, got int64 [4096] on cpu
// so a bad call raises a RuntimeError in Python (or c10::Error in C++) and nothing runs.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "kernels/cpu/fused_scan.h"
#include "kernels/filter_plan.h"

namespace argent::ops {

constexpr int64_t kAny = -1;  // a dimension check_tensor does not constrain

// Identifies a tensor's contents for the host-side caches of the CUDA ops (list tables, plans,
// device index tables): the same storage object (held weakly, so freed memory that the caching
// allocator hands to a new tensor never matches), data pointer, size and version counter
// (bumped by every in-place write through PyTorch). Inference tensors have no version counter
// and never match.
class TensorStamp {
 public:
  TensorStamp() = default;
  explicit TensorStamp(const at::Tensor& t);
  bool matches(const at::Tensor& t) const;

 private:
  c10::weak_intrusive_ptr<c10::StorageImpl> storage_{c10::weak_intrusive_ptr<c10::StorageImpl>(
      c10::intrusive_ptr<c10::StorageImpl>())};
  const void* data_ = nullptr;
  int64_t numel_ = -1, version_ = -1;
};

// Checks `t` is defined, contiguous, of `dtype`, on `device`'s type (and index, for CUDA), with
// `shape` (kAny: any size in that dimension).
void check_tensor(const char* op, const char* name, const at::Tensor& t, at::ScalarType dtype,
                  std::initializer_list<int64_t> shape, const at::Device& device);

// The quantized queries of a call: codes int8 [n, d_pad] (d_pad a multiple of 4, at most
// kMaxDim), scales float32 [n], bias int32 [n], all on `device`.
struct QueryArgs {
  int64_t n = 0;
  int d_pad = 0;
};
QueryArgs check_queries(const char* op, const at::Tensor& codes, const at::Tensor& scales,
                        const at::Tensor& bias);

// Filter plans of a batch: plan_ops int64 [n_ops, 4] (each row one FilterOp's 32 bytes, as
// argent::compile_filter writes them) and plan_spans int32 [n, 2] = (first op, op count) of each
// query's plan; count 0: no filter. Both are copied to the host and validated (op kinds, words
// below bloom_words, a well-formed postfix program within kMaxFilterOps and kMaxFilterDepth), so
// a malformed plan is an error, never an out-of-bounds read in a kernel.
struct PlanBatch {
  std::vector<FilterOp> ops;              // host copy of plan_ops
  std::vector<int32_t> begin, length;     // per plan (one plan per filtered query)
  std::vector<int32_t> plan_of_query;     // [n]: plan index or -1
  std::vector<FilterPlanView> views;      // host views into `ops`, per plan
  bool any() const { return !begin.empty(); }
};
PlanBatch check_plans(const char* op, const at::Tensor& plan_ops, const at::Tensor& plan_spans,
                      int64_t n, int bloom_words);

// The index tensors of a shard (shard/shard_index.h ShardTensors, or ArgentRetrieval's buffers),
// checked against each other and `d_pad`, all on `device`: shapes and dtypes only, no reads of
// the contents, so a CUDA call costs no host round trip. Pointers are the tensors' own (device
// pointers for CUDA tensors).
struct IndexArgs {
  ScanIndexView view;
};
IndexArgs check_index(const char* op, int d_pad, const at::Device& device, const at::Tensor& codes,
                      const at::Tensor& scales, const at::Tensor& item_ids,
                      const at::Tensor& signatures, const at::Tensor& list_offsets,
                      const at::Tensor& list_sizes, const at::Tensor& list_summaries,
                      const at::Tensor& feature_offset, const at::Tensor& feature_count,
                      const at::Tensor& feature_ids, const at::Tensor& feature_values);

// The list tables of a checked index, copied to the host and validated: lists start at
// multiples of 16 and lie inside the rows. The CPU ops check them on every call; the CUDA ops
// only when their cached device tables are rebuilt (ops_cuda.cc), so the copy is not cached here.
struct ListTables {
  std::vector<int64_t> offsets, sizes;
};
ListTables check_list_tables(const char* op, const IndexArgs& index,
                             const at::Tensor& list_offsets, const at::Tensor& list_sizes);

// The exact feature store of rows (no list tables): offset int64 [rows], count int32 [rows],
// ids int32 [P], values int64 [P].
FeatureStoreView check_features(const char* op, const at::Device& device,
                                const at::Tensor& feature_offset, const at::Tensor& feature_count,
                                const at::Tensor& feature_ids, const at::Tensor& feature_values);

// probes: int32 [n, nprobe] list numbers (-1 pads) below n_lists, no list twice in a row;
// checked on the host (the CPU ops). The CUDA search checks only the shape here
// (check_probes_shape) and the entries on the device (kernels/cuda/gpu_search.cu).
void check_probes_shape(const char* op, const at::Tensor& probes, int64_t n,
                        const at::Device& device);
void check_probes(const char* op, const at::Tensor& probes, int64_t n, int64_t n_lists,
                  const at::Device& device);

// k: 0 <= k <= kMaxK.
constexpr int64_t kMaxK = 100000;
void check_k(const char* op, int64_t k);

// Bloom parameters of a call: 1 <= words <= 64, 1 <= hashes <= 16 (the index builder's limits).
BloomParams bloom_params(const char* op, int64_t words, int64_t hashes, int64_t seed);

// Every row's [offset, offset + count) lies inside a pool of `pool` entries (checked on the host).
void check_feature_ranges(const char* op, const at::Tensor& feature_offset,
                          const at::Tensor& feature_count, int64_t pool);

// The probe's inputs: centroid_codes int8 [rows * d_pad] (blocked, rows = n_lists rounded up to
// 16), centroid_scales float32 [rows], list_sizes int64 [n_lists], list_summaries int64
// [n_lists, bloom_words]; 1 <= nprobe <= n_lists.
struct Centroids {
  int64_t n_lists = 0, rows = 0;
  int bloom_words = 0;
};
Centroids check_centroids(const char* op, int d_pad, const at::Device& device,
                          const at::Tensor& centroid_codes, const at::Tensor& centroid_scales,
                          const at::Tensor& list_sizes, const at::Tensor& list_summaries,
                          int64_t nprobe);

// The kernels' view of checked queries and plans (host plan views; valid while `plans` lives).
ScanQueriesView scan_queries(const at::Tensor& codes, const at::Tensor& scales,
                             const at::Tensor& bias, const QueryArgs& q, const PlanBatch& plans);

// merge_topk's inputs: S >= 1 sources of scores float32 [n, k_in] and ids int64 [n, k_in].
struct MergeArgs {
  int64_t n = 0, k_in = 0;
};
MergeArgs check_merge(const char* op, at::TensorList scores, at::TensorList ids, int64_t k,
                      const at::Device& device);

// verify_filter evaluates plans exactly, without signatures: any word number is acceptable.
constexpr int kMaxBloomWordsForChecks = 1 << 30;

template <typename T>
T* data_as(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

}  // namespace argent::ops
