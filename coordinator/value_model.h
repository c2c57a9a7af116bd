// The value model's side of reranking that needs no tensors: which blend weights a request gets,
// how a request's own weights are validated, and the final order of a query's candidates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace argent {

// value = sum_t task[t] * sigmoid(logit_t) + retrieval * retrieval score.
struct ValueWeights {
  std::vector<float> task;  // [T]
  float retrieval = 0.0f;
};

// The server's defaults: rerank.task_weights and rerank.retrieval_score_weight when the config
// sets task weights, else the weights stored in the model file (what training fitted).
ValueWeights default_value_weights(const RerankConfig& config,
                                   const std::vector<float>& model_task_weights,
                                   float model_retrieval_weight);

// Why a request's task weights `w` [n] are unusable for a model of `n_tasks` tasks, or "" when
// they are fine (n == 0 means "use the defaults"). Used by the gateway for INVALID_ARGUMENT.
std::string task_weights_problem(const float* w, int64_t n, int64_t n_tasks);

// The positions of the best min(k, m) of `m` candidates: value descending, ties by id ascending
// (a total order, so every backend and sharding returns the same list); NaN values rank last.
std::vector<int64_t> order_by_value(const float* values, const int64_t* ids, int64_t m, int64_t k);

}  // namespace argent
