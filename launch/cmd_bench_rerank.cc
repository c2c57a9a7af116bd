// argent bench-rerank: reranker throughput (candidates per second) over batch x depth candidates,
// on the CPU or a GPU, the way the coordinator runs it: each chunk's candidates are gathered as
// int8 codes and dequantized on the host, then scored by the OverArch and value model. Every row
// has a correctness column: the largest relative error of the blended value against a float64
// loop over the same weights, on a sample of candidates.
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "coordinator/rerank_model.h"
#include "coordinator/reranker.h"
#include "coordinator/value_model.h"
#include "kernels/cpu/quantize.h"
#include "kernels/layout.h"
#include "launch/commands.h"

namespace argent {
namespace {

constexpr int64_t kCodePool = 65536;     // distinct candidate rows (candidates reuse them)
constexpr int64_t kCheckedSample = 512;  // candidates checked against the float64 loop

struct BenchRerankArgs {
  ConfigOption config;
  std::string model, device, csv, json;
  std::vector<int64_t> depths = {1000, 10000, 100000};
  int64_t batch = 64, dim = 128, chunk_rows = 0, seed = 1;
  int threads = 0;
  double min_seconds = 1.0;
};

double activate(const std::string& act, double x) {
  if (act == "relu") return x > 0 ? x : 0;
  if (act == "tanh") return std::tanh(x);
  if (act == "silu") return x / (1 + std::exp(-x));
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));  // gelu, exact form
}

// The blended value of one candidate, in float64, written out from the formula.
double value_float64(const RerankModel& m, const ValueWeights& w, const float* user,
                     const float* item, float retrieval) {
  std::vector<double> h;
  for (int64_t j = 0; j < m.dim; ++j) h.push_back(user[j]);
  for (int64_t j = 0; j < m.dim; ++j) h.push_back(item[j]);
  for (int64_t j = 0; j < m.dim; ++j) h.push_back(double(user[j]) * item[j]);
  auto layer = [&](const at::Tensor& wt, const at::Tensor& b, bool act) {
    const int64_t out = wt.size(0), in = wt.size(1);
    const float* W = wt.data_ptr<float>();
    std::vector<double> next(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      double s = b.data_ptr<float>()[o];
      for (int64_t i = 0; i < in; ++i) s += double(W[o * in + i]) * h[size_t(i)];
      next[size_t(o)] = act ? activate(m.activation, s) : s;
    }
    h = std::move(next);
  };
  for (size_t l = 0; l < m.weights.size(); ++l) layer(m.weights[l], m.biases[l], true);
  layer(m.head_weight, m.head_bias, false);
  double v = double(w.retrieval) * retrieval;
  for (size_t t = 0; t < h.size(); ++t) v += double(w.task[t]) / (1 + std::exp(-h[t]));
  return v;
}

