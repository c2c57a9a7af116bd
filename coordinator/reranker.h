// Runs the reranker (coordinator/rerank_model.h) on the coordinator's device over a batch of
// queries x candidates, in chunks of rerank.chunk_rows candidates so that memory stays bounded
// whatever the depth:
//
//   x      = [user ; item ; user * item]                       per candidate, [3 * dim]
//   logits = heads(act(... act(W_0 x + b_0) ...))               [T]
//   value  = sum_t w_t * sigmoid(logit_t) + w_r * retrieval      w: the query's task weights
//
// The arithmetic is the same sequence of LibTorch operators as python/argent_rerank_model.py,
// so on the CPU the two agree to float32 rounding (tests/rerank_model_test.cc).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/rerank_model.h"

namespace argent {

// One batch to score: `m` candidates of `n_queries` queries, all host memory owned by the
// caller for the duration of score().
struct RerankBatch {
  int64_t n_queries = 0;
  const float* users = nullptr;         // [n_queries, dim]
  const float* task_weights = nullptr;  // [n_queries, T]: each query's value weights
  int64_t m = 0;
  const int64_t* query_of = nullptr;    // [m] in [0, n_queries): the query of each candidate
  const float* retrieval = nullptr;     // [m] retrieval scores
  float retrieval_weight = 0.0f;        // w_r
  // Writes the embeddings of candidates [begin, begin + count) to out [count, dim]; called once
  // per chunk, in order, so only a chunk of embeddings exists at a time.
  std::function<void(int64_t begin, int64_t count, float* out)> items;
};

class Reranker {
 public:
  // `device`: "cpu", "cuda" or "auto" (CUDA when LibTorch sees a GPU). Throws
  // Error(kInvalidArgument) for "cuda" without a usable GPU, or chunk_rows < 1.
  Reranker(RerankModel model, const std::string& device, int64_t chunk_rows);
  // On an explicit device (torch.ops.argent.rerank runs on its inputs' device).
  Reranker(RerankModel model, at::Device device, int64_t chunk_rows);

  // Scores a batch: task_scores [m, T] = sigmoid(logits), values [m]; both caller-owned host
  // memory. Thread-compatible (const, but LibTorch's intra-op threads are shared).
  void score(const RerankBatch& batch, float* task_scores, float* values) const;

  // The arithmetic of score() for m candidates already on device(), one row each: users and
  // items [m, dim], task weights [m, T], retrieval scores [m]. Returns task scores [m, T] =
  // sigmoid(logits) and values [m], on device(). score() runs it chunk by chunk.
  std::pair<at::Tensor, at::Tensor> score_rows(const at::Tensor& users, const at::Tensor& items,
                                               const at::Tensor& task_weights,
                                               const at::Tensor& retrieval,
                                               float retrieval_weight) const;

  const std::vector<std::string>& tasks() const { return model_.tasks; }
  int64_t dim() const { return model_.dim; }
  int64_t n_tasks() const { return int64_t(model_.tasks.size()); }
  const std::vector<float>& model_task_weights() const { return model_.task_weights; }
  float model_retrieval_weight() const { return model_.retrieval_weight; }
  at::Device device() const { return device_; }
  int64_t chunk_rows() const { return chunk_rows_; }

 private:
  at::Tensor forward_logits(const at::Tensor& user, const at::Tensor& item) const;

  RerankModel model_;  // its tensors live on device_
  at::Device device_;
  int64_t chunk_rows_;
};

// The device string of rerank.device resolved: "cuda" when asked or when auto finds a GPU.
at::Device resolve_rerank_device(const std::string& device);

}  // namespace argent
