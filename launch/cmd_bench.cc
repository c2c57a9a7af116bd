// argent bench: QPS and recall@10/@100 of the local engine against exact float search, over
// batch sizes, nprobe values and the exact (all lists) scan, with and without a filter. Prints a
// table and writes CSV/JSON (bench/cpu_vs_faiss.py runs it beside FAISS on the same data).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_set>

#include "common/error.h"
#include "common/vecs.h"
#include "common/npy.h"
#include "launch/commands.h"
#include "launch/ground_truth.h"
#include "shard/local_engine.h"

namespace argent {
namespace {

struct BenchArgs {
  ConfigOption config;
  std::string index, queries, ground_truth, embeddings, ids, filter, csv, json, device;
  int64_t k = 100;
  std::vector<int> nprobes = {4, 8, 16, 32, 64};
  std::vector<int> batches = {1, 16, 64};
  bool skip_exact = false, no_plots = false;
  double min_seconds = 1.0;
  int64_t max_queries = 1024;
  int threads = 0;
  int64_t filter_cache_mb = -1;  // -1: search.filter_cache_mb
};

struct Row {
  std::string filter, mode;
  int batch = 0, nprobe = 0;
  double qps = 0, ms_per_batch = 0, recall10 = 0, recall100 = 0;
  std::vector<double> batch_ms;  // each batch of the query set, searched alone
};

double recall_at(const std::vector<int64_t>& gt, int64_t gt_k, const std::vector<int64_t>& got,
                 int64_t got_k, int64_t n, int64_t at) {
  double hit = 0, total = 0;
  for (int64_t q = 0; q < n; ++q) {
    std::unordered_set<int64_t> truth;
    for (int64_t i = 0; i < std::min(at, gt_k); ++i)
      if (gt[size_t(q * gt_k + i)] >= 0) truth.insert(gt[size_t(q * gt_k + i)]);
    for (int64_t i = 0; i < std::min(at, got_k); ++i) hit += truth.count(got[size_t(q * got_k + i)]);
    total += double(truth.size());
  }
  return total > 0 ? hit / total : 1.0;
}

// Ground truth as item ids [n, gt_k] for one filter ("" = none).
std::vector<int64_t> ground_truth_ids(const BenchArgs& a, const LocalEngine& engine,
                                      const std::vector<float>& q, int64_t n, int dim,
                                      const std::string& filter, int64_t* gt_k) {
  if (!a.ground_truth.empty() && filter.empty()) {
    const NpyArray arr = read_array(a.ground_truth);
    ARGENT_CHECK(arr.shape.size() == 2 && arr.shape[0] >= n, a.ground_truth,
                 ": expected int64 or int32 ground truth ids [queries, k] with at least ", n,
                 " rows");
    *gt_k = arr.shape[1];
    std::vector<int64_t> all = npy_to_int64_values(arr, a.ground_truth);
    all.resize(size_t(n * *gt_k));
    return all;
  }
  ARGENT_CHECK(!a.embeddings.empty(), "bench: --embeddings is needed to compute ground truth",
               filter.empty() ? "" : " under a filter");
  int64_t n_items = 0, items_dim = 0;
  const std::vector<float> items =
      npy_to_float_matrix(read_array(a.embeddings), a.embeddings, &n_items, &items_dim);
  ARGENT_CHECK(items_dim == dim, a.embeddings, ": dimension ", items_dim, " != ", dim);
  std::vector<int64_t> ids(static_cast<size_t>(n_items));
  if (a.ids.empty()) {
    for (int64_t i = 0; i < n_items; ++i) ids[size_t(i)] = i;
  } else {
    ids = npy_to_int64_vector(read_array(a.ids), a.ids);
  }
  std::vector<uint8_t> eligible;
  if (!filter.empty()) {
    FilterExpr expr;
    parse_filter(filter, &expr);
    eligible.resize(size_t(n_items));
    for (int64_t i = 0; i < n_items; ++i) {
      const int64_t row = engine.shard().row_of(ids[size_t(i)]);
      ARGENT_CHECK(row >= 0, "bench: item id ", ids[size_t(i)], " is not in the index");
      const auto f = engine.shard().features_of_row(row);
      eligible[size_t(i)] = evaluate(expr, FeatureSet(f.begin(), f.end()));
    }
  }
  *gt_k = a.k;
  std::vector<int64_t> pos = exact_float_topk(items.data(), n_items, q.data(), n, dim,
                                              engine.meta().normalize, a.k, eligible);
  for (int64_t& p : pos) p = p >= 0 ? ids[size_t(p)] : -1;
  return pos;
}

// CSV.csv -> CSV<suffix> (the latency samples and the plots lie next to the results).
std::string sibling_path(const std::string& csv, const std::string& suffix) {
  const size_t dot = csv.rfind(".csv");
  return (dot != std::string::npos && dot + 4 == csv.size() ? csv.substr(0, dot) : csv) + suffix;
}

// The PNG plots (bench/plot.py, python3-matplotlib): throughput vs recall and the latency CDF.
// A machine without matplotlib still gets the CSVs; the plot is reported as skipped.
void write_plots(const std::string& csv, const std::string& latency_csv) {
  const char* env = std::getenv("ARGENT_BENCH_PLOT");
  const std::string script = env != nullptr ? env : ARGENT_BENCH_PLOT;
  const std::string cmd = "/usr/bin/python3 '" + script + "' --csv '" + csv + "' --latency '" +
                          latency_csv + "' --out '" + sibling_path(csv, "") + "'";
  if (std::system(cmd.c_str()) != 0)
    std::fprintf(stderr, "bench: plots not written (%s failed; needs python3-matplotlib)\n",
                 script.c_str());
}

// Checks, before the sweep starts, what would otherwise fail only after it: the ground truth's
// inputs and the output files' folders.
void check_bench_args(const BenchArgs& a) {
  ARGENT_CHECK(!a.embeddings.empty() || (!a.ground_truth.empty() && a.filter.empty()),
               "bench: --embeddings is needed to compute ground truth",
               a.ground_truth.empty() ? " (or give --ground-truth)" : " under --filter");
  for (const std::string& out : {a.csv, a.json}) {
    if (out.empty()) continue;
    const std::filesystem::path folder = std::filesystem::path(out).parent_path();
    ARGENT_CHECK(folder.empty() || std::filesystem::is_directory(folder), "bench: cannot write ",
                 out, ": folder ", folder.string(), " does not exist");
  }
}

int run_bench(const BenchArgs& a) {
  check_bench_args(a);
  Config cfg = a.config.load();
  if (!a.device.empty()) cfg.search.device = a.device;
  if (a.filter_cache_mb >= 0) cfg.search.filter_cache_mb = a.filter_cache_mb;
  const LocalEngine engine = LocalEngine::open(a.index, cfg);
  std::printf("device: %s, filter cache: %lld MiB\n", cfg.search.device.c_str(),
              (long long)cfg.search.filter_cache_mb);
  int64_t n = 0, dim = 0;
  std::vector<float> q = npy_to_float_matrix(read_array(a.queries), a.queries, &n, &dim);
  n = std::min(n, a.max_queries);
  q.resize(size_t(n * dim));
  std::vector<std::string> filters = {""};
  if (!a.filter.empty()) filters.push_back(a.filter);

  std::vector<Row> rows;
  std::printf("%-24s %-10s %6s %7s %12s %12s %10s %10s\n", "filter", "mode", "batch", "nprobe",
              "QPS", "ms/batch", "recall@10", "recall@100");
  for (const std::string& filter : filters) {
    int64_t gt_k = 0;
    const std::vector<int64_t> gt = ground_truth_ids(a, engine, q, n, int(dim), filter, &gt_k);
    // nprobe 0: exact search with list bounds; -1: exact by scanning every list.
    std::vector<int> modes = a.nprobes;
    if (!a.skip_exact) {
      modes.push_back(0);
      modes.push_back(-1);
    }
    std::vector<int64_t> exact_ids;
    for (int nprobe : modes) {
      for (int batch : a.batches) {
        SearchOptions o;
        o.k = a.k;
        o.exact = nprobe <= 0;
        o.exhaustive = nprobe < 0;
        o.nprobe = nprobe <= 0 ? 1 : nprobe;
        o.batch = batch;
        o.threads = a.threads;
        std::vector<std::string> f;
        if (!filter.empty()) f.push_back(filter);
        const SearchResults first = engine.search(q.data(), n, int(dim), f, o);  // also warms up
        int64_t reps = 0;
        const auto t0 = std::chrono::steady_clock::now();
        double elapsed = 0;
        do {
          engine.search(q.data(), n, int(dim), f, o);
          ++reps;
          elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        } while (elapsed < a.min_seconds);
        Row r;
        r.filter = filter.empty() ? "none" : filter;
        // Latency: each batch of the query set searched and timed on its own, once.
        for (int64_t start = 0; start < n; start += batch) {
          const int64_t m = std::min<int64_t>(batch, n - start);
          const auto b0 = std::chrono::steady_clock::now();
          engine.search(q.data() + start * dim, m, int(dim), f, o);
          r.batch_ms.push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - b0).count());
        }
        // Both exact modes must agree id for id: the bounds only skip lists that cannot matter.
        if (nprobe == 0) exact_ids = first.ids;
        if (nprobe < 0)
          ARGENT_CHECK(exact_ids.empty() || exact_ids == first.ids,
                       "bench: exact search with list bounds differs from the full scan");
        r.mode = o.exhaustive ? "exact-scan" : o.exact ? "exact" : "ivf";
        r.batch = batch;
        r.nprobe = o.exact ? int(engine.meta().nlist) : nprobe;
        r.qps = double(n * reps) / elapsed;
        r.ms_per_batch = 1000.0 * batch / r.qps;
        r.recall10 = recall_at(gt, gt_k, first.ids, a.k, n, 10);
        r.recall100 = recall_at(gt, gt_k, first.ids, a.k, n, 100);
        std::printf("%-24s %-10s %6d %7d %12.1f %12.3f %10.4f %10.4f\n", r.filter.c_str(),
                    r.mode.c_str(), r.batch, r.nprobe, r.qps, r.ms_per_batch, r.recall10, r.recall100);
        std::fflush(stdout);
        rows.push_back(r);
      }
    }
  }
  if (!a.csv.empty()) {
    std::ofstream f(a.csv);
    f << "engine,filter,mode,batch,nprobe,qps,ms_per_batch,recall_at_10,recall_at_100\n";
    for (const Row& r : rows)
      f << "argent,\"" << r.filter << "\"," << r.mode << ',' << r.batch << ',' << r.nprobe << ','
        << r.qps << ',' << r.ms_per_batch << ',' << r.recall10 << ',' << r.recall100 << '\n';
    f.close();
    ARGENT_CHECK(f.good(), "bench: cannot write ", a.csv);
    const std::string latency_csv = sibling_path(a.csv, "-latency.csv");
    std::ofstream l(latency_csv);
    l << "filter,mode,batch,nprobe,ms\n";
    for (const Row& r : rows)
      for (double ms : r.batch_ms)
        l << '"' << r.filter << "\"," << r.mode << ',' << r.batch << ',' << r.nprobe << ',' << ms
          << '\n';
    l.close();
    ARGENT_CHECK(l.good(), "bench: cannot write ", latency_csv);
    if (!a.no_plots) write_plots(a.csv, latency_csv);
  }
  if (!a.json.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const Row& r : rows)
      j.push_back({{"engine", "argent"}, {"device", cfg.search.device}, {"filter", r.filter},
                   {"mode", r.mode}, {"batch", r.batch}, {"nprobe", r.nprobe}, {"qps", r.qps}, {"ms_per_batch", r.ms_per_batch},
                   {"recall_at_10", r.recall10}, {"recall_at_100", r.recall100},
                   {"queries", n}, {"k", a.k}, {"nlist", engine.meta().nlist},
                   {"items", engine.meta().n_items}});
    std::ofstream f(a.json);
    f << j.dump(2) << '\n';
    ARGENT_CHECK(f.good(), "bench: cannot write ", a.json);
  }
  return 0;
}

}  // namespace

