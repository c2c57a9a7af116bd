// What the coordinator and the shards exchange each step (docs/architecture.md, "Serving").
//
//   1. StepHeader, broadcast from rank 0 over the control (MPI) communicator: what this step is.
//   2. For kSearch, the SearchStep payload, broadcast over the data communicator: the batch's
//      quantized queries, compiled filter plans, probed lists and k.
//   3. Every rank answers with one ShardBlock of the same size, all-gathered to rank 0: per query
//      its best k rows (score, id) and the rank's timing; when the coordinator reranks, also
//      those rows' int8 codes and scales, so it can dequantize each candidate's embedding.
//
// Payloads are flat little-endian byte strings with explicit sizes; decoding checks every size
// against the bytes received, so a corrupt step fails loudly instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/filter_plan.h"
#include "shard/query_batch.h"

namespace argent {

// kMutate and kSnapshot: coordinator/mutation_step.h and coordinator/updater.h; the kMove*
// steps of a rebalance: coordinator/partition_mover.h.
enum class StepOp : int32_t {
  kSearch = 1,
  kStats = 2,
  kShutdown = 3,
  kMutate = 4,
  kSnapshot = 5,
  kMoveBegin = 6,
  kMoveChunk = 7,
  kMoveCommit = 8,
  kMoveAbort = 9,
};

struct StepHeader {
  uint32_t magic = 0x41524753;  // "SGRA"
  int32_t op = 0;
  uint64_t step = 0;
  int64_t payload_bytes = 0;
};
static_assert(sizeof(StepHeader) == 24, "StepHeader is broadcast as raw bytes");

// One search step, as broadcast. `lists` is [n, nprobe] (nprobe = 0: scan every list).
struct SearchStep {
  QueryBatch queries;
  int64_t k = 0;
  int32_t nprobe = 0;
  std::vector<int32_t> lists;
  bool with_codes = false;  // blocks carry each result row's codes and scale (for the reranker)
};

std::vector<uint8_t> encode_search_step(const SearchStep& step);
// Throws Error(kDataLoss) when `bytes` is not a well-formed step for an index of `d_pad` and
// `bloom_words` (sizes, plan stack discipline, Bloom words and list numbers in range).
SearchStep decode_search_step(const std::vector<uint8_t>& bytes, int32_t d_pad, int32_t bloom_words,
                              int64_t nlist);

// A rank's answer to a search step: [n, k] scores (descending, -inf pads) and ids (-1 pads);
// with `code_dims` = d_pad > 0 (a step with_codes) also [n, k] item scales and [n, k, d_pad]
// row-major int8 codes of those rows (zeros for padding). code_dims = 0 is the plain block.
struct ShardBlockHeader {
  int32_t rank = 0;
  float search_ms = 0;
  int64_t items = 0;
};
static_assert(sizeof(ShardBlockHeader) == 16, "ShardBlockHeader is gathered as raw bytes");

size_t shard_block_bytes(int64_t n, int64_t k, int32_t code_dims = 0);

// Views of one rank's block inside a gathered buffer.
struct ShardBlockView {
  const ShardBlockHeader* header;
  const float* scores;   // [n, k]
  const int64_t* ids;    // [n, k]
  const float* item_scales = nullptr;  // [n, k], or null without codes
  const int8_t* codes = nullptr;       // [n, k, code_dims], or null without codes
};
ShardBlockView shard_block(const uint8_t* block, int64_t n, int64_t k, int32_t code_dims = 0);
// Writable pointers into a block being filled; `item_scales`/`codes` only with code_dims > 0.
void shard_block_pointers(uint8_t* block, int64_t n, int64_t k, ShardBlockHeader** header,
                          float** scores, int64_t** ids, int32_t code_dims = 0,
                          float** item_scales = nullptr, int8_t** codes = nullptr);

}  // namespace argent
