// The CUDA search: the GPU twin of kernels/cpu/fused_scan.h (same inputs, same int8 arithmetic,
// same results: ids, scores and order), plus the IVF probe on the GPU.
//
// A batch runs as a fixed sequence of kernels on its stream with no host synchronisation
// between the probe and the final top-K (it can be captured in a CUDA graph once the workspace
// has grown to the batch's shape: a growing buffer is a cudaFree/cudaMalloc, which
// synchronises):
//
//   probe        queries x centroids with int8 mma, best nprobe usable lists per query
//   invert       (query, list) pairs -> for each list, the queries that scan it ("list-major")
//   plans        under filters not in the filter cache, each row's filter word (search_steps.h);
//                a one-query IVF batch's in one pass over its probed lists that also inverts
//                and draws the sample (no invert or sample step of its own)
//   sample       exact scores of a strided sample of each query's rows (every `stride`-th block)
//   threshold    per query, the r-th best sample score T_q, r chosen so that about 1.5-2x K
//                rows score >= T_q (a bound from the threads' minima, then a select in shared
//                memory; a radix select for large ranks or small samples)
//   collect      one pass over the probed lists: each block of 16 rows is read once for all the
//                queries that probe its list (int8 mma.sync m16n8k32), rows scoring >= T_q pass
//                the Bloom plan and, when Bloom is not definite, the exact feature check (later,
//                near the top of each query's candidates; never, when the words are exact), and
//                are appended to the query's candidate buffer [cap]. No score matrix is written.
//                A one-query IVF batch whose probed pass ran: a warp per block with dp4a, only
//                the eligible rows' codes read under a filter (launch_probed_collect).
//   top k        k <= 2048 with a buffer per query: one CTA per query bounds its first k valid
//                candidates (checking the flagged ones under the bound), sorts those in shared
//                memory by (score, id) and writes them; otherwise a radix sort of (query,
//                score) keys over all candidate buffers, equal scores ordered by id, first k
//                of each query written out.
//
// A query whose candidate buffer overflowed, or that collected fewer than k rows although more
// than k are eligible (T_q was too high), is flagged; run_gpu_search re-runs only those queries
// with a sample of every row (T_q = the exact k-th eligible score), so results are always exact.
//
// Host-only header: compiles with g++ alone.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "kernels/cpu/fused_scan.h"
#include "kernels/filter_plan.h"

namespace argent {

class GpuFilterCache;  // kernels/cuda/filter_cache.h

// A shard's tensors in device memory (the layout of ScanIndexView, kernels/cpu/fused_scan.h),
// plus tables derived by GpuIndexTables. Non-owning; every pointer is a device pointer.
struct GpuIndexView {
  ScanIndexView scan;                 // codes, scales, ids, signatures, lists, features
  const float* block_inv_max_scale;   // [n_rows / 16] 1 / (largest item scale in the block)
  const int32_t* chunk_list;          // [n_chunks] the list of each chunk of blocks
  const int32_t* chunk_first_block;   // [n_chunks]
  const int32_t* chunk_blocks;        // [n_chunks] 1..kChunkBlocks
  const int32_t* list_first_chunk;    // [n_lists + 1] list l's chunks: [l], [l] + 1, ... [l + 1]
  int64_t n_chunks = 0;
  int64_t max_list_rows = 0;
  // Quantized centroids for the probe: [nlist rows padded to 16, d_pad] blocked, with scales.
  const int8_t* centroid_codes = nullptr;
  const float* centroid_scales = nullptr;
  // scan.codes row-major ([n_rows, d_pad], d_pad == kRowsLayoutDim) instead of blocked: a row's
  // bytes are contiguous, so a scan that gathers a filter's rows reads only theirs (in the
  // blocked layout a row's words are 64 bytes apart and a gathered row costs its block's lines).
  bool rows_layout = false;
};

// The one dimension the row-major layout serves (the scan's fragment mapping is written for it).
constexpr int kRowsLayoutDim = 128;

// Rewrites blocks [first_block, first_block + n_blocks) of device codes from the blocked layout
// to row-major, in place (d_pad == kRowsLayoutDim).
void blocked_codes_to_rows(int8_t* codes, int64_t first_block, int64_t n_blocks, int d_pad,
                           cudaStream_t stream);

constexpr int kChunkBlocks = 32;  // blocks of 16 rows per unit of work in the collect pass

// Builds the derived tables of GpuIndexView for device-resident tensors. Owns them.
class GpuIndexTables {
 public:
  // `scan` and the centroids hold device pointers; host_list_offsets/host_list_sizes [n_lists]
  // are the host copies of the list tables (the chunking is decided on the host, once).
  // rows_layout: scan.codes are row-major (GpuIndexView::rows_layout).
  GpuIndexTables(const ScanIndexView& scan, const int64_t* host_list_offsets,
                 const int64_t* host_list_sizes, const int8_t* centroid_codes,
                 const float* centroid_scales, cudaStream_t stream, bool rows_layout = false);
  ~GpuIndexTables();
  GpuIndexTables(const GpuIndexTables&) = delete;
  GpuIndexTables& operator=(const GpuIndexTables&) = delete;

