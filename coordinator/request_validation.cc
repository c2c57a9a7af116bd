#include "coordinator/request_validation.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/error.h"
#include "coordinator/value_model.h"

namespace argent {

int filter_depth(const FilterExpr& expr) {
  int deepest = 0;
  for (const FilterExpr& child : expr.children) deepest = std::max(deepest, filter_depth(child));
  return 1 + deepest;
}

std::string filter_problem(const std::string& filter, const GatewayConfig& limits) {
  std::ostringstream why;
  if (int64_t(filter.size()) > limits.max_filter_chars) {
    why << "filter: expression of " << filter.size()
        << " characters exceeds gateway.max_filter_chars = " << limits.max_filter_chars;
    return why.str();
  }
  FilterExpr expr;
  try {
    if (!parse_filter(filter, &expr)) return "";
  } catch (const Error& e) {
    return e.what();  // already "filter: ... at position N"
  }
  const int depth = filter_depth(expr);
  if (depth > limits.max_filter_depth) {
    why << "filter: nested " << depth << " levels deep; at most gateway.max_filter_depth = "
        << limits.max_filter_depth;
    return why.str();
  }
  return "";
}

std::string validate_search(const v1::SearchRequest& request, const IndexMeta& meta,
                            const Config& config, PendingSearch* out) {
  std::ostringstream why;
  if (request.embedding_size() != meta.dim) {
    why << "embedding has " << request.embedding_size() << " values, the index has dimension "
        << meta.dim;
    return why.str();
  }
  for (int j = 0; j < request.embedding_size(); ++j) {
    if (!std::isfinite(request.embedding(j))) {
      why << "embedding[" << j << "] is " << request.embedding(j) << "; values must be finite";
      return why.str();
    }
  }
  const int64_t k = request.k() == 0 ? config.search.k : request.k();
  if (k < 1 || k > config.search.max_k) {
    why << "k = " << k << " is outside [1, search.max_k = " << config.search.max_k << "]";
    return why.str();
  }
  if (request.nprobe() < 0) {
    why << "nprobe = " << request.nprobe() << " is negative";
    return why.str();
  }
  // Bounded as serve.default_timeout_ms is: a larger value would overflow the deadline's
  // nanosecond arithmetic (found by fuzz/request_structured_fuzz under UBSan).
  constexpr int64_t kMaxTimeoutMs = int64_t(1) << 40;
  if (request.timeout_ms() < 0 || request.timeout_ms() > kMaxTimeoutMs) {
    why << "timeout_ms = " << request.timeout_ms() << " is outside [0, " << kMaxTimeoutMs
        << "] (0: serve.default_timeout_ms)";
    return why.str();
  }
  if (request.exclude_ids_size() > config.gateway.max_exclude_ids) {
    why << request.exclude_ids_size() << " excluded ids; at most gateway.max_exclude_ids = "
        << config.gateway.max_exclude_ids;
    return why.str();
  }
  if (!config.rerank.enabled) {
    if (request.task_weights_size() > 0)
      return "task_weights given, but this server runs no reranker (rerank.enabled is false)";
    if (request.rerank_depth() != 0)
      return "rerank_depth given, but this server runs no reranker (rerank.enabled is false)";
  } else {
    const std::string weights = task_weights_problem(
        request.task_weights().data(), request.task_weights_size(),
        int64_t(config.rerank.tasks.size()));
    if (!weights.empty()) return weights;
    if (request.rerank_depth() < 0 || request.rerank_depth() > config.gateway.max_rerank_depth) {
      why << "rerank_depth = " << request.rerank_depth()
          << " is outside [0, gateway.max_rerank_depth = " << config.gateway.max_rerank_depth
          << "] (0: rerank.depth)";
      return why.str();
    }
  }
  const std::string filter = filter_problem(request.filter(), config.gateway);
  if (!filter.empty()) return filter;
  try {
    compile_filter(request.filter(), meta.bloom);
  } catch (const Error& e) {
    return e.what();  // already "filter: ..."
  }
  out->request_id = request.request_id();
  out->embedding.assign(request.embedding().begin(), request.embedding().end());
  out->k = k;
  const int64_t nprobe = request.nprobe() == 0 ? config.search.nprobe : request.nprobe();
  out->exact = request.exact() || nprobe >= meta.nlist;
  out->nprobe = out->exact ? 0 : int32_t(nprobe);
  out->filter = request.filter();
  out->exclude_ids.assign(request.exclude_ids().begin(), request.exclude_ids().end());
  out->task_weights.assign(request.task_weights().begin(), request.task_weights().end());
  out->rerank_depth = request.rerank_depth() == 0 ? config.rerank.depth : request.rerank_depth();
  out->candidates = (config.rerank.enabled ? std::max(k, out->rerank_depth) : k) +
                    int64_t(out->exclude_ids.size());
  out->arrival = SteadyClock::now();
  const int64_t timeout_ms =
      request.timeout_ms() > 0 ? request.timeout_ms() : config.serve.default_timeout_ms;
  out->deadline = timeout_ms > 0 ? out->arrival + std::chrono::milliseconds(timeout_ms)
                                 : SteadyClock::time_point::max();
  return "";
}

}  // namespace argent
