// Recurring filters' eligibility over a whole index, kept on the GPU between batches: the
// filter cache search engines keep for frequent filters (Lucene's query cache), in the layout
// of the scan's pre-pass words.
//
// Without it, a batch of few distinct filters evaluates each filter's Bloom plan over the rows
// it scans (launch_block_plans), and Bloom-uncertain rows are checked exactly later, near the
// top of each query's candidates. An eligibility rule that returns batch after batch ("in stock
// AND region 3", shared by most queries) can instead be evaluated once over every row, exactly:
// liveness, Bloom plan and feature check. A batch that finds its filters here skips the
// pre-pass, and its sample and collect passes read exact words (ScanPass::exact_words): a row
// whose word says eligible is eligible, so no candidate needs a check after the sort.
//
// Which filters stay is kernels/cached_filter_set.h's policy: a filter enters on its second
// batch (a one-off filter would pay a pass over the whole index for nothing); when the cache is
// full the least recently used of the filters met less often than the newcomer go; a batch is
// served only when all its filters fit together. A batch of several cached filters also copies
// their words into one scratch area ([n_plans][n_rows / 16], outside max_bytes, counted in
// device_bytes()). Words are valid for the rows they were computed from: the owner calls
// refresh_blocks() with the blocks of the rows it wrote.
//
// Host-only header: compiles with g++ alone. Not thread-safe: one cache per index and stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "kernels/cached_filter_set.h"
#include "kernels/cuda/gpu_search.h"

namespace argent {

class GpuFilterCache {
 public:
  // max_bytes: the words kept, all filters together (one filter takes n_rows / 4 bytes: 20 MB
  // at 80M rows); 0 turns the cache off.
  explicit GpuFilterCache(size_t max_bytes);
  ~GpuFilterCache();
  GpuFilterCache(const GpuFilterCache&) = delete;
  GpuFilterCache& operator=(const GpuFilterCache&) = delete;

  // The words of a batch's plans (host copies: ops, first op and length of each of n_plans),
  // each [n_rows / 16] words with bit r and bit 16 + r both set iff row r of the block is live
  // and passes the filter exactly, laid out one plan after another in `words`
  // ([n_plans][n_rows / 16], launch_block_plans' layout), and their counts in `counts`
  // ([n_plans + 1]: each plan's eligible rows, then the index's live rows: the scan takes a
  // plan's selectivity from them). Filters that enter now are computed over the whole index on
  // `stream`. Returns false, enqueuing nothing, when the batch is not served (the cache is off,
  // a plan is new, or the plans do not fit together: CachedFilterSet::lookup). The pointers
  // stay valid until the next call. `peek`: a query's re-run inside a batch already looked up:
  // served only from what is cached, without counting a use or building anything.
  bool lookup(const GpuIndexView& index, const FilterOp* ops, const int32_t* begin,
              const int32_t* len, int n_plans, cudaStream_t stream, const uint32_t** words,
              const unsigned long long** counts, bool peek = false);

  // Recomputes every filter's words of the 16-row blocks blocks[0 .. n_blocks) (device memory,
  // distinct), whose rows were written (in place: the index's tensors are the same), on
  // `stream` after the writes' copies; live_rows: the index's live rows after the writes. An
  // index that is not the one the words describe clears the cache.
  void refresh_blocks(const ScanIndexView& index, const int64_t* blocks, int64_t n_blocks,
                      int64_t live_rows, cudaStream_t stream);
  // Drops every filter's words (the index was replaced or rebuilt); each is computed again on
  // its next batch.
  void clear();
  void set_capacity(size_t max_bytes);

  size_t device_bytes() const;
  using Stats = CachedFilterSet::Stats;  // hits: batches served
  const Stats& stats() const { return set_.stats(); }

 private:
  struct Entry;

  CachedFilterSet set_;
  // The index the words describe; another one clears the cache.
  const int8_t* codes_ = nullptr;
  int64_t n_rows_ = 0;
  // A batch of several plans gets its words copied here, one plan after another.
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace argent
