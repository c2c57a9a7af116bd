#include "coordinator/value_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <tuple>

namespace argent {

ValueWeights default_value_weights(const RerankConfig& config,
                                   const std::vector<float>& model_task_weights,
                                   float model_retrieval_weight) {
  ValueWeights w;
  if (config.task_weights.empty()) {
    w.task = model_task_weights;
    w.retrieval = model_retrieval_weight;
  } else {
    for (double v : config.task_weights) w.task.push_back(float(v));
    w.retrieval = float(config.retrieval_score_weight);
  }
  return w;
}

std::string task_weights_problem(const float* w, int64_t n, int64_t n_tasks) {
  std::ostringstream why;
  if (n != 0 && n != n_tasks) {
    why << "task_weights has " << n << " values; the reranker has " << n_tasks << " tasks";
    return why.str();
  }
  for (int64_t t = 0; t < n; ++t) {
    if (!std::isfinite(w[t])) {
      why << "task_weights[" << t << "] is " << w[t] << "; weights must be finite";
      return why.str();
    }
  }
  return "";
}

std::vector<int64_t> order_by_value(const float* values, const int64_t* ids, int64_t m,
                                    int64_t k) {
  // NaN compares false with everything, which would break the sort's ordering; rank it as -inf
  // and below every real -inf by the flag.
  auto key = [&](int64_t i) {
    const bool nan = std::isnan(values[i]);
    return std::make_tuple(nan, nan ? 0.0f : -values[i], ids[i]);
  };
  std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(m, 0)));
  std::iota(order.begin(), order.end(), int64_t(0));
  const int64_t keep = std::clamp<int64_t>(k, 0, m);
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int64_t a, int64_t b) { return key(a) < key(b); });
  order.resize(size_t(keep));
  return order;
}

}  // namespace argent
