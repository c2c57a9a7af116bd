// The steps of run_gpu_search (kernels/cuda/gpu_search.h), each behind a host launcher.
// Internal to kernels/cuda: host-only declarations, device pointers throughout.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/gpu_search.h"

namespace argent {
namespace cuda {

// Candidate rows carry a flag in bit 31: the Bloom plan passed without being definite, so the
// exact feature check is still due (done after the sort, for the candidates near the top only).
constexpr int32_t kNeedsCheck = int32_t(0x80000000u);
constexpr int32_t kRowMask = 0x7FFFFFFF;

// Which queries scan which lists, list-major: list l is scanned by
// list_queries[list_start[l] .. list_start[l] + list_count[l]).
struct ListQueries {
  const int32_t* start = nullptr;    // [n_lists]
  const int32_t* count = nullptr;    // [n_lists]
  const int32_t* queries = nullptr;  // [pairs]
};

// One pass of the fused scan over the chunks `tasks[0 .. *n_tasks)`.
//  * sample mode (out_rows == null): only blocks whose index is a multiple of `sample_stride`,
//    no threshold; appends the scores of eligible rows to out_scores[q * cap + i].
//  * collect mode: every block; appends (score, row) of eligible rows scoring >= thresholds[q]
//    to out_scores/out_rows[q * cap + i]; out_count[q] counts appends (it may exceed cap: the
//    overflow is detected later).
//  * flat collect (out_keys set): the batch's candidates share `cap` slots, in no particular
//    order: out_keys[i] = (query << 32) | descending_key(score), out_rows[i] the row; slots
//    left empty keep what the caller put there. *out_fill counts the slots reserved, including
//    up to flat_slack that the warps reserved and left empty; out_dropped[q] counts query q's
//    candidates that found no slot (the pool overflowed: that query is re-run).
struct ScanPass {
  const float* thresholds = nullptr;  // [n]; null: -inf (sample mode)
  int sample_stride = 1;
  uint32_t* out_count = nullptr;  // [n], zeroed by the caller
  float* out_scores = nullptr;    // [n, cap]
  int32_t* out_rows = nullptr;    // [n, cap] or null
  int64_t cap = 0;
  uint64_t* out_keys = nullptr;             // flat collect: [cap]
  unsigned long long* out_fill = nullptr;   // flat collect, zeroed by the caller
  uint32_t* out_dropped = nullptr;          // flat collect: [n], zeroed by the caller
  int64_t flat_slack = 0;
  // Collect mode: run liveness and the exact feature check here rather than after the sort, so
  // only eligible rows take slots (a threshold that is the exact k-th score leaves no room for
  // Bloom false positives).
  bool check_inline = false;
  // Per-query collect: queue the hits per warp and take them through the exact path 32 at a
  // time (the flat collect always does). It pays where most runs are one tile of queries
  // (IVF; unfiltered exact search of at most 8 queries) and the scan is a stream of loads.
  bool defer_hits = false;
  // The pre-pass words (bit r: row r of the block possibly eligible, bit 16 + r: definitely),
  // or null: the scan evaluates signatures. pair_stride == 0: [n_plans][n_rows / 16] from
  // launch_block_plans (or launch_probed_list_plans, or the filter cache); pair_stride > 0:
  // from launch_pair_plans, the words of pair p (position p of ListQueries::queries) at
  // p * pair_stride + (block - its list's first block).
  const uint32_t* block_plans = nullptr;
  int64_t pair_stride = 0;
  // With block_plans: the rows left possibly eligible (eligible, where the words are exact),
  // per plan followed by the rows evaluated (launch_block_plans), or per pair (pair_rows,
  // launch_pair_plans).
  const unsigned long long* plan_rows = nullptr;
  const uint32_t* pair_rows = nullptr;
  // The pre-pass words are exact for every block this pass reads (its sample_stride divides
  // them all): a row whose word says possible is live and passes the feature check, so neither
  // is checked again.
  bool exact_words = false;
  // Sample mode, unfiltered exact search: every query scans every sampled block, so row r of
  // sampled block b has slot (b / sample_stride) * 16 + r of each query's buffer, and the scan
  // writes it (-inf for a row that is empty or past its list's end) with no count or atomic.
  // out_count is not written; the caller fills out_scores with 0xFF bytes first (slots of
  // blocks no chunk covers keep that, an empty key to launch_select_thresholds).
  bool dense_sample = false;
};

// Batches with at most kMaxBlockPlans distinct plans: every plan evaluated once per row of the
// chunks tasks[0 .. *n_tasks) into out[plan * (n_rows / 16) + block]: bit r = row r of the block
// possibly eligible, bit 16 + r = definitely eligible (Bloom). Rows of other blocks are unset.
// row_counts [n_plans + 1]: the rows each plan left possible, then the rows evaluated (the scan
// takes a plan's selectivity from them). The rows of blocks whose index is a multiple of
// sample_stride (those the sample pass reads; 0: none) get exact bits instead: possible and
// definite iff the row is live and passes the exact feature check (ScanPass::exact_words).
constexpr int kMaxBlockPlans = 4;
void launch_block_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                        const ListQueries& lists, const int32_t* tasks, const int32_t* n_tasks,
                        int n_plans, int sample_stride, uint32_t* out,
                        unsigned long long* row_counts, cudaStream_t stream);

// IVF batches with more distinct plans than that: each (query, probed list) pair's plan once
// per row of its list, into out[pair * stride + block - the list's first block] (the same words
// as launch_block_plans), and the pair's possibly eligible rows into pair_rows[pair]. Pairs of
// unfiltered queries get no words and a count of 0. The scan then treats a run's queries as its
// local plans, and a run of one query under a selective filter gathers only the rows it can
// pass, as a uniform run does. Sampled blocks get exact bits, as in launch_block_plans.
void launch_pair_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                       const ListQueries& lists, const int32_t* tasks, const int32_t* n_tasks,
                       int64_t n_pairs, int64_t stride, int sample_stride, uint32_t* out,
                       uint32_t* pair_rows, cudaStream_t stream);

