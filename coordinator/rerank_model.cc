#include "coordinator/rerank_model.h"

#include <torch/script.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/error.h"

namespace argent {
namespace {

constexpr int64_t kFormatVersion = 1;  // python/argent_rerank_model.py FORMAT_VERSION

std::string shape_text(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// The named tensors of the file, checked one by one against the shapes the config implies.
class TensorTable {
 public:
  TensorTable(const std::string& path, std::map<std::string, at::Tensor> tensors)
      : path_(path), tensors_(std::move(tensors)) {}

  at::Tensor take(const std::string& name, std::vector<int64_t> expected, const std::string& why) {
    auto it = tensors_.find(name);
    ARGENT_CHECK(it != tensors_.end(), path_, ": tensor ", name, " is missing (", why, ")");
    const at::Tensor t = it->second;
    ARGENT_CHECK(t.sizes() == at::IntArrayRef(expected), path_, ": ", name, " is ",
                 shape_text(t.sizes()), ", expected ", shape_text(expected), " (", why, ")");
    ARGENT_CHECK(t.is_floating_point(), path_, ": ", name, " has dtype ", t.dtype(),
                 "; expected floating point");
    at::Tensor out = t.detach().to(at::kCPU, at::kFloat).contiguous().clone();
    ARGENT_CHECK(out.isfinite().all().item<bool>(), path_, ": ", name,
                 " holds non-finite values");
    tensors_.erase(it);
    return out;
  }
  // Tensors the config does not account for: a model with more layers than rerank.hidden says.
  void expect_consumed() const {
    ARGENT_CHECK(tensors_.empty(), path_, ": unexpected tensor ", tensors_.begin()->first, " ",
                 shape_text(tensors_.begin()->second.sizes()),
                 " (does rerank.hidden list every layer of the model?)");
  }

 private:
  std::string path_;
  std::map<std::string, at::Tensor> tensors_;
};

}  // namespace

RerankModel load_rerank_model(const std::string& path, const RerankConfig& config, int64_t dim) {
  ARGENT_CHECK(std::filesystem::is_regular_file(path), "rerank.model: cannot open '", path,
               "': no such file");
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, c10::Device(c10::kCPU));
  } catch (const c10::Error& e) {
    ARGENT_CHECK(false, path, ": not a TorchScript file: ", first_line(e.what()));
  }
  for (const char* attr : {"format_version", "dim", "hidden", "tasks", "activation"})
    ARGENT_CHECK(module.hasattr(attr), path, ": no attribute '", attr,
                 "'; not a reranker written by python/argent_rerank_model.py");
  const int64_t version = module.attr("format_version").toInt();
  ARGENT_CHECK(version == kFormatVersion, path, ": reranker format version ", version,
               "; this build reads version ", kFormatVersion);

  RerankModel m;
  m.dim = module.attr("dim").toInt();
  ARGENT_CHECK(m.dim == dim, path, ": model dim ", m.dim, " != index dim ", dim);
  for (const c10::IValue& t : module.attr("tasks").toListRef()) m.tasks.push_back(t.toStringRef());
  ARGENT_CHECK(m.tasks == config.tasks, path, ": model tasks [", join(m.tasks),
               "] != rerank.tasks [", join(config.tasks), "]");
  const std::vector<int64_t> hidden = module.attr("hidden").toIntVector();
  ARGENT_CHECK(hidden == config.hidden, path, ": model hidden sizes ", shape_text(hidden),
               " != rerank.hidden ", shape_text(config.hidden));
  m.activation = module.attr("activation").toStringRef();
  ARGENT_CHECK(m.activation == config.activation, path, ": model activation '", m.activation,
               "' != rerank.activation '", config.activation, "'");

  std::map<std::string, at::Tensor> named;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) named[p.name] = p.value;
  for (const auto& b : module.named_buffers(/*recurse=*/true)) named[b.name] = b.value;
  TensorTable table(path, std::move(named));
  const int64_t n_tasks = int64_t(m.tasks.size());
  int64_t width = 3 * dim;
  for (size_t l = 0; l < hidden.size(); ++l) {
    const std::string prefix = "overarch.layers." + std::to_string(l);
    const std::string why = "rerank.hidden[" + std::to_string(l) + "] = " +
                            std::to_string(hidden[l]) + ", input width " + std::to_string(width);
    m.weights.push_back(table.take(prefix + ".weight", {hidden[l], width}, why));
    m.biases.push_back(table.take(prefix + ".bias", {hidden[l]}, why));
    width = hidden[l];
  }
  const std::string heads_why = std::to_string(n_tasks) + " rerank.tasks";
  m.head_weight = table.take("overarch.heads.weight", {n_tasks, width}, heads_why);
  m.head_bias = table.take("overarch.heads.bias", {n_tasks}, heads_why);
  const at::Tensor w = table.take("value.task_weights", {n_tasks}, heads_why);
  const at::Tensor wr = table.take("value.retrieval_weight", {1}, "one retrieval weight");
  table.expect_consumed();
  m.task_weights.assign(w.data_ptr<float>(), w.data_ptr<float>() + n_tasks);
  m.retrieval_weight = wr.item<float>();
  return m;
}

RerankModel random_rerank_model(const RerankConfig& config, int64_t dim, uint64_t seed) {
  ARGENT_CHECK(dim >= 1, "random_rerank_model: dim ", dim);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto uniform = [&](std::vector<int64_t> shape, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(double(fan_in));
    return at::empty(shape, at::kFloat).uniform_(-bound, bound, gen);
  };
  RerankModel m;
  m.dim = dim;
  m.tasks = config.tasks;
  m.activation = config.activation;
  int64_t width = 3 * dim;
  for (int64_t h : config.hidden) {
    m.weights.push_back(uniform({h, width}, width));
    m.biases.push_back(uniform({h}, width));
    width = h;
  }
  const int64_t n_tasks = int64_t(config.tasks.size());
  m.head_weight = uniform({n_tasks, width}, width);
  m.head_bias = uniform({n_tasks}, width);
  if (config.task_weights.empty()) {
    m.task_weights.assign(size_t(n_tasks), 1.0f);
  } else {
    for (double v : config.task_weights) m.task_weights.push_back(float(v));
  }
  m.retrieval_weight = float(config.retrieval_score_weight);
  return m;
}

}  // namespace argent
