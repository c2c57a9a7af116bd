#include "shard/module_scanner.h"

#include <c10/core/InferenceMode.h>
#include <torch/script.h>

#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/log.h"

namespace argent {
namespace {

constexpr int64_t kModuleFormat = 1;  // python/argent/torch.py MODULE_FORMAT

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

at::Tensor blob(const void* p, std::vector<int64_t> shape, at::ScalarType type) {
  return at::from_blob(const_cast<void*>(p), shape, type);
}

}  // namespace

struct ModuleScanner::State {
  torch::jit::Module module;
};

ModuleScanner::ModuleScanner(const std::string& path)
    : s_(std::make_unique<State>()), path_(path) {
  ARGENT_CHECK(std::filesystem::is_regular_file(path), "search.module: cannot open '", path,
               "': no such file");
  try {
    s_->module = torch::jit::load(path, c10::Device(c10::kCPU));
  } catch (const c10::Error& e) {
    ARGENT_CHECK(false, "search.module: ", path, ": cannot load the module: ",
                 first_line(e.what_without_backtrace()),
                 " (an operator argent::* missing means the program lacks the torch_ops library)");
  }
  ARGENT_CHECK(s_->module.hasattr("module_format") && s_->module.find_method("scan"),
               "search.module: ", path,
               " is not an ArgentRetrieval module (python/argent/torch.py): no module_format "
               "attribute or scan method");
  const int64_t format = s_->module.attr("module_format").toInt();
  ARGENT_CHECK(format == kModuleFormat, "search.module: ", path, ": module format ", format,
               "; this build reads format ", kModuleFormat);
  s_->module.eval();
  ARGENT_LOG(kInfo, "search.module: scanning with the scan method of ", path);
}

ModuleScanner::~ModuleScanner() = default;

void ModuleScanner::bind(const ShardIndex& shard) {
  const IndexMeta& m = shard.meta();
  auto expect = [&](const char* attr, int64_t want) {
    const int64_t got = s_->module.attr(attr).toInt();
    ARGENT_CHECK(got == want, "search.module: ", path_, ": the module's ", attr, " is ", got,
                 ", the served index's is ", want);
  };
  expect("dim", m.dim);
  expect("d_pad", m.d_pad);
  expect("bloom_words", m.bloom.words);
  expect("bloom_hashes", m.bloom.hashes);
  expect("bloom_seed", int64_t(m.bloom.seed));
  expect("nlist", m.nlist);
  for (const ShardTensorField& b : kShardTensorFields)
    s_->module.setattr(b.name, shard.tensors().*b.member);
}

void ModuleScanner::scan(const QueryBatch& q, const int32_t* lists, int nprobe, int64_t k,
                         float* scores, int64_t* ids, int64_t* rows) {
  c10::InferenceMode no_autograd;
  // The batch as tensors: views of the QueryBatch's memory (the module only reads them).
  const at::Tensor codes = blob(q.codes.data(), {q.n, q.d_pad}, at::kChar);
  const at::Tensor q_scales = blob(q.scales.data(), {q.n}, at::kFloat);
  const at::Tensor bias = blob(q.bias.data(), {q.n}, at::kInt);
  std::vector<FilterOp> ops;
  std::vector<int32_t> spans(size_t(2 * q.n), 0);
  for (const FilterPlan& p : q.plans) ops.insert(ops.end(), p.ops.begin(), p.ops.end());
  std::vector<int32_t> first(q.plans.size());
  for (size_t p = 0, offset = 0; p < q.plans.size(); offset += q.plans[p].ops.size(), ++p)
    first[p] = int32_t(offset);
  for (int64_t i = 0; i < q.n && !q.plans.empty(); ++i) {
    const int32_t p = q.plan_of_query[size_t(i)];
    if (p < 0) continue;
    spans[size_t(2 * i)] = first[size_t(p)];
    spans[size_t(2 * i + 1)] = int32_t(q.plans[size_t(p)].ops.size());
  }
  const at::Tensor plan_ops = at::empty({int64_t(ops.size()), 4}, at::kLong);
  if (!ops.empty()) std::memcpy(plan_ops.data_ptr(), ops.data(), ops.size() * sizeof(FilterOp));
  const at::Tensor plan_spans = blob(spans.data(), {q.n, 2}, at::kInt);
  c10::IValue probes;  // None: every list
  if (lists) probes = blob(lists, {q.n, int64_t(nprobe)}, at::kInt);

  c10::IValue out;
  try {
    out = s_->module.get_method("scan")({codes, q_scales, bias, plan_ops, plan_spans, probes, k});
  } catch (const c10::Error& e) {
    ARGENT_CHECK(false, "search.module: ", path_, ": scan failed: ",
                 first_line(e.what_without_backtrace()));
  }
  const auto& t = out.toTupleRef().elements();
  ARGENT_CHECK(t.size() == 3, "search.module: ", path_, ": scan returned ", t.size(),
               " values; expected (scores, ids, rows)");
  const at::Tensor s = t[0].toTensor().to(at::kFloat).contiguous();
  const at::Tensor d = t[1].toTensor().to(at::kLong).contiguous();
  const at::Tensor r = t[2].toTensor().to(at::kLong).contiguous();
  const std::vector<int64_t> shape{q.n, k};
  ARGENT_CHECK(s.sizes() == at::IntArrayRef(shape) && d.sizes() == s.sizes() &&
                   r.sizes() == s.sizes(),
               "search.module: ", path_, ": scan returned scores ", s.sizes(), "; expected [",
               q.n, ", ", k, "]");
  std::memcpy(scores, s.data_ptr(), size_t(q.n * k) * sizeof(float));
  std::memcpy(ids, d.data_ptr(), size_t(q.n * k) * sizeof(int64_t));
  if (rows) std::memcpy(rows, r.data_ptr(), size_t(q.n * k) * sizeof(int64_t));
}

}  // namespace argent
