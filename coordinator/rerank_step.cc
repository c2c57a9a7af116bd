#include "coordinator/rerank_step.h"

#include <cmath>

#include "common/error.h"
#include "coordinator/value_model.h"
#include "kernels/cpu/quantize.h"

namespace argent {

std::vector<RerankedResult> rerank_step(const Reranker& reranker, float retrieval_weight,
                                        const std::vector<RerankQuery>& queries,
                                        const std::vector<ShardBlockView>& blocks,
                                        int64_t block_k, int dim, int d_pad, bool normalize) {
  const int64_t n = int64_t(queries.size()), t = reranker.n_tasks();
  ARGENT_ASSERT(reranker.dim() == dim, "reranker dim ", reranker.dim(), " != index dim ", dim);
  std::vector<float> users(size_t(n * dim)), weights(size_t(n * t));
  std::vector<int64_t> offset(size_t(n + 1), 0);
  for (int64_t q = 0; q < n; ++q) {
    const RerankQuery& rq = queries[size_t(q)];
    ARGENT_ASSERT(int64_t(rq.task_weights.size()) == t, "query ", q, " has ",
                  rq.task_weights.size(), " task weights");
    double norm2 = 0;
    for (int j = 0; j < dim; ++j) norm2 += double(rq.user[j]) * rq.user[j];
    const double inv = normalize && norm2 > 0 ? 1.0 / std::sqrt(norm2) : 1.0;
    for (int j = 0; j < dim; ++j) users[size_t(q * dim + j)] = float(rq.user[j] * inv);
    std::copy(rq.task_weights.begin(), rq.task_weights.end(), weights.begin() + q * t);
    offset[size_t(q + 1)] = offset[size_t(q)] + int64_t(rq.candidates->ids.size());
  }
  // Flat candidate arrays: query, retrieval score, and where its codes and scale are.
  const int64_t m = offset.back();
  std::vector<int64_t> query_of(static_cast<size_t>(m));
  std::vector<float> retrieval(static_cast<size_t>(m)), scales(static_cast<size_t>(m));
  std::vector<const int8_t*> codes(static_cast<size_t>(m));
  for (int64_t q = 0; q < n; ++q) {
    const RerankQuery& rq = queries[size_t(q)];
    const MergedResult& c = *rq.candidates;
    for (size_t j = 0; j < c.ids.size(); ++j) {
      const size_t i = size_t(offset[size_t(q)]) + j;
      const ShardBlockView& b = blocks[size_t(c.ranks[j])];
      ARGENT_ASSERT(b.codes != nullptr, "rank ", c.ranks[j], "'s block carries no codes");
      const int64_t at = rq.block_row * block_k + c.positions[j];
      query_of[i] = q;
      retrieval[i] = c.scores[j];
      codes[i] = b.codes + at * d_pad;
      scales[i] = b.item_scales[at];
    }
  }

  RerankBatch batch;
  batch.n_queries = n;
  batch.users = users.data();
  batch.task_weights = weights.data();
  batch.m = m;
  batch.query_of = query_of.data();
  batch.retrieval = retrieval.data();
  batch.retrieval_weight = retrieval_weight;
  std::vector<int8_t> chunk_codes;
  batch.items = [&](int64_t begin, int64_t count, float* out) {
    // Gather the chunk's codes next to each other, then dequantize them in one pass.
    chunk_codes.resize(size_t(count * d_pad));
    for (int64_t i = 0; i < count; ++i)
      std::copy(codes[size_t(begin + i)], codes[size_t(begin + i)] + d_pad,
                chunk_codes.begin() + i * d_pad);
    dequantize_rows(chunk_codes.data(), scales.data() + begin, count, dim, d_pad, out);
  };
  std::vector<float> task_scores(size_t(m * t)), values(static_cast<size_t>(m));
  reranker.score(batch, task_scores.data(), values.data());

  std::vector<RerankedResult> out(static_cast<size_t>(n));
  for (int64_t q = 0; q < n; ++q) {
    const MergedResult& c = *queries[size_t(q)].candidates;
    const int64_t first = offset[size_t(q)], count = offset[size_t(q + 1)] - first;
    const std::vector<int64_t> best =
        order_by_value(values.data() + first, c.ids.data(), count, queries[size_t(q)].k);
    RerankedResult& r = out[size_t(q)];
    r.task_scores.assign(size_t(t), {});
    for (int64_t j : best) {
      r.ids.push_back(c.ids[size_t(j)]);
      r.retrieval_scores.push_back(c.scores[size_t(j)]);
      r.values.push_back(values[size_t(first + j)]);
      for (int64_t task = 0; task < t; ++task)
        r.task_scores[size_t(task)].push_back(task_scores[size_t((first + j) * t + task)]);
    }
  }
  return out;
}

}  // namespace argent
