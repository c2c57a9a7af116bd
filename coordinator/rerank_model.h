// The reranker's weights: an OverArch MLP over [user ; item ; user * item] with one head per task,
// and the value model's blend weights (docs/architecture.md, "Reranking"; the file is
// docs/formats.md, "Reranker model file"). python/argent_rerank_model.py defines the same model
// and writes the file; this side reads its tensors and checks them against the `rerank:` config.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace argent {

struct RerankModel {
  int64_t dim = 0;                 // user and item embedding dimension
  std::vector<std::string> tasks;  // one head per task, in this order
  std::string activation;          // relu, gelu, tanh or silu, after every hidden layer
  // Hidden layer l: weights[l] [hidden[l], in_l] and biases[l] [hidden[l]], in_0 = 3 * dim.
  std::vector<at::Tensor> weights, biases;
  at::Tensor head_weight;  // [T, hidden.back()]
  at::Tensor head_bias;    // [T]
  // The value model stored with the model (what training fitted).
  std::vector<float> task_weights;  // [T]
  float retrieval_weight = 0.0f;
};

// Reads a TorchScript reranker file and checks every shape and attribute against `config`
// (tasks, hidden, activation) and the index dimension `dim`. Tensors come back as contiguous
// float32 CPU tensors. Throws Error(kInvalidArgument) naming the file and the first mismatch,
// e.g. "model.pt: overarch.layers.1.weight is [64, 128], expected [32, 128] (rerank.hidden[1]
// = 32)", and for a file that is missing or is not such a module.
RerankModel load_rerank_model(const std::string& path, const RerankConfig& config, int64_t dim);

// Random weights of the configured shape (PyTorch's default Linear initialisation, seeded), for
// benchmarks that measure speed, not quality; value weights from config or all 1.
RerankModel random_rerank_model(const RerankConfig& config, int64_t dim, uint64_t seed);

}  // namespace argent
