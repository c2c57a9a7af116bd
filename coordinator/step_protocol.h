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
#include <string>
#include <vector>

#include "kernels/filter_plan.h"
#include "shard/query_batch.h"

namespace argent {

// kMutate and kSnapshot: coordinator/mutation_step.h and coordinator/updater.h; the kMove*
// steps of a rebalance: coordinator/partition_mover.h. kStats is also the heartbeat of an idle
// coordinator (coordinator/server.cc). Values are fixed: they travel in every header.
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

// Every rank checks each header it receives (check_step_header): the sequence number must be the
// one after the last step it ran, and a search step's decoded payload must have the header's
// sizes; the coordinator checks that every rank's ShardBlockHeader echoes the same step, batch
// and sizes (check_shard_block). A rank that skipped, reordered or misread a step is caught
// there, with an error naming the rank and both values, instead of being merged.
struct StepHeader {
  uint32_t magic = 0x41524753;  // "SGRA"
  int32_t op = 0;
  uint64_t step = 0;            // sequence number: 1, 2, ... over every step of the job
  int64_t payload_bytes = 0;
  uint64_t batch = 0;           // kSearch: the search batch number (1, 2, ...); else 0
  int64_t n = 0;                // kSearch: queries in the batch; kMutate: requests; kMove*: the
                                // partition moved (checked against the payload)
  int64_t k = 0;                // kSearch: results per query per rank
};
static_assert(sizeof(StepHeader) == 48, "StepHeader is broadcast as raw bytes");

const char* step_op_name(int32_t op);

// On every rank but 0, for each header received after step `previous`: throws Error(kDataLoss)
// naming `rank` and both values when the magic is wrong or the step is not previous + 1.
void check_step_header(const StepHeader& h, uint64_t previous, int rank);

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
// On each rank, after decoding a search step: its sizes must be the header's. Throws
// Error(kDataLoss) naming `rank`, the field and both values.
void check_search_step(const StepHeader& h, const SearchStep& step, int rank);

// A rank's answer to a search step: [n, k] scores (descending, -inf pads) and ids (-1 pads);
// with `code_dims` = d_pad > 0 (a step with_codes) also [n, k] item scales and [n, k, d_pad]
// row-major int8 codes of those rows (zeros for padding). code_dims = 0 is the plain block.
struct ShardBlockHeader {
  int32_t rank = 0;
  float search_ms = 0;
  int64_t items = 0;
  uint64_t step = 0;   // the StepHeader this block answers: step, batch, n and k, echoed
  uint64_t batch = 0;
  int64_t n = 0;
  int64_t k = 0;
};
static_assert(sizeof(ShardBlockHeader) == 48, "ShardBlockHeader is gathered as raw bytes");

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
// Writes `h`'s step, batch, n and k into the header of `block` (a rank's answer to `h`).
void stamp_shard_block(std::vector<uint8_t>& block, const StepHeader& h);
// On the coordinator, for the block gathered from `rank`: it must come from `rank` and echo
// `h`'s step, batch, n and k. Returns "" when it does, else the mismatch, e.g. "rank 2 answered
// step 18 (batch 9) with k = 11, expected k = 10".
std::string shard_block_mismatch(const ShardBlockHeader& block, int rank, const StepHeader& h);
// Writable pointers into a block being filled; `item_scales`/`codes` only with code_dims > 0.
void shard_block_pointers(uint8_t* block, int64_t n, int64_t k, ShardBlockHeader** header,
                          float** scores, int64_t** ids, int32_t code_dims = 0,
                          float** item_scales = nullptr, int8_t** codes = nullptr);

}  // namespace argent
