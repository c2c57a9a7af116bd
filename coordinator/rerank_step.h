// The coordinator's rerank of one gathered search step: every query's merged retrieval
// candidates are dequantized from the codes their ranks sent, scored by the Reranker in one
// batch over queries x candidates, and cut to each query's best k by blended value.
#pragma once

#include <cstdint>
#include <vector>

#include "coordinator/merge.h"
#include "coordinator/reranker.h"
#include "coordinator/step_protocol.h"

namespace argent {

struct RerankQuery {
  const MergedResult* candidates = nullptr;  // retrieval top-depth, with rank and position
  int64_t block_row = 0;                     // the query's row in the step's blocks
  const float* user = nullptr;               // [dim] the query embedding
  std::vector<float> task_weights;           // [T]
  int64_t k = 0;                             // results to keep
};

struct RerankedResult {
  std::vector<int64_t> ids;                    // best first: value desc, then id asc
  std::vector<float> retrieval_scores;         // [k]
  std::vector<float> values;                   // [k]
  std::vector<std::vector<float>> task_scores;  // [T][k], sigmoid of each task's logit
};

// `blocks` are the ranks' views of the step (with codes, code_dims = d_pad), `block_k` their k.
// With `normalize` (index.normalize) each user embedding is L2-normalized first, as the index
// normalized it for the search. Throws what Reranker::score throws.
std::vector<RerankedResult> rerank_step(const Reranker& reranker, float retrieval_weight,
                                        const std::vector<RerankQuery>& queries,
                                        const std::vector<ShardBlockView>& blocks,
                                        int64_t block_k, int dim, int d_pad, bool normalize);

}  // namespace argent