void launch_scan(const GpuIndexView& index, const GpuQueriesView& queries,
                 const ListQueries& lists, const int32_t* tasks, const int32_t* n_tasks,
                 int max_queries_per_list, const ScanPass& pass, cudaStream_t stream);

// A caller's probes [n, nprobe], checked on the device so that no host round trip is needed:
// entries outside [-1, n_lists) and repeats of a list earlier in their row become -1 (no list)
// in `out` and are counted into *n_bad, which the caller reads at its synchronisation.
void launch_check_probes(const int32_t* probes, int64_t n, int nprobe, int64_t n_lists,
                         int32_t* out, int32_t* n_bad, cudaStream_t stream);

// Builds ListQueries from probes [n, nprobe] (or, with probes == null, every list), skipping
// empty lists and lists whose Bloom summary rules out the query's filter, then the list of
// chunks that some query scans (tasks, count in *n_tasks). Scratch buffers are caller-owned:
// list_count/list_fill/list_start [n_lists], list_queries [n * (probes ? nprobe : n_lists) + n],
// tasks [n_chunks], cub_temp of cub_temp_bytes (query with cub_temp == null first).
struct InvertBuffers {
  int32_t* list_count = nullptr;
  int32_t* list_fill = nullptr;
  int32_t* list_start = nullptr;
  int32_t* list_queries = nullptr;
  int32_t* tasks = nullptr;
  int32_t* n_tasks = nullptr;
  void* cub_temp = nullptr;
  size_t cub_temp_bytes = 0;
};
size_t invert_temp_bytes(const GpuIndexView& index);
void launch_invert(const GpuIndexView& index, const GpuQueriesView& queries,
                   const int32_t* probes, int nprobe, const InvertBuffers& b, cudaStream_t stream);

// An IVF batch of one query, in one launch: launch_block_plans' words and row_counts
// [n_plans + 1] for the query's plan (plan_of_query[0]; none for -1) over the rows of the lists
// in probes[0 .. nprobe) (-1: none; no list twice, as launch_check_probes and the probe ensure)
// whose Bloom summary admits it, but exact for every one of those rows (ScanPass::exact_words),
// and counting its eligible rows, not its possible ones, into row_counts zeroed by the caller;
// the sample pass's part (ScanPass sample mode, which the search then does not launch): the
// scores of the eligible rows of blocks whose index is a multiple of sample.stride, appended to
// sample.scores (the first sample.cap kept; *sample.count, zeroed by the caller, counts them
// all); and launch_invert's work for the query (inv's arrays, the same contents; its cub
// scratch is not used). nprobe: 1 to kMaxProbedSlots (each CTA keeps the slots' starts and
// first blocks in shared memory: 32 KiB at 2,048, under the 48 KiB a launch gets without
// raising its limit).
struct ProbedSample {
  int stride = 0;
  float* scores = nullptr;
  uint32_t* count = nullptr;
  int64_t cap = 0;
};
constexpr int kMaxProbedSlots = 2048;
// With a PassThreshold the pass also selects the query's threshold, as launch_select_thresholds
// would from the sample (which the search then does not launch): CTAs of their own draw the
// sample, and the last of them to finish selects while the others still write words. `done`
// is a counter zeroed by the caller. One CTA of kProbedThreads selects, so the search asks for
// it only where a query's sample is typically at most kMaxPassThresholdSample scores.
struct PassThreshold {
  int64_t rank = 0;
  float* out = nullptr;
  uint32_t* done = nullptr;
  int64_t typical_sample = 0;  // the sample's expected size (sizes the sampling CTAs)
};
constexpr int64_t kMaxPassThresholdSample = 16384;
void launch_probed_list_plans(const GpuIndexView& index, const GpuQueriesView& queries,
                              const int32_t* probes, int nprobe, uint32_t* out,
                              unsigned long long* row_counts, const ProbedSample& sample,
                              const InvertBuffers& inv, cudaStream_t stream,
                              const PassThreshold* threshold = nullptr);

