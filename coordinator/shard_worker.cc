#include "coordinator/shard_worker.h"

#include <omp.h>

#include <algorithm>
#include <chrono>

#include "collectives/communicator.h"
#include "common/error.h"
#include "kernels/layout.h"
#include "shard/local_engine.h"

namespace argent {

ShardWorker::ShardWorker(ShardIndex shard, int rank, const SearchConfig& search, int gpu)
    : shard_(std::move(shard)), rank_(rank), threads_(search.threads), scanner_(search, gpu) {}

std::vector<uint8_t> ShardWorker::search(const SearchStep& step) const {
  const int64_t n = step.queries.n, k = step.k;
  const int32_t d_pad = shard_.meta().d_pad;
  const int32_t code_dims = step.with_codes ? d_pad : 0;
  std::vector<uint8_t> block(shard_block_bytes(n, k, code_dims));
  ShardBlockHeader* header;
  float *scores, *item_scales = nullptr;
  int64_t* ids;
  int8_t* codes = nullptr;
  shard_block_pointers(block.data(), n, k, &header, &scores, &ids, code_dims, &item_scales,
                       &codes);
  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> rows;
  if (step.with_codes) rows.resize(static_cast<size_t>(n * k));
  scanner_.scan(shard_, step.queries, step.nprobe > 0 ? step.lists.data() : nullptr, step.nprobe,
                k, threads_, scores, ids, step.with_codes ? rows.data() : nullptr, nullptr);
  if (step.with_codes) {
    // Rows leave the blocked layout as plain [d_pad] code vectors; the coordinator dequantizes
    // them (codes * scale) exactly as the index scored them.
    const ShardTensors& t = shard_.tensors();
    const int8_t* blocked = t.codes.data_ptr<int8_t>();
    const float* row_scales = t.scales.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(threads_ > 0 ? threads_ : omp_get_max_threads())
    for (int64_t i = 0; i < n * k; ++i) {
      int8_t* out = codes + i * d_pad;
      const int64_t row = rows[size_t(i)];
      if (row < 0) {
        std::fill(out, out + d_pad, int8_t(0));
        item_scales[i] = 0.0f;
        continue;
      }
      for (int32_t j = 0; j < d_pad; ++j) out[j] = blocked[code_offset(row, d_pad, j)];
      item_scales[i] = row_scales[row];
    }
  }
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

std::vector<int64_t> gather_partition_items(Communicator& comm, const ShardIndex& shard) {
  const std::vector<int64_t> mine = shard.items_per_partition();
  std::vector<int64_t> all(mine.size() * size_t(comm.size()));
  comm.all_gather_host(mine.data(), all.data(), mine.size() * sizeof(int64_t));
  return all;
}

PartitionLoad partition_load(const std::vector<int64_t>& gathered, int ranks, int32_t partitions) {
  ARGENT_CHECK(gathered.size() == size_t(ranks) * size_t(partitions), "partition load: ",
               gathered.size(), " counts for ", ranks, " ranks x ", partitions, " partitions");
  PartitionLoad load;
  load.per_rank.assign(size_t(ranks), 0);
  load.per_partition.assign(size_t(partitions), 0);
  for (int r = 0; r < ranks; ++r)
    for (int32_t p = 0; p < partitions; ++p) {
      const int64_t n = gathered[size_t(r) * size_t(partitions) + size_t(p)];
      load.per_rank[size_t(r)] += n;
      load.per_partition[size_t(p)] += n;
    }
  return load;
}

}  // namespace argent
