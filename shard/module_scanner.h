// Serving a saved TorchScript retrieval module (python/argent/torch.py, ArgentRetrieval) as a
// shard's scan: search.module. The module's code is what runs; its index buffers are rebound to
// this shard's tensors (each rank holds its own partitions), so a model assembled and scripted in
// Python is exactly the graph the service executes, and streaming updates, which change the
// shard's tensors in place (shard/shard_update.cc), are the module's buffers changing.
//
// The module's `scan(query_codes, query_scales, query_bias, plan_ops, plan_spans, probes, k)`
// method calls torch.ops.argent.search; the program must link the operator library
// (torch_ops/, argent_torch_ops_objects) for the module to load.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "shard/query_batch.h"
#include "shard/shard_index.h"

namespace argent {

class ModuleScanner {
 public:
  // Loads the module (on the CPU) and checks it is an ArgentRetrieval of a format this build
  // reads. Throws Error(kInvalidArgument) naming the file and the problem.
  explicit ModuleScanner(const std::string& path);
  ~ModuleScanner();
  ModuleScanner(const ModuleScanner&) = delete;
  ModuleScanner& operator=(const ModuleScanner&) = delete;

  // Sets the module's index buffers to `shard`'s tensors (shared, not copied) after checking the
  // module was built for an index of the same dimension and Bloom parameters. Call again after
  // the shard changed (an update may reallocate a tensor).
  void bind(const ShardIndex& shard);

  // Runs the module's scan over `lists` [q.n, nprobe] (null: every list) into host arrays
  // scores/ids/rows [q.n, k] (rows may be null), as search_shard does. Not thread-safe.
  void scan(const QueryBatch& q, const int32_t* lists, int nprobe, int64_t k, float* scores,
            int64_t* ids, int64_t* rows);

 private:
  struct State;
  std::unique_ptr<State> s_;
  std::string path_;
};

}  // namespace argent
