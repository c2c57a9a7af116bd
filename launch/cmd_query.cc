// argent query: sends queries to a running server through its gateway and prints the same JSON
// lines as `argent search`; with --concurrency, measures QPS and latency under load.
#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/vecs.h"
#include "common/npy.h"
#include "coordinator/client.h"
#include "launch/client_keys_option.h"
#include "launch/commands.h"
#include "launch/result_lines.h"

namespace argent {
namespace {

struct QueryArgs {
  std::string endpoint = "tcp://127.0.0.1:5555", queries, filter, summary_json;
  int64_t random = 0, k = 0, repeat = 1;
  int nprobe = 0, concurrency = 1;
  int64_t timeout_ms = 0, seed = 1;
  bool exact = false, quiet = false;
  std::vector<float> task_weights;
  int rerank_depth = 0;
  ClientKeyOption keys;
};

// A reranked reply's JSON line: the search line's fields plus the blended values and each
// task's scores, all in result order.
void print_reranked_line(std::string* line, int64_t query, const v1::SearchResponse& r) {
  auto floats = [](const float* v, int n) {
    std::string s = "[";
    char buf[32];
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof buf, i ? ", %.9g" : "%.9g", double(v[i]));
      s += buf;
    }
    return s + "]";
  };
  line->assign("{\"query\": " + std::to_string(query) + ", \"ids\": [");
  for (int i = 0; i < r.ids_size(); ++i) line->append((i ? ", " : "") + std::to_string(r.ids(i)));
  line->append("], \"scores\": " + floats(r.scores().data(), r.scores_size()));
  line->append(", \"values\": " + floats(r.values().data(), r.values_size()));
  line->append(", \"task_scores\": {");
  for (int t = 0; t < r.task_scores_size(); ++t)
    line->append((t ? ", \"" : "\"") + r.task_scores(t).task() + "\": " +
                 floats(r.task_scores(t).scores().data(), r.task_scores(t).scores_size()));
  line->append("}}\n");
  std::fwrite(line->data(), 1, line->size(), stdout);
}