int run_bench_rerank(const BenchRerankArgs& a) {
  Config cfg = a.config.load();
  if (!a.device.empty()) cfg.rerank.device = a.device;
  if (a.chunk_rows > 0) cfg.rerank.chunk_rows = a.chunk_rows;
  if (a.threads > 0) at::set_num_threads(a.threads);
  ARGENT_CHECK(a.batch >= 1 && a.dim >= 1 && a.dim <= kMaxDim, "bench-rerank: batch ", a.batch,
               ", dim ", a.dim);
  const RerankModel model = a.model.empty() ? random_rerank_model(cfg.rerank, a.dim, a.seed)
                                            : load_rerank_model(a.model, cfg.rerank, a.dim);
  const ValueWeights weights =
      default_value_weights(cfg.rerank, model.task_weights, model.retrieval_weight);
  const Reranker reranker(model, cfg.rerank.device, cfg.rerank.chunk_rows);
  const int64_t d = a.dim, t = reranker.n_tasks();
  const int d_pad = padded_dim(int(d));

  // A pool of unit item vectors quantized as the index stores them, and unit users.
  std::mt19937_64 rng(uint64_t(a.seed));
  std::normal_distribution<float> normal;
  std::vector<float> pool(size_t(kCodePool * d)), users(size_t(a.batch * d));
  for (float& v : pool) v = normal(rng);
  for (float& v : users) v = normal(rng);
  std::vector<int8_t> codes(size_t(kCodePool * d_pad));
  std::vector<float> scales(static_cast<size_t>(kCodePool));
  quantize_rows(pool.data(), kCodePool, int(d), d_pad, true, codes.data(), scales.data(), nullptr);
  for (int64_t q = 0; q < a.batch; ++q) {
    double n2 = 0;
    for (int64_t j = 0; j < d; ++j) n2 += double(users[size_t(q * d + j)]) * users[size_t(q * d + j)];
    for (int64_t j = 0; j < d; ++j) users[size_t(q * d + j)] = float(users[size_t(q * d + j)] / std::sqrt(n2));
  }
  std::vector<float> task_weights;
  for (int64_t q = 0; q < a.batch; ++q)
    task_weights.insert(task_weights.end(), weights.task.begin(), weights.task.end());

  std::printf("reranker: dim %lld, hidden", (long long)d);
  for (int64_t h : cfg.rerank.hidden) std::printf(" %lld", (long long)h);
  std::printf(", %lld tasks, %s, chunk %lld rows, device %s, %d threads\n", (long long)t,
              model.activation.c_str(), (long long)cfg.rerank.chunk_rows,
              reranker.device().str().c_str(), at::get_num_threads());
  std::printf("%8s %8s %12s %10s %14s %12s %14s\n", "batch", "depth", "candidates", "seconds",
              "candidates/s", "ms/batch", "max_rel_err");
  nlohmann::json rows = nlohmann::json::array();
  std::string csv = "device,batch,depth,candidates,seconds,candidates_per_s,ms_per_batch,max_rel_err\n";
  for (int64_t depth : a.depths) {
    ARGENT_CHECK(depth >= 1, "bench-rerank: depth ", depth);
    const int64_t m = a.batch * depth;
    std::vector<int64_t> query_of(static_cast<size_t>(m));
    std::vector<float> retrieval(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      query_of[size_t(i)] = i / depth;
      retrieval[size_t(i)] = 1.0f - float(i % depth) / float(depth);  // descending, as retrieved
    }
    auto row_of = [](int64_t i) { return (i * 7919) % kCodePool; };
    std::vector<int8_t> chunk_codes;
    RerankBatch b;
    b.n_queries = a.batch;
    b.users = users.data();
    b.task_weights = task_weights.data();
    b.m = m;
    b.query_of = query_of.data();
    b.retrieval = retrieval.data();
    b.retrieval_weight = weights.retrieval;
    std::vector<float> chunk_scales;
    b.items = [&](int64_t begin, int64_t count, float* out) {
      chunk_codes.resize(size_t(count * d_pad));
      chunk_scales.resize(size_t(count));
      for (int64_t i = 0; i < count; ++i) {
        const int64_t r = row_of(begin + i);
        std::copy(codes.begin() + r * d_pad, codes.begin() + (r + 1) * d_pad,
                  chunk_codes.begin() + i * d_pad);
        chunk_scales[size_t(i)] = scales[size_t(r)];
      }
      dequantize_rows(chunk_codes.data(), chunk_scales.data(), count, int(d), d_pad, out);
    };
    std::vector<float> task_scores(size_t(m * t)), values(static_cast<size_t>(m));
    // One chunk first, so that device and library set-up (CUDA context, GEMM handles) is not
    // timed. The first full pass is timed too (a depth of 100,000 takes minutes on a small CPU); more passes
    // run until --min-seconds, and the mean is reported. The first pass's values are checked.
    RerankBatch warm = b;
    warm.m = std::min(m, cfg.rerank.chunk_rows);
    reranker.score(warm, task_scores.data(), values.data());
    int64_t repeats = 0;
    const auto start = std::chrono::steady_clock::now();
    double seconds = 0;
    while (repeats == 0 || seconds < a.min_seconds) {
      reranker.score(b, task_scores.data(), values.data());
      ++repeats;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    seconds /= double(repeats);

    double max_rel = 0;
    std::vector<float> item(static_cast<size_t>(d));
    for (int64_t s = 0; s < std::min(kCheckedSample, m); ++s) {
      const int64_t i = s * (m / std::min(kCheckedSample, m));
      const int64_t r = row_of(i);
      dequantize_rows(codes.data() + r * d_pad, scales.data() + r, 1, int(d), d_pad, item.data());
      const double ref = value_float64(model, weights, users.data() + query_of[size_t(i)] * d,
                                       item.data(), retrieval[size_t(i)]);
      max_rel = std::max(max_rel, std::abs(values[size_t(i)] - ref) / std::max(std::abs(ref), 1e-6));
    }
    const double rate = double(m) / seconds;
    std::printf("%8lld %8lld %12lld %10.4f %14.0f %12.2f %14.2e\n", (long long)a.batch,
                (long long)depth, (long long)m, seconds, rate, 1000 * seconds, max_rel);
    std::fflush(stdout);
    const std::string dev = reranker.device().str();
    char line[256];
    std::snprintf(line, sizeof line, "%s,%lld,%lld,%lld,%.6f,%.1f,%.3f,%.3e\n", dev.c_str(),
                  (long long)a.batch, (long long)depth, (long long)m, seconds, rate,
                  1000 * seconds, max_rel);
    csv += line;
    rows.push_back({{"device", dev}, {"batch", a.batch}, {"depth", depth}, {"candidates", m},
                    {"seconds", seconds}, {"candidates_per_s", rate},
                    {"ms_per_batch", 1000 * seconds}, {"max_rel_err", max_rel},
                    {"repeats", repeats}, {"dim", d}, {"hidden", cfg.rerank.hidden},
                    {"tasks", t}, {"chunk_rows", cfg.rerank.chunk_rows},
                    {"threads", at::get_num_threads()}});
  }
  if (!a.csv.empty()) {
    std::ofstream f(a.csv);
    f << csv;
    ARGENT_CHECK(f.good(), "bench-rerank: cannot write ", a.csv);
  }
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    f << rows.dump(2) << '\n';
    ARGENT_CHECK(f.good(), "bench-rerank: cannot write ", a.json);
  }
  return 0;
}

}  // namespace

