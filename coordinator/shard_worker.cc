#include "coordinator/shard_worker.h"

#include <chrono>

#include "collectives/communicator.h"
#include "shard/local_engine.h"

namespace argent {

ShardWorker::ShardWorker(ShardIndex shard, int rank, int threads)
    : shard_(std::move(shard)), rank_(rank), threads_(threads) {}

std::vector<uint8_t> ShardWorker::search(const SearchStep& step) const {
  const int64_t n = step.queries.n, k = step.k;
  std::vector<uint8_t> block(shard_block_bytes(n, k));
  ShardBlockHeader* header;
  float* scores;
  int64_t* ids;
  shard_block_pointers(block.data(), n, k, &header, &scores, &ids);
  const auto start = std::chrono::steady_clock::now();
  search_shard(shard_, step.queries, step.nprobe > 0 ? step.lists.data() : nullptr, step.nprobe,
               k, threads_, scores, ids, nullptr, nullptr);
  header->rank = rank_;
  header->search_ms =
      std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - start).count();
  header->items = shard_.n_items();
  return block;
}

GlobalLists gather_global_lists(Communicator& comm, const ShardIndex& shard) {
  const ShardTensors& t = shard.tensors();
  const int64_t nlist = shard.meta().nlist;
  const int64_t words = shard.meta().bloom.words;
  const size_t ranks = size_t(comm.size());

  std::vector<int64_t> sizes(size_t(nlist) * ranks);
  comm.all_gather_host(t.list_sizes.data_ptr<int64_t>(), sizes.data(),
                       size_t(nlist) * sizeof(int64_t));
  std::vector<uint64_t> summaries(size_t(nlist * words) * ranks);
  comm.all_gather_host(t.list_summaries.data_ptr(), summaries.data(),
                       size_t(nlist * words) * sizeof(uint64_t));

  GlobalLists g;
  g.sizes.assign(size_t(nlist), 0);
  g.summaries.assign(size_t(nlist * words), 0);
  for (size_t r = 0; r < ranks; ++r) {
    for (int64_t l = 0; l < nlist; ++l) g.sizes[size_t(l)] += sizes[r * size_t(nlist) + size_t(l)];
    for (int64_t w = 0; w < nlist * words; ++w)
      g.summaries[size_t(w)] |= summaries[r * size_t(nlist * words) + size_t(w)];
  }
  return g;
}

}  // namespace argent