struct Outcome {
  v1::SearchResponse response;
  double latency_ms = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = size_t(std::ceil(p * double(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

int run_query(const QueryArgs& a) {
  ARGENT_CHECK(a.concurrency >= 1 && a.concurrency <= 4096, "--concurrency ", a.concurrency,
               " is outside [1, 4096]");
  ARGENT_CHECK(a.queries.empty() != (a.random == 0), "give exactly one of --queries or --random");
  ARGENT_CHECK(a.repeat >= 1, "--repeat ", a.repeat, " must be >= 1");

  const ClientSecurity security = a.keys.load();
  Client probe(a.endpoint, security);
  ARGENT_CHECK(probe.wait_until_healthy(std::chrono::milliseconds(10000)), "no healthy server at ",
               a.endpoint, " within 10 s");
  v1::Request health;
  health.mutable_health();
  const int dim = probe.call(health).health().dim();

  int64_t n = 0, qdim = 0;
  std::vector<float> x;
  if (!a.queries.empty()) {
    x = npy_to_float_matrix(read_array(a.queries), a.queries, &n, &qdim);
  } else {
    // Random queries: standard normal, seeded, of the server's dimension.
    n = a.random;
    qdim = dim;
    std::mt19937_64 rng(uint64_t(a.seed));
    std::normal_distribution<float> normal;
    x.resize(size_t(n * qdim));
    for (float& v : x) v = normal(rng);
  }

  const int64_t total = n * a.repeat;
  std::vector<Outcome> outcomes(static_cast<size_t>(total));
  std::atomic<int64_t> next{0};
  // A request with a deadline is answered by then (DEADLINE_EXCEEDED at worst): wait that long
  // and a margin for the network, not the ten minutes a deadline-free request may search.
  const std::chrono::milliseconds reply_wait(a.timeout_ms > 0 ? a.timeout_ms + 5000 : 600000);
  auto worker = [&] {
    Client client(a.endpoint, security);
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= total) return;
      const int64_t q = i % n;
      v1::SearchRequest r;
      r.mutable_embedding()->Add(x.begin() + q * qdim, x.begin() + (q + 1) * qdim);
      r.set_k(int32_t(a.k));
      r.set_nprobe(a.nprobe);
      r.set_exact(a.exact);
      r.set_filter(a.filter);
      r.set_timeout_ms(a.timeout_ms);
      r.mutable_task_weights()->Add(a.task_weights.begin(), a.task_weights.end());
      r.set_rerank_depth(a.rerank_depth);
      const auto start = std::chrono::steady_clock::now();
      outcomes[size_t(i)].response = client.search(r, reply_wait);
      outcomes[size_t(i)].latency_ms = std::chrono::duration<double, std::milli>(
                                           std::chrono::steady_clock::now() - start)
                                           .count();
    }
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < a.concurrency; ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::string line;
  std::vector<double> latencies;
  int64_t errors = 0;
  for (int64_t i = 0; i < total; ++i) {
    const v1::SearchResponse& r = outcomes[size_t(i)].response;
    if (r.status().code() != v1::OK) {
      ++errors;
      std::fprintf(stderr, "query %lld: %s: %s\n", (long long)(i % n),
                   v1::StatusCode_Name(r.status().code()).c_str(), r.status().message().c_str());
      continue;
    }
    latencies.push_back(outcomes[size_t(i)].latency_ms);
    if (!a.quiet && i < n) {
      if (r.values_size() > 0) {
        print_reranked_line(&line, i, r);
      } else {
        print_result_line(&line, i, r.scores().data(), r.ids().data(), r.ids_size());
      }
    }
  }
  const double qps = double(latencies.size()) / seconds;
  const double p50 = percentile(latencies, 0.5), p90 = percentile(latencies, 0.9),
               p99 = percentile(latencies, 0.99);
  std::fprintf(stderr,
               "query: %lld requests, concurrency %d, %.2f s: %.1f QPS, latency p50 %.2f ms, "
               "p90 %.2f ms, p99 %.2f ms, %lld errors\n",
               (long long)total, a.concurrency, seconds, qps, p50, p90, p99, (long long)errors);
  if (!a.summary_json.empty()) {
    FILE* f = std::fopen(a.summary_json.c_str(), "w");
    ARGENT_SYSCALL_CHECK(f != nullptr, "cannot write ", a.summary_json);
    std::fprintf(f,
                 "{\"requests\": %lld, \"concurrency\": %d, \"seconds\": %.4f, \"qps\": %.2f, "
                 "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"errors\": %lld}\n",
                 (long long)total, a.concurrency, seconds, qps, p50, p90, p99, (long long)errors);
    std::fclose(f);
  }
  return errors ? 1 : 0;
}

}  // namespace

CommandFn add_query_command(CLI::App& app) {
  auto a = std::make_shared<QueryArgs>();
  CLI::App* c = app.add_subcommand(
      "query", "Query a running server through its gateway; prints the same JSON lines as search");
  c->add_option("--endpoint", a->endpoint, "Gateway endpoint")->capture_default_str();
  a->keys.add_to(c);
  c->add_option("--queries", a->queries,
                "Queries [n, d]: .npy float32/float16, .fvecs, .bvecs or .ivecs")
      ->check(CLI::ExistingFile);
  c->add_option("--random", a->random, "Send this many random queries instead of --queries");
  c->add_option("--seed", a->seed, "Seed of --random queries")->capture_default_str();
  c->add_option("--k", a->k, "Results per query (default: the server's search.k)")
      ->check(at_least(0));
  auto* nprobe = c->add_option("--nprobe", a->nprobe, "IVF lists per query (default: server's)");
  c->add_flag("--exact", a->exact, "Probe every list (exact int8 search)")->excludes(nprobe);
  c->add_option("--filter", a->filter, "Eligibility filter, e.g. \"1:10 AND NOT 2:20\"");
  c->add_option("--task-weights", a->task_weights,
                 "Value-model weights, one per task, e.g. 1,0,0,0 (needs a server with a "
                 "reranker; default: the server's)")
      ->delimiter(',');
  c->add_option("--rerank-depth", a->rerank_depth,
                "Candidates the server reranks (default: its rerank.depth)");
  c->add_option("--timeout-ms", a->timeout_ms, "Deadline of each request (0: server default)")
      ->check(at_least(0));
  c->add_option("--concurrency", a->concurrency, "Requests in flight (one client thread each)")
      ->capture_default_str();
  c->add_option("--repeat", a->repeat, "Send the query set this many times (load tests)")
      ->capture_default_str();
  c->add_flag("--quiet", a->quiet, "Do not print results (load tests)");
  c->add_option("--summary-json", a->summary_json, "Write QPS and latency percentiles as JSON");
  return [a] { return run_query(*a); };
}

}  // namespace argent
