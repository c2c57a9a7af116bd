// argent search: queries from a .npy file against a local index, results as JSON lines.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/vecs.h"
#include "common/npy.h"
#include "launch/commands.h"
#include "launch/result_lines.h"
#include "shard/local_engine.h"

namespace argent {
namespace {

struct SearchArgs {
  ConfigOption config;
  std::string index, queries, filter, device;
  int64_t k = -1;
  int nprobe = -1, batch = -1, threads = -1;
  bool exact = false, scan_all = false, stats = false;
};

int run_search(const SearchArgs& a) {
  Config cfg = a.config.load();
  if (!a.device.empty()) cfg.search.device = a.device;
  SearchOptions opts;
  opts.k = a.k >= 0 ? a.k : cfg.search.k;
  opts.nprobe = a.nprobe >= 0 ? a.nprobe : cfg.search.nprobe;
  opts.batch = a.batch >= 0 ? a.batch : cfg.search.batch;
  opts.threads = a.threads >= 0 ? a.threads : cfg.search.threads;
  opts.exact = a.exact;
  opts.exhaustive = a.scan_all;
  int64_t n = 0, dim = 0;
  const std::vector<float> q = npy_to_float_matrix(read_array(a.queries), a.queries, &n, &dim);
  const LocalEngine engine = LocalEngine::open(a.index, cfg);
  ARGENT_CHECK(dim == engine.meta().dim, a.queries, ": query dimension ", dim,
               " does not match the index dimension ", engine.meta().dim);
  std::vector<std::string> filters;
  if (!a.filter.empty()) filters.push_back(a.filter);
  const SearchResults r = engine.search(q.data(), n, int(dim), filters, opts);
  std::string line;
  for (int64_t i = 0; i < n; ++i)
    print_result_line(&line, i, r.scores.data() + i * r.k, r.ids.data() + i * r.k, r.k);
  if (a.stats) {
    const ScanStats& s = r.stats;
    std::fprintf(stderr,
                 "stats: rows scanned %lld (rows packed for selective filters %lld), lists "
                 "scanned %lld, lists skipped by Bloom summary %lld, exact checks %lld, Bloom "
                 "false positives %lld (%.3f%% of checks), filters from the cache %lld\n",
                 (long long)s.rows_scanned, (long long)s.rows_packed, (long long)s.lists_scanned,
                 (long long)s.lists_skipped,
                 (long long)s.exact_checks, (long long)s.bloom_false_positives,
                 s.exact_checks ? 100.0 * double(s.bloom_false_positives) / double(s.exact_checks) : 0.0,
                 (long long)s.filters_cached);
  }
  return 0;
}

}  // namespace

CommandFn add_search_command(CLI::App& app) {
  auto a = std::make_shared<SearchArgs>();
  CLI::App* c = app.add_subcommand("search", "Search a local index; prints JSON lines");
  c->add_option("--index", a->index, "Index directory")->required()->check(CLI::ExistingDirectory);
  c->add_option("--queries", a->queries,
                "Queries [n, d]: .npy float32/float16, .fvecs, .bvecs or .ivecs")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--k", a->k, "Results per query (default search.k)")
      ->check(at_least(0));
  auto* nprobe = c->add_option("--nprobe", a->nprobe, "IVF lists per query (default search.nprobe)");
  auto* exact =
      c->add_flag("--exact", a->exact, "Exact int8 search (every list that can hold a top-k item)")
          ->excludes(nprobe);
  c->add_flag("--scan-all", a->scan_all,
              "With --exact: scan every list instead of skipping those the bounds rule out")
      ->needs(exact);
  c->add_option("--filter", a->filter, "Eligibility filter, e.g. \"1:10 AND NOT 2:20\"");
  c->add_option("--batch", a->batch, "Queries searched together (default search.batch)");
  c->add_option("--threads", a->threads, "Threads (default search.threads; 0 = all cores)");
  c->add_flag("--stats", a->stats, "Print scan statistics to stderr");
  c->add_option("--device", a->device, "Where to scan: cpu or cuda (overrides search.device)");
  a->config.add_to(c);
  return [a] { return run_search(*a); };
}

}  // namespace argent
