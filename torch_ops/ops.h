// The torch.ops.argent operators that are not per-device kernels, shared by the CPU and CUDA
// registrations: host-only ops on strings and index directories (compile_filter, load_index,
// apply_updates) and ops written in ATen operators, which run on their inputs' device
// (gather_embeddings, rerank). Schemas: ops_cpu.cc; documentation: docs/torch.md.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>

#include <string>
#include <tuple>
#include <vector>

namespace argent::ops {

// compile_filter(str expression, int bloom_words, int bloom_hashes, int bloom_seed) -> int64
// [n_ops, 4]: each row one FilterOp (kernels/filter_plan.h) as raw bytes; "" gives [0, 4].
at::Tensor compile_filter_op(const std::string& expression, int64_t bloom_words,
                             int64_t bloom_hashes, int64_t bloom_seed);

// load_index(str path, float list_slack) -> Dict(str, Tensor): every partition of the index in
// `path` as one shard's tensors (shard/shard_index.h ShardTensors, same names), the centroids
// (float32 [nlist, dim], and quantized: centroid_codes, centroid_scales) and the manifest's
// scalars as 0-dim int64 tensors (dim, d_pad, normalize, nlist, partitions, bloom_words,
// bloom_hashes, bloom_seed). CPU tensors.
c10::Dict<std::string, at::Tensor> load_index_op(const std::string& path, double list_slack);

// apply_updates(index, upsert_ids int64 [m], upsert_embeddings float32 [m, dim],
// upsert_feature_offsets int64 [m + 1], upsert_feature_ids int32 [F], upsert_feature_values int64
// [F], delete_ids int64 [r]) -> index: the service's update path (prepare_upserts, then
// ShardIndex::upsert and ShardIndex::remove over a shard wrapping the dict's tensors), in place;
// tensors that had to grow are new. Upserts run before deletes.
c10::Dict<std::string, at::Tensor> apply_updates_op(
    const c10::Dict<std::string, at::Tensor>& index, const at::Tensor& upsert_ids,
    const at::Tensor& upsert_embeddings, const at::Tensor& upsert_feature_offsets,
    const at::Tensor& upsert_feature_ids, const at::Tensor& upsert_feature_values,
    const at::Tensor& delete_ids);

// gather_embeddings(codes int8 [rows * d_pad] blocked, scales float32 [rows], rows int64 [n, k],
// int dim) -> float32 [n, k, dim]: codes * scale of each row, as the index scores it (the
// coordinator's dequantization for the reranker); row -1 gives zeros.
at::Tensor gather_embeddings_op(const at::Tensor& codes, const at::Tensor& scales,
                                const at::Tensor& rows, int64_t dim);

// rerank(users [m, dim], items [m, dim], task_weights [m, T], retrieval [m],
// float retrieval_weight, weights[l] [h_l, in_l], biases[l] [h_l], head_weight [T, h], head_bias
// [T], str activation) -> (task_scores [m, T], values [m]): the coordinator's Reranker
// (coordinator/reranker.h) on the inputs' device.
std::tuple<at::Tensor, at::Tensor> rerank_op(const at::Tensor& users, const at::Tensor& items,
                                             const at::Tensor& task_weights,
                                             const at::Tensor& retrieval,
                                             double retrieval_weight, at::TensorList weights,
                                             at::TensorList biases, const at::Tensor& head_weight,
                                             const at::Tensor& head_bias,
                                             const std::string& activation);

}  // namespace argent::ops
