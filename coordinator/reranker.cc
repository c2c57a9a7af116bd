#include "coordinator/reranker.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "common/error.h"

namespace argent {

at::Device resolve_rerank_device(const std::string& device) {
  ARGENT_CHECK(device == "cpu" || device == "cuda" || device == "auto", "rerank.device '", device,
               "' is not one of: auto, cpu, cuda");
  if (device == "cpu") return at::Device(at::kCPU);
  const bool has_gpu = at::hasCUDA();
  ARGENT_CHECK(has_gpu || device == "auto",
               "rerank.device = cuda, but LibTorch finds no CUDA device (this build's LibTorch "
               "may be CPU-only)");
  return has_gpu ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
}

Reranker::Reranker(RerankModel model, const std::string& device, int64_t chunk_rows)
    : Reranker(std::move(model), resolve_rerank_device(device), chunk_rows) {}

Reranker::Reranker(RerankModel model, at::Device device, int64_t chunk_rows)
    : model_(std::move(model)), device_(device), chunk_rows_(chunk_rows) {
  ARGENT_CHECK(chunk_rows_ >= 1, "rerank.chunk_rows ", chunk_rows_, " must be >= 1");
  ARGENT_CHECK(!model_.weights.empty() && model_.weights.size() == model_.biases.size(),
               "reranker: model has ", model_.weights.size(), " hidden layers");
  ARGENT_CHECK(model_.activation == "relu" || model_.activation == "gelu" ||
                   model_.activation == "tanh" || model_.activation == "silu",
               "reranker: activation '", model_.activation, "'");
  for (at::Tensor& t : model_.weights) t = t.to(device_);
  for (at::Tensor& t : model_.biases) t = t.to(device_);
  model_.head_weight = model_.head_weight.to(device_);
  model_.head_bias = model_.head_bias.to(device_);
}

at::Tensor Reranker::forward_logits(const at::Tensor& user, const at::Tensor& item) const {
  // The same operators, in the same order, as OverArch.forward in python/argent_rerank_model.py.
  at::Tensor h = at::cat({user, item, user * item}, 1);
  for (size_t l = 0; l < model_.weights.size(); ++l) {
    h = at::linear(h, model_.weights[l], model_.biases[l]);
    if (model_.activation == "relu") {
      h = at::relu(h);
    } else if (model_.activation == "gelu") {
      h = at::gelu(h);
    } else if (model_.activation == "tanh") {
      h = at::tanh(h);
    } else {
      h = at::silu(h);
    }
  }
  return at::linear(h, model_.head_weight, model_.head_bias);
}

std::pair<at::Tensor, at::Tensor> Reranker::score_rows(const at::Tensor& users,
                                                     const at::Tensor& items,
                                                     const at::Tensor& task_weights,
                                                     const at::Tensor& retrieval,
                                                     float retrieval_weight) const {
  const at::Tensor probs = at::sigmoid(forward_logits(users, items));
  // ValueModel.forward: (sigmoid(logits) * w).sum(1) + w_r * retrieval.
  const at::Tensor value = (probs * task_weights).sum(1) + retrieval * retrieval_weight;
  return {probs, value};
}

void Reranker::score(const RerankBatch& b, float* task_scores, float* values) const {
  const int64_t d = dim(), t = n_tasks();
  ARGENT_CHECK(b.n_queries >= 0 && b.m >= 0, "rerank: ", b.n_queries, " queries, ", b.m,
               " candidates");
  ARGENT_CHECK(b.m == 0 || (b.users && b.task_weights && b.query_of && b.retrieval && b.items),
               "rerank: batch of ", b.m, " candidates lacks an input");
  if (b.m == 0) return;
  for (int64_t i = 0; i < b.m; ++i)
    ARGENT_CHECK(b.query_of[i] >= 0 && b.query_of[i] < b.n_queries, "rerank: candidate ", i,
                 " belongs to query ", b.query_of[i], " of ", b.n_queries);
  c10::InferenceMode no_autograd;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  // from_blob views borrow the caller's memory; to(device_) is a no-op on the CPU.
  const at::Tensor users =
      at::from_blob(const_cast<float*>(b.users), {b.n_queries, d}, f32).to(device_);
  const at::Tensor weights =
      at::from_blob(const_cast<float*>(b.task_weights), {b.n_queries, t}, f32).to(device_);
  const at::Tensor query_of =
      at::from_blob(const_cast<int64_t*>(b.query_of), {b.m}, at::TensorOptions().dtype(at::kLong));
  const at::Tensor retrieval = at::from_blob(const_cast<float*>(b.retrieval), {b.m}, f32);
  const at::Tensor out_scores = at::from_blob(task_scores, {b.m, t}, f32);
  const at::Tensor out_values = at::from_blob(values, {b.m}, f32);
  // One staging buffer for the chunk's embeddings (page-locked when copied to a GPU).
  const int64_t chunk = std::min(chunk_rows_, b.m);
  const at::Tensor staging =
      at::empty({chunk, d}, f32.pinned_memory(device_.is_cuda()));

  for (int64_t begin = 0; begin < b.m; begin += chunk) {
    const int64_t count = std::min(chunk, b.m - begin);
    at::Tensor item = staging.narrow(0, 0, count);
    b.items(begin, count, item.data_ptr<float>());
    const at::Tensor rows = query_of.narrow(0, begin, count).to(device_);
    const auto [probs, value] =
        score_rows(users.index_select(0, rows), item.to(device_), weights.index_select(0, rows),
                   retrieval.narrow(0, begin, count).to(device_), b.retrieval_weight);
    out_scores.narrow(0, begin, count).copy_(probs);
    out_values.narrow(0, begin, count).copy_(value);
  }
}

}  // namespace argent