// An IVF batch of one query whose rows' words are known or that has no filter, in one launch:
// launch_probed_list_plans' sample (the same scores: the eligible rows of blocks whose index is
// a multiple of sample.stride in the probed lists its plan's Bloom summary admits) and its
// inversion, reading only those blocks. Eligible: under the query's plan, the row's bit in
// words [n_plans][n_rows / 16], which must be exact for every row (the filter cache's); with
// no plan (plan_of_query null or -1), every live row.
void launch_probed_sample(const GpuIndexView& index, const GpuQueriesView& queries,
                          const int32_t* probes, int nprobe, const uint32_t* words,
                          const ProbedSample& sample, const InvertBuffers& inv,
                          cudaStream_t stream);

// The collect of an IVF batch of one query (ScanPass collect mode, per-query candidates) over
// the chunks tasks[0 .. *n_tasks) that launch_probed_list_plans or launch_probed_sample wrote
// (most_tasks bounds *n_tasks: the grid's size): every row scoring >= *threshold that is
// eligible is appended to out_scores/out_rows [cap], *out_count (zeroed by the caller) counting
// them all. Eligible: under the query's plan, the row's bit in words [n_plans][n_rows / 16],
// exact for every row (the pass's or the filter cache's), so the emit checks nothing; with no
// plan, every row of the lists (liveness left to the emit), or with check_live only live rows
// (ScanPass::check_inline).
struct ProbedCollect {
  const float* threshold = nullptr;
  const uint32_t* words = nullptr;
  bool check_live = false;
  float* out_scores = nullptr;
  int32_t* out_rows = nullptr;
  uint32_t* out_count = nullptr;
  int64_t cap = 0;
};
void launch_probed_collect(const GpuIndexView& index, const GpuQueriesView& queries,
                           const int32_t* tasks, const int32_t* n_tasks, int64_t most_tasks,
                           const ProbedCollect& c, cudaStream_t stream);

// thresholds[q] = the rank[q]-th best of the sample scores [q * cap, + min(count[q], cap)), or
// of all cap slots with sample_count == null (ScanPass::dense_sample: slots of 0xFF bytes are
// empty); -inf when fewer than `rank` samples exist.
void launch_select_thresholds(const float* sample_scores, const uint32_t* sample_count,
                              int64_t cap, int64_t n, int64_t rank, float* thresholds,
                              cudaStream_t stream);

// Where the collect pass left a batch's candidates: per query, or flat (ScanPass::out_keys).
struct Candidates {
  int64_t n = 0;  // queries
  // Per query: scores/rows [n, cap] and count[n] (> cap: the query's buffer overflowed).
  // Flat: cap slots in all, in pair `current` of keys/rows; the other two pairs are scratch of
  // cap entries each, and the sort leaves its result in one of the three (current says which).
  // dropped: the collect pass's ScanPass::out_dropped (> 0: the query is re-run).
  // segments [2n]: written by launch_sort_and_emit, each query's first entry in the sorted
  // pair, then its number of entries.
  int64_t cap = 0;
  const float* scores = nullptr;
  const int32_t* rows = nullptr;
  const uint32_t* count = nullptr;
  bool flat = false;
  uint64_t* keys[3] = {nullptr, nullptr, nullptr};
  int32_t* flat_rows[3] = {nullptr, nullptr, nullptr};
  int current = 0;
  const uint32_t* dropped = nullptr;
  int32_t* segments = nullptr;
  int64_t slots() const { return flat ? cap : n * cap; }  // all of the batch's
};