CommandFn add_bench_rerank_command(CLI::App& app) {
  auto a = std::make_shared<BenchRerankArgs>();
  CLI::App* c = app.add_subcommand(
      "bench-rerank", "Measure reranker throughput (candidates/s) for batch x depth candidates");
  a->config.add_to(c);
  c->add_option("--model", a->model,
                "Reranker model file (default: random weights of the rerank: config's shape)")
      ->check(CLI::ExistingFile);
  c->add_option("--dim", a->dim, "Embedding dimension")->capture_default_str();
  c->add_option("--depth", a->depths, "Candidates per query")->delimiter(',')->capture_default_str();
  c->add_option("--batch", a->batch, "Queries per batch")->capture_default_str();
  c->add_option("--device", a->device, "cpu, cuda or auto (overrides rerank.device)");
  c->add_option("--chunk-rows", a->chunk_rows, "Candidates per forward pass (overrides "
                "rerank.chunk_rows)");
  c->add_option("--threads", a->threads, "LibTorch intra-op threads (0: its default)");
  c->add_option("--min-seconds", a->min_seconds, "Time each depth at least this long")
      ->capture_default_str();
  c->add_option("--seed", a->seed, "Seed of the inputs and random weights")->capture_default_str();
  c->add_option("--csv", a->csv, "Write results as CSV");
  c->add_option("--json", a->json, "Write results as JSON");
  return [a] { return run_bench_rerank(*a); };
}

}  // namespace argent
