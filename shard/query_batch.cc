#include "shard/query_batch.h"

#include <cmath>
#include <unordered_map>

#include "common/error.h"
#include "kernels/cpu/quantize.h"

namespace argent {

ScanQueriesView QueryBatch::view() const {
  plan_views_.clear();
  for (const FilterPlan& p : plans) plan_views_.push_back(p.view());
  ScanQueriesView v;
  v.codes = codes.data();
  v.scales = scales.data();
  v.bias = bias.data();
  v.n = n;
  v.plans = plan_views_.data();
  v.n_plans = int(plan_views_.size());
  v.plan_of_query = plans.empty() ? nullptr : plan_of_query.data();
  return v;
}

QueryBatch prepare_queries(const float* x, int64_t n, int dim, const IndexMeta& meta,
                           const std::vector<std::string>& filters, int64_t first) {
  ARGENT_CHECK(n >= 0, "queries: negative count ", n);
  ARGENT_CHECK(dim == meta.dim, "queries: dimension ", dim, " does not match the index dimension ",
               meta.dim);
  ARGENT_CHECK(filters.size() <= 1 || int64_t(filters.size()) == n, "queries: ", filters.size(),
               " filters for ", n, " queries (give none, one, or one per query)");
  for (int64_t q = 0; q < n; ++q)
    for (int j = 0; j < dim; ++j)
      ARGENT_CHECK(std::isfinite(x[q * dim + j]), "queries: query ", first + q,
                   " has a non-finite value (NaN or inf) at dimension ", j);

  QueryBatch b;
  b.n = n;
  b.d_pad = meta.d_pad;
  b.codes.resize(size_t(n) * size_t(meta.d_pad));
  b.scales.resize(size_t(n));
  b.bias.resize(size_t(n));
  quantize_rows(x, n, dim, meta.d_pad, meta.normalize, b.codes.data(), b.scales.data(),
                b.bias.data());

  b.plan_of_query.assign(size_t(n), -1);
  std::unordered_map<std::string, int32_t> plan_index;
  for (int64_t q = 0; q < n && !filters.empty(); ++q) {
    const std::string& text = filters.size() == 1 ? filters[0] : filters[size_t(q)];
    auto it = plan_index.find(text);
    if (it == plan_index.end()) {
      FilterPlan plan;
      try {
        plan = compile_filter(text, meta.bloom);
      } catch (const Error& e) {
        ARGENT_THROW(e.code(), "query ", first + q, ": ", e.what());
      }
      const int32_t index = plan.empty() ? -1 : int32_t(b.plans.size());
      if (!plan.empty()) b.plans.push_back(std::move(plan));
      it = plan_index.emplace(text, index).first;
    }
    b.plan_of_query[size_t(q)] = it->second;
  }
  return b;
}

}  // namespace argent