CommandFn add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* c = app.add_subcommand("bench", "Measure QPS and recall against exact float search");
  c->add_option("--index", a->index, "Index directory")->required()->check(CLI::ExistingDirectory);
  c->add_option("--queries", a->queries,
                "Queries [n, d]: .npy float32/float16, .fvecs, .bvecs or .ivecs")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--ground-truth", a->ground_truth,
                "Exact top-k item ids .npy int64/int32 [n, k], for the unfiltered runs (filtered "
                "ones compute theirs from --embeddings)")
      ->check(CLI::ExistingFile);
  c->add_option("--embeddings", a->embeddings, "Item embeddings .npy, to compute ground truth")
      ->check(CLI::ExistingFile);
  c->add_option("--ids", a->ids, "Item ids .npy matching --embeddings")->check(CLI::ExistingFile);
  c->add_option("--filter", a->filter, "Also measure with this filter");
  c->add_option("--k", a->k, "Results per query")->capture_default_str();
  c->add_option("--nprobe", a->nprobes, "IVF nprobe values")->delimiter(',')->capture_default_str();
  c->add_option("--batch", a->batches, "Batch sizes")->delimiter(',')->capture_default_str();
  c->add_flag("--skip-exact", a->skip_exact, "Do not measure the exact (all lists) scan");
  c->add_option("--min-seconds", a->min_seconds, "Time each point at least this long")
      ->capture_default_str();
  c->add_option("--max-queries", a->max_queries, "Use at most this many queries")->capture_default_str();
  c->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  c->add_option("--device", a->device,
                "Where to scan: cpu or cuda (overrides search.device). The 80M synthetic sweep "
                "with the PyTorch and SilverTorch baselines is bench/gpu_bench.py")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  c->add_option("--filter-cache-mb", a->filter_cache_mb,
                "Overrides search.filter_cache_mb: 0 measures --filter evaluated in every batch; "
                "otherwise it is cached from its second batch on")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20));
  c->add_option("--csv", a->csv,
                "Write results as CSV, per-batch latencies as CSV-latency.csv, and the plots "
                "CSV-recall-qps.png and CSV-latency-cdf.png next to it");
  c->add_flag("--no-plots", a->no_plots, "With --csv: skip the PNG plots");
  c->add_option("--json", a->json, "Write results as JSON");
  a->config.add_to(c);
  return [a] { return run_bench(*a); };
}

}  // namespace argent
