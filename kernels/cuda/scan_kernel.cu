// The fused scan pass (search_steps.h: launch_scan). A persistent grid walks the chunks of the
// probed lists; a CTA stages the queries of a chunk's list in shared memory, already in mma
// B-fragment order, and each warp takes 16-row blocks (copied ahead into its ring in shared
// memory, or prefetched into registers for one or two tiles of queries): the block's codes are
// loaded once into A fragments and multiplied against every staged query, 8 at a time (mma
// m16n8k32 s8). A cheap integer test against a per-(block, query) bound on the dot product
// rejects almost every row; the few that might reach the threshold take the exact path: float
// score, validity, Bloom plan, exact feature check, append. No score leaves the registers
// otherwise.
//
// This file holds the kernel, its variants and their launch; its parts are, in order:
// scan_state.cuh (parameters, staged queries, local plans), scan_hits.cuh (the exact path and
// where hits go), scan_blocks.cuh (a block's words, fragments and scores; tasks; the ring) and
// scan_runs.cuh (the ways a run of chunks is read).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "common/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/resident_grid.h"
#include "kernels/cuda/scan_runs.cuh"
#include "kernels/cuda/search_steps.h"

namespace argent {
namespace cuda {
namespace {

template <int KC, bool kFiltered, Hits kHits, bool kRows = false>
__global__ void __launch_bounds__(kThreads, ARGENT_SCAN_MIN_BLOCKS)
    scan_kernel(const __grid_constant__ ScanParams p) {
  extern __shared__ uint4 shared[];
  const int cap = p.query_cap, nc = p.n_chunks32;
  Staged s;
  // The rings first (16-byte aligned blocks), then their meta slots, then the staged queries.
  s.ring = reinterpret_cast<int8_t*>(shared);
  s.metas = s.ring + (KC > 0 ? kWarps * kStages * kBlockRows * p.index.scan.d_pad : 0);
  s.frag = reinterpret_cast<uint32_t*>(reinterpret_cast<int8_t*>(shared) + p.ring_bytes);
  s.threshold = reinterpret_cast<float*>(s.frag + size_t(cap) * nc * 8);
  s.t_over_scale = s.threshold + cap;
  s.scale = s.t_over_scale + cap;
  s.query = reinterpret_cast<int32_t*>(s.scale + cap);
  s.plan_begin = s.query + cap;
  s.plan_len = s.plan_begin + cap;
  s.slot = s.plan_len + cap;
  __shared__ LocalPlans local;
  __shared__ TaskBatch tb;
  __shared__ unsigned long long flat_cursor[kWarps * 2];
  if (threadIdx.x < kWarps * 2) flat_cursor[threadIdx.x] = 0;  // nothing reserved yet
  s.flat_cursor = flat_cursor;
  s.pending = nullptr;
  if constexpr (kHits == Hits::kDeferred) {
    s.pending = reinterpret_cast<Pending*>(reinterpret_cast<int8_t*>(shared) + p.pending_offset);
    if (threadIdx.x < kWarps) s.pending[threadIdx.x].count = 0;
  }
  if (p.staged_ops > 0) {
    FilterOp* ops = reinterpret_cast<FilterOp*>(s.slot + cap + (cap & 3 ? 4 - (cap & 3) : 0));
    for (int i = threadIdx.x; i < p.staged_ops; i += blockDim.x) ops[i] = p.queries.plan_ops[i];
    s.ops = ops;
  } else {
    s.ops = p.queries.plan_ops;
  }

  const int64_t n_tasks = *p.n_tasks;
  const int64_t begin = n_tasks * blockIdx.x / gridDim.x;
  const int64_t end = n_tasks * (blockIdx.x + 1) / gridDim.x;
  // Queries are restaged only when the set changes: in exact search every list that all
  // queries scan shares one query list (search_steps.h), so a CTA stages once.
  int32_t staged_start = -1, staged_m = -1;
  for (int64_t task0 = begin; task0 < end; task0 += kTaskBatch) {
    const int n = int(end - task0 < kTaskBatch ? end - task0 : kTaskBatch);
    __syncthreads();  // the previous batch is done with (and the ops are staged)
    load_task_batch(p, task0, n, &tb);
    __syncthreads();
    for (int t = 0; t < n;) {
      if (task_blocks(tb, t) == 0) {
        ++t;
        continue;
      }
      // The run: this task and the following ones with the same queries (or nothing to scan).
      const int32_t qstart = tb.qstart[t], qcount = tb.qcount[t];
      int t_end = t + 1;
      while (t_end < n &&
             (task_blocks(tb, t_end) == 0 ||
              (tb.qstart[t_end] == qstart && tb.qcount[t_end] == qcount)))
        ++t_end;
      // More queries than fit are staged in even passes (a list of 130 at a cap of 128: 72
      // and 58, not 128 and 2).
      const int passes = (qcount + cap - 1) / cap;
      const int per_pass = min(cap, ((qcount + passes - 1) / passes + 7) / 8 * 8);
      for (int base = 0; base < qcount; base += per_pass) {
        const int m = min(per_pass, qcount - base);
        const int m_pad = (m + 7) & ~7;
        if (qstart + base != staged_start || m != staged_m) {
          __syncthreads();
          stage_queries(p, p.lists.queries + qstart + base, m, s);
          __syncthreads();
          if constexpr (kFiltered) {
            assign_plan_slots(p, s, m, p.tasks[task0 + t], qstart + base, &local);
            __syncthreads();
          }
          staged_start = qstart + base;
          staged_m = m;
        }
        if constexpr (KC > 0) {
          // A uniform run under a selective plan scans only the rows it can pass. Filtered runs
          // of one or two tiles take the ring, not the register prefetch: the filtered kernel
          // then spills more (H200, per-query IVF collect: 1.05 against 0.99 ms; deferred, 0.78
          // against 0.72).
          if constexpr (kFiltered) {
            if (local.compact)
              scan_run_compact<KC, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
            else
              scan_run_ring<KC, kFiltered, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
          } else if (m_pad <= 8 * kPrefetchMaxTiles) {
            scan_run_prefetch<KC, kFiltered, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
          } else {
            scan_run_ring<KC, kFiltered, kHits, kRows>(p, s, local, m_pad, tb, t, t_end);
          }
        } else
          scan_run_wide<kFiltered, kHits>(p, s, local, m_pad, tb, t, t_end);
        // The deferred hits refer to the staged queries: through before they change.
        if constexpr (kHits == Hits::kDeferred) drain_pending<kFiltered>(p, s);
      }
      t = t_end;
    }
  }
}

template <int KC, bool kFiltered, Hits kHits, bool kRows = false>
void launch_kernel(const ScanParams& p, size_t smem, cudaStream_t stream) {
  // The persistent grid: as many CTAs as stay resident (worked out once per device and shared
  // memory size, not on every batch), times ARGENT_SCAN_WAVES in the collect pass, where more
  // CTAs than fit at once balance uneven chunks. The sample pass reads a few blocks of each
  // CTA's chunks, so one wave pays a CTA's fixed costs (staging, its task batch) once per SM
  // slot; measured alone it made no difference (H200, exact B = 64: 0.25 against 0.24 ms).
  const int grid = resident_ctas(
      reinterpret_cast<const void*>(scan_kernel<KC, kFiltered, kHits, kRows>),
                                 kThreads, smem, int(kMaxSharedBytes)) *
                   (p.pass.out_rows ? ARGENT_SCAN_WAVES : 1);
  ScanParams q = p;
  // Reservations small enough that the warps' unfinished ones stay within flat_slack, and at
  // most 128 slots (one atomic per 128 candidates is already rare).
  const int64_t warps = int64_t(grid) * kWarps;
  q.flat_chunk = 1;
  while (q.flat_chunk < 128 && 2 * q.flat_chunk * warps <= p.pass.flat_slack) q.flat_chunk *= 2;
  scan_kernel<KC, kFiltered, kHits, kRows><<<grid, kThreads, smem, stream>>>(q);
  ARGENT_CUDA_CHECK_LAUNCH("scan_kernel");
}

// The kernel for the dimension's k-chunks of 32 (0: wider than a ring stage holds).
template <bool kFiltered, Hits kHits>
void launch_for_chunks(const ScanParams& p, size_t smem, cudaStream_t stream) {
  switch (p.n_chunks32) {
    case 1: launch_kernel<1, kFiltered, kHits>(p, smem, stream); break;
    case 2: launch_kernel<2, kFiltered, kHits>(p, smem, stream); break;
    case 3: launch_kernel<3, kFiltered, kHits>(p, smem, stream); break;
    case 4:
      if (p.rows) launch_kernel<4, kFiltered, kHits, true>(p, smem, stream);
      else launch_kernel<4, kFiltered, kHits>(p, smem, stream);
      break;
    default: launch_kernel<0, kFiltered, kHits>(p, smem, stream); break;
  }
}

// The most queries a CTA can stage with `fixed` bytes of other dynamic shared memory (alignment
// padding included) while
// ARGENT_SCAN_MIN_BLOCKS CTAs still fit on an SM (worked out once per device); 0 if none.
int resident_query_cap(const void* kernel, size_t fixed, size_t per_query) {
  static std::mutex mu;
  // Dynamic shared memory per CTA, per device and kernel (their static shared memory differs).
  static std::map<std::pair<int, const void*>, size_t> budgets;
  int device = 0;
  ARGENT_CUDA_CHECK(cudaGetDevice(&device));
  size_t budget = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = budgets.find({device, kernel});
    if (it == budgets.end()) {
      int per_sm = 0, reserved = 0;
      ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(
          &per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
      ARGENT_CUDA_CHECK(cudaDeviceGetAttribute(
          &reserved, cudaDevAttrReservedSharedMemoryPerBlock, device));
      cudaFuncAttributes attr;
      ARGENT_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
      const size_t per_cta = size_t(per_sm) / ARGENT_SCAN_MIN_BLOCKS;
      const size_t taken = size_t(reserved) + attr.sharedSizeBytes;
      it = budgets.emplace(std::make_pair(device, kernel), per_cta > taken ? per_cta - taken : 0)
               .first;
    }
    budget = it->second;
  }
  return budget > fixed ? int((budget - fixed) / per_query) / 8 * 8 : 0;
}

}  // namespace

void launch_scan(const GpuIndexView& index, const GpuQueriesView& queries,
                 const ListQueries& lists, const int32_t* tasks, const int32_t* n_tasks,
                 int max_queries_per_list, const ScanPass& pass, cudaStream_t stream) {
  ScanParams p;
  p.index = index;
  p.queries = queries;
  p.lists = lists;
  p.tasks = tasks;
  p.n_tasks = n_tasks;
  p.pass = pass;
  const int d_pad = index.scan.d_pad;
  p.n_chunks32 = (d_pad + 31) / 32;
  p.n_groups = d_pad / 4;
  const size_t per_query = size_t(p.n_chunks32) * 32 + 28;
  const size_t stage_bytes = size_t(kBlockRows) * d_pad +
                             (queries.plan_of_query ? kMetaSlotBytes<true> : kMetaSlotBytes<false>);
  p.ring_bytes = d_pad <= 128 ? int(kWarps * kStages * stage_bytes) : 0;
  // Collects may defer their hits (Pending; flat ones always).
  const bool filtered = queries.plan_of_query != nullptr;
  const bool defer = pass.out_rows != nullptr && (pass.out_keys != nullptr || pass.defer_hits);
  const size_t pending_bytes = defer ? kWarps * sizeof(Pending) + 16 : 0;
  const int fit = int((kMaxSharedBytes - p.ring_bytes - kMaxStagedOps * sizeof(FilterOp) -
                       pending_bytes) /
                      per_query) / 8 * 8;
  ARGENT_ASSERT(fit >= 8, "dimension ", d_pad, " leaves no room for 8 staged queries");
  const int wanted = (std::max(1, max_queries_per_list) + 7) / 8 * 8;
  p.query_cap = std::min(fit, wanted);
  ARGENT_ASSERT(p.query_cap < kMaxQueryCap, "staged queries ", p.query_cap,
                " overflow the deferred hits' query field");
  if (defer) {
    // The queue must not cost a resident CTA: the deferring kernel stages fewer queries at a
    // time (the kernel splits a list's queries into even passes) where all of them would leave
    // one CTA per SM (H200, B = 256: exact K = 100,000 25.0 -> 20.6 ms; IVF K = 1000 collect
    // 2.72 -> 1.82 ms).
    const int ops = queries.n_plan_ops <= kMaxStagedOps ? queries.n_plan_ops : 0;
    constexpr Hits kDeferred = Hits::kDeferred;
    const void* kernel =
        index.rows_layout
            ? (filtered ? reinterpret_cast<const void*>(scan_kernel<4, true, kDeferred, true>)
                        : reinterpret_cast<const void*>(scan_kernel<4, false, kDeferred, true>))
            : (filtered ? reinterpret_cast<const void*>(scan_kernel<4, true, kDeferred>)
                        : reinterpret_cast<const void*>(scan_kernel<4, false, kDeferred>));
    const int cap = resident_query_cap(
        kernel, p.ring_bytes + pending_bytes + sizeof(FilterOp) * ops, per_query);
    if (cap >= 8) p.query_cap = std::min(p.query_cap, cap);
  }

  p.staged_ops = queries.n_plan_ops <= kMaxStagedOps ? queries.n_plan_ops : 0;
  p.sig_in_regs = queries.plan_of_query != nullptr && index.scan.bloom_words <= 2;
  p.one_plan = queries.plan_of_query != nullptr && queries.n_plans == 1;
  p.rows = index.rows_layout;
  ARGENT_ASSERT(!p.rows || d_pad == kRowsLayoutDim, "row-major codes need d_pad ",
                kRowsLayoutDim, ", not ", d_pad);
  p.pending_offset = 0;
  size_t smem = size_t(p.ring_bytes) + per_query * size_t(p.query_cap) +
                sizeof(FilterOp) * size_t(p.staged_ops);
  if (defer) {
    smem = (smem + 15) / 16 * 16;
    p.pending_offset = int(smem);
    smem += kWarps * sizeof(Pending);
  }
  ARGENT_ASSERT(!pass.dense_sample || (!filtered && !defer && pass.out_rows == nullptr),
                "a dense sample is an unfiltered sample pass");
  if (filtered && defer)
    launch_for_chunks<true, Hits::kDeferred>(p, smem, stream);
  else if (filtered)
    launch_for_chunks<true, Hits::kInPlace>(p, smem, stream);
  else if (defer)
    launch_for_chunks<false, Hits::kDeferred>(p, smem, stream);
  else if (pass.dense_sample)
    launch_for_chunks<false, Hits::kDenseSample>(p, smem, stream);
  else
    launch_for_chunks<false, Hits::kInPlace>(p, smem, stream);
}

}  // namespace cuda
}  // namespace argent
