// A batch's small host arrays (queries, filter plans) copied to the device in one transfer.
// Host-only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/device_array.h"
#include "kernels/cuda/gpu_search.h"
#include "kernels/filter_plan.h"

namespace argent {

// Several host arrays, one transfer.
// Each cudaMemcpyAsync from pageable memory costs the host a call and a staging copy, microseconds
// that a one-query batch waits for: the filter arrays alone were four copies per batch. add()
// packs an array (16-byte aligned) and returns its offset; send() copies them all on `stream`,
// after which at() gives each one's device address. Like upload_async, the host side may change
// as soon as send() returns. place() reserves the device side without copying: the host side
// must then stay until whoever copies it (run_gpu_search, UnsentPlans) has.
class PackedUpload {
 public:
  void clear() { host_.clear(); }
  template <typename T>
  size_t add(const T* host, size_t count) {
    const size_t offset = (host_.size() + 15) / 16 * 16;
    host_.resize(offset + count * sizeof(T));
    if (count > 0) std::memcpy(host_.data() + offset, host, count * sizeof(T));
    return offset;
  }
  void send(cudaStream_t stream) {
    void* p = place();
    if (!host_.empty())
      ARGENT_CUDA_CHECK(
          cudaMemcpyAsync(p, host_.data(), host_.size(), cudaMemcpyHostToDevice, stream));
  }
  // Like send() without the copy: at() gives the addresses the arrays are to have; the caller
  // copies host()[0, size()) to device() itself (UnsentPlans).
  void* place() { return device_.reserve(host_.size() > 0 ? host_.size() : 1); }
  const void* host() const { return host_.data(); }
  size_t size() const { return host_.size(); }
  void* device() const { return device_.data(); }
  template <typename T>
  const T* at(size_t offset) const {
    return reinterpret_cast<const T*>(static_cast<const unsigned char*>(device_.data()) + offset);
  }

 private:
  std::vector<unsigned char> host_;
  DeviceArray device_;
};

// Where add_filter_plans put a batch's plans in a PackedUpload.
struct PlanOffsets {
  size_t ops = 0, begin = 0, len = 0, plan_of_query = 0;
  int32_t n_ops = 0, n_plans = 0;
};

// Packs a batch's filter plans (GpuQueriesView's form: the plans' ops one after another, each
// plan's first op and length, each of the n queries' plan or -1) into `u`.
inline PlanOffsets add_filter_plans(PackedUpload& u, const std::vector<FilterOp>& ops,
                                    const std::vector<int32_t>& begin,
                                    const std::vector<int32_t>& len,
                                    const std::vector<int32_t>& plan_of_query) {
  PlanOffsets at;
  at.ops = u.add(ops.data(), ops.size());
  at.begin = u.add(begin.data(), begin.size());
  at.len = u.add(len.data(), len.size());
  at.plan_of_query = u.add(plan_of_query.data(), plan_of_query.size());
  at.n_ops = int32_t(ops.size());
  at.n_plans = int32_t(begin.size());
  return at;
}

// After u.send(): v's plan fields point at the device copies (none when the batch has no plan).
inline void point_at_filter_plans(const PackedUpload& u, const PlanOffsets& at,
                                  GpuQueriesView* v) {
  if (at.n_plans == 0) return;
  v->plan_ops = u.at<FilterOp>(at.ops);
  v->plan_begin = u.at<int32_t>(at.begin);
  v->plan_len = u.at<int32_t>(at.len);
  v->plan_of_query = u.at<int32_t>(at.plan_of_query);
  v->n_plan_ops = at.n_ops;
  v->n_plans = at.n_plans;
}

// Plans that add_filter_plans packed into `u` (where `at` says), placed, not copied: v's plan
// fields point at their device places, and the returned UnsentPlans says what run_gpu_search
// is to copy there (GpuSearchOptions::unsent_plans; `u` must stay as it is until that call
// returns).
inline UnsentPlans place_packed_plans(PackedUpload& u, const PlanOffsets& at,
                                      const std::vector<int32_t>& begin,
                                      const std::vector<int32_t>& len,
                                      const std::vector<int32_t>& plan_of_query,
                                      GpuQueriesView* v) {
  u.place();
  point_at_filter_plans(u, at, v);
  UnsentPlans unsent;
  unsent.host = u.host();
  unsent.bytes = u.size();
  unsent.device = u.device();
  unsent.first_query_plan = plan_of_query.empty() ? -1 : plan_of_query[0];
  if (unsent.first_query_plan >= 0) {
    unsent.first_query_ops_offset =
        at.ops + sizeof(FilterOp) * size_t(begin[size_t(unsent.first_query_plan)]);
    unsent.first_query_ops = len[size_t(unsent.first_query_plan)];
  }
  return unsent;
}

// A batch's plans packed into `u` (cleared first) and placed, not copied (place_packed_plans).
inline UnsentPlans place_filter_plans(PackedUpload& u, const std::vector<FilterOp>& ops,
                                      const std::vector<int32_t>& begin,
                                      const std::vector<int32_t>& len,
                                      const std::vector<int32_t>& plan_of_query,
                                      GpuQueriesView* v) {
  u.clear();
  const PlanOffsets at = add_filter_plans(u, ops, begin, len, plan_of_query);
  return place_packed_plans(u, at, begin, len, plan_of_query, v);
}

// A batch whose plans are all it sends: packs them into `u` (cleared first), sends them on
// `stream` and points v's plan fields at them.
inline void send_filter_plans(PackedUpload& u, const std::vector<FilterOp>& ops,
                              const std::vector<int32_t>& begin, const std::vector<int32_t>& len,
                              const std::vector<int32_t>& plan_of_query, cudaStream_t stream,
                              GpuQueriesView* v) {
  u.clear();
  const PlanOffsets at = add_filter_plans(u, ops, begin, len, plan_of_query);
  u.send(stream);
  point_at_filter_plans(u, at, v);
}

}  // namespace argent