  const GpuIndexView& view() const { return view_; }
  size_t device_bytes() const;

 private:
  struct Buffers;
  std::unique_ptr<Buffers> buffers_;
  GpuIndexView view_;
};

// Quantized queries and their filter plans, in device memory.
struct GpuQueriesView {
  const int8_t* codes = nullptr;    // [n, d_pad] row-major
  const float* scales = nullptr;    // [n]
  int64_t n = 0;
  const FilterOp* plan_ops = nullptr;      // all plans' ops, concatenated
  const int32_t* plan_begin = nullptr;     // [n_plans] first op of each plan
  const int32_t* plan_len = nullptr;       // [n_plans]
  const int32_t* plan_of_query = nullptr;  // [n] plan index or -1; null: no filters
  int32_t n_plan_ops = 0;                  // total ops of all plans
  int32_t n_plans = 0;                     // plans (plan_begin/plan_len entries)
};

// A batch's filter plan arrays (GpuQueriesView's plan fields), packed on the host and not yet
// copied to `device`, where the caller has already pointed the view's plan fields
// (kernels/cuda/batch_upload.h: place_filter_plans). Until run_gpu_search has run with them,
// those fields point at nothing written: such a view must not go to run_gpu_probe or any other
// launcher.
struct UnsentPlans {
  const void* host = nullptr;
  size_t bytes = 0;
  void* device = nullptr;
  // Query 0's plan (-1: none) and, when it has one, its ops' byte offset in `host` and count.
  int32_t first_query_plan = -1;
  size_t first_query_ops_offset = 0;
  int32_t first_query_ops = 0;
};
// The most bytes of UnsentPlans a one-query batch's probe launch carries (cuda::CarriedPlans):
// a plan of up to 14 ops.
constexpr size_t kMaxCarriedPlanBytes = 512;

struct GpuSearchOptions {
  int64_t k = 100;
  bool exact = false;   // every list (that the filter's Bloom summary allows)
  int nprobe = 32;      // IVF: lists per query
  // Lists chosen by the caller ([n, nprobe], -1 pads; device memory); null: probe on the GPU.
  // Checked on the device: an entry outside [-1, n_lists) or a list named twice in a row fails
  // the batch (argent::Error at its one host synchronisation).
  const int32_t* probes = nullptr;
  int sample_stride = 0;  // blocks per sampled block; 0: chosen from k and the rows per query
  int64_t candidate_cap = 0;  // candidate slots per query; 0: from the sample plan
  // Order equal scores by id with a second, stable sort (any run length) instead of in place
  // (short runs only); the rescue of a query whose results meet a long run of ties sets it.
  bool stable_ties = false;
  // Recurring filters (kernels/cuda/filter_cache.h): with a cache and the host copy of the
  // batch's plans, a batch of at most 4 distinct filters takes their exact words over the whole
  // index from the cache instead of evaluating them in a pre-pass.
  GpuFilterCache* filter_cache = nullptr;
  const FilterOp* host_plan_ops = nullptr;   // queries.plan_ops, on the host
  const int32_t* host_plan_begin = nullptr;  // [queries.n_plans]
  const int32_t* host_plan_len = nullptr;    // [queries.n_plans]
  // A query's re-run inside a batch: read the cache without counting a use of its filters.
  bool filter_cache_peek = false;
  // The plans still on the host: a one-query IVF batch that probes on the GPU has its probe's
  // launch carry them to the device (cuda::CarriedPlans) when they fit in kMaxCarriedPlanBytes;
  // any other batch copies them first.
  const UnsentPlans* unsent_plans = nullptr;
};

struct GpuSearchStats {
  int64_t candidates = 0;      // candidates kept for the sort, all queries
  int64_t rescued_queries = 0; // queries re-run with a full sample (buffer overflow/underflow)
  int64_t resorted_queries = 0; // queries whose candidates were sorted again, ties by id
  size_t workspace_bytes = 0;  // device memory the batch used beyond index and outputs
  int sample_stride = 0;
  bool flat_candidates = false;  // one pool for the batch (large k), not a buffer per query
  bool cached_filters = false;   // the filters' words came from the GpuFilterCache
  // A one-query IVF batch's words came from its probed lists' pass (launch_probed_list_plans).
  bool probed_list_words = false;
  // A one-query IVF batch's sample and inversion came from one pass over its probed lists'
  // sampled blocks (launch_probed_sample): cached words, or no filter.
  bool probed_sample = false;
  // A one-query IVF batch's collect was a warp per block of its probed lists, reading only the
  // eligible rows' codes under a filter (launch_probed_collect), not the fused scan.
  bool probed_collect = false;
  bool fused_top_k = false;  // the top k came from launch_fused_top_k (one kernel per query)
  bool carried_plans = false;  // the plans reached the GPU as the probe's launch parameters
};

// Owns the per-batch device buffers (grown on demand, reused across batches). Not thread-safe:
// one workspace per stream.
class GpuSearchWorkspace {
 public:
  GpuSearchWorkspace();
  ~GpuSearchWorkspace();
  GpuSearchWorkspace(const GpuSearchWorkspace&) = delete;
  GpuSearchWorkspace& operator=(const GpuSearchWorkspace&) = delete;

  struct Buffers;
  Buffers& buffers() { return *buffers_; }

 private:
  std::unique_ptr<Buffers> buffers_;
};

// Writes each query's best k rows (score descending, then id ascending) into device arrays
// scores/ids [n, k] (rows may be null); fewer than k eligible rows leave score -inf, id -1.
// Every returned row satisfies its query's filter exactly. Enqueued on `stream`; the call
// returns after the batch completed (it reads the rescue flags), stats may be null.
// Throws Error(kInvalidArgument) on bad shapes, Error(kInternal) on a CUDA error.
void run_gpu_search(const GpuIndexView& index, const GpuQueriesView& queries,
                    const GpuSearchOptions& options, float* scores, int64_t* ids, int64_t* rows,
                    GpuSearchWorkspace& workspace, GpuSearchStats* stats, cudaStream_t stream);

// The IVF probe alone: lists [n, nprobe] (device), best centroid scores first, ties by list id,
// skipping empty lists and lists whose Bloom summary rules out the query's filter.
void run_gpu_probe(const GpuIndexView& index, const GpuQueriesView& queries, int nprobe,
                   int32_t* lists, GpuSearchWorkspace& workspace, cudaStream_t stream);

}  // namespace argent
