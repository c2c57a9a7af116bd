// One rank's part of a search step: decodes the broadcast step and runs the fused local search
// over the partitions this rank holds, writing its ShardBlock.
#pragma once

#include <cstdint>
#include <vector>

#include "common/config.h"
#include "coordinator/step_protocol.h"
#include "shard/shard_index.h"
#include "shard/shard_scanner.h"

namespace argent {

class ShardWorker {
 public:
  // search.threads, search.device (with cuda the shard is scanned on GPU `gpu`), search.module
  // and search.filter_cache_mb say how it scans (shard/shard_scanner.h).
  ShardWorker(ShardIndex shard, int rank, const SearchConfig& search, int gpu = 0);

  // Runs `step` and returns this rank's block (shard_block_bytes(n, k)).
  std::vector<uint8_t> search(const SearchStep& step) const;

  const ShardIndex& shard() const { return shard_; }
  // For the update path (coordinator/updater.h), which runs between searches on the same thread.
  ShardIndex& mutable_shard() {
    scanner_.invalidate();  // the caller is about to change the shard
    return shard_;
  }
  int rank() const { return rank_; }

 private:
  ShardIndex shard_;
  int rank_;
  int threads_;
  mutable ShardScanner scanner_;  // search() is logically const; the GPU copy is a cache
};

// The index-wide list sizes and Bloom summaries the prober needs: sums and ORs over every rank's
// lists, gathered over `comm`'s host collectives. Every rank must call it.
struct GlobalLists {
  std::vector<int64_t> sizes;       // [nlist]
  std::vector<uint64_t> summaries;  // [nlist, bloom words]
};
class Communicator;
GlobalLists gather_global_lists(Communicator& comm, const ShardIndex& shard);

// Each rank's live items per partition, [ranks * partitions] in rank order (a stats step, and
// after each partition move). Every rank must call it.
std::vector<int64_t> gather_partition_items(Communicator& comm, const ShardIndex& shard);
// The load those items make: per rank (summed over its partitions) and per partition (summed
// over ranks; a partition is on one rank at a time).
struct PartitionLoad {
  std::vector<int64_t> per_rank;       // [ranks]
  std::vector<int64_t> per_partition;  // [partitions]
};
PartitionLoad partition_load(const std::vector<int64_t>& gathered, int ranks, int32_t partitions);

}  // namespace argent