// Flat candidates for large k, where a buffer per query would pass 2^17 slots: one pool sized
// for the batch (a smaller margin than per query), one sort of the whole batch, and the scan's
// hits deferred instead of appended in place (H200, K = 100,000, B = 64: collect 7.3 -> 4.2
// ms, sort 2.26 -> 2.0 ms unfiltered; 4.88 -> 2.89 ms collect under a 10 % filter). Below that the in-place append to per-query
// buffers costs nothing measurable, and B = 1 IVF measured ~50 us slower flat.
bool flat_candidates(int64_t cap_per_query);

// Sorts the candidates of every query (score descending, ties by id) and writes the first k.
// Per query, keys/values (+ alt copies) [n * cap] (unused when flat), cub_temp: see
// sort_temp_bytes. Sets rescue[q] to kRescueRerun for a query whose buffer overflowed or that
// has fewer than k candidates while thresholds[q] > -inf (its candidates are not enough), to
// kRescueResort for one whose results meet a long run of equal scores left unsorted (its
// candidates are right, their order is not), and counts both in *n_rescue (zeroed by the
// caller).
struct SortBuffers {
  uint64_t* keys[2];
  int32_t* values[2];
  void* cub_temp;
  size_t cub_temp_bytes;
};
constexpr int32_t kRescueRerun = 1;
constexpr int32_t kRescueResort = 2;
size_t sort_temp_bytes(const Candidates& c, bool stable_ties);
// stable_ties: order equal scores by id with a radix sort by id first (any run length); else
// short runs are ordered in place and a query whose results reach a long run is flagged
// kRescueResort (the same candidates sorted again with stable_ties set). prune: a segmented
// sort (per-query candidates, not stable_ties) first drops the candidates that cannot reach the
// first k valid ones (cheap only where few are flagged for the exact check).
void launch_sort_and_emit(const GpuIndexView& index, const GpuQueriesView& queries,
                          Candidates& c, const float* thresholds, int64_t k, bool stable_ties,
                          bool prune, const SortBuffers& b, float* scores, int64_t* ids,
                          int64_t* rows, int32_t* rescue, int32_t* n_rescue, cudaStream_t stream);

// The same result as launch_sort_and_emit, in one kernel (kernels/cuda/top_k_kernel.cu), for
// per-query candidate buffers (not flat), k <= kFusedTopKMaxK and no stable_ties: each query's
// bound of its first k valid candidates (the flagged ones above it checked exactly), then a sort
// of those in shared memory by (score, id). Uses b.keys[0] and b.values[0] as scratch (no
// cub_temp). rescue/n_rescue as launch_sort_and_emit's; kRescueResort marks a query with more
// than 2 * kFusedTopKMaxK candidates at or above its bound (ties at the bound), whose results
// it leaves unwritten.
constexpr int64_t kFusedTopKMaxK = 2048;
bool fused_top_k(const Candidates& c, int64_t k, bool stable_ties);
void launch_fused_top_k(const GpuIndexView& index, const GpuQueriesView& queries,
                        const Candidates& c, const float* thresholds, int64_t k,
                        const SortBuffers& b, float* scores, int64_t* ids, int64_t* rows,
                        int32_t* rescue, int32_t* n_rescue, cudaStream_t stream);

// A one-query batch's packed plan arrays (UnsentPlans) as launch parameters of its probe: the
// probe evaluates the query's plan on the lists' Bloom summaries from them, and its first CTA
// stores them at `device` for the later steps, so the batch sends no copy ahead of the probe.
struct CarriedPlans {
  alignas(16) unsigned char bytes[kMaxCarriedPlanBytes];
  unsigned char* device;
  uint32_t n_bytes;
  int32_t plan;         // the query's plan, -1: none
  uint32_t ops_offset;  // its ops' byte offset in `bytes`
  int32_t n_ops;
};

// The IVF probe: dense centroid scores [n, n_lists] into `dense` (caller-owned), then the best
// nprobe usable lists per query into lists [n, nprobe]. clear_words > 0: the select also zeroes
// clear[0, clear_words) (a later step's counters, without a memset of their own). carried:
// queries.n == 1, whose plans the launch carries (queries' plan fields point at
// carried->device, not written until then).
void launch_probe(const GpuIndexView& index, const GpuQueriesView& queries, int nprobe,
                  float* dense, int32_t* lists, cudaStream_t stream, uint32_t* clear = nullptr,
                  int clear_words = 0, const CarriedPlans* carried = nullptr);

}  // namespace cuda
}  // namespace argent
