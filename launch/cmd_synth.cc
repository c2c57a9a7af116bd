// argent synth: writes a synthetic catalogue and queries as files (.npy + JSON Lines), the inputs
// of build-index, search and the FAISS comparison in bench/.
#include <cstdio>
#include <fstream>
#include <memory>

#include "common/error.h"
#include "common/file_util.h"
#include "common/npy.h"
#include "launch/commands.h"
#include "shard/synthetic.h"

namespace argent {
namespace {

struct SynthArgs {
  ConfigOption config;
  std::string out;
  int64_t n = 0, queries = 0;
  int dim = 0;
  uint64_t seed = 1;
};

int run_synth(const SynthArgs& a) {
  const Config cfg = a.config.load();
  const ItemSet items = generate_synthetic_items(a.n, a.dim, a.seed, cfg.synthetic);
  make_directories(a.out);
  write_npy_f32(a.out + "/items.npy", items.embeddings.data(), items.size(), items.dim);
  write_npy(a.out + "/ids.npy", "<i8", {items.size()}, items.ids.data(),
            items.ids.size() * sizeof(int64_t));
  std::ofstream f(a.out + "/features.jsonl");
  for (int64_t i = 0; i < items.size(); ++i) {
    f << "{\"id\": " << items.ids[size_t(i)] << ", \"features\": {";
    int32_t open = -1;
    for (int64_t j = items.feature_offsets[size_t(i)]; j < items.feature_offsets[size_t(i) + 1]; ++j) {
      const int32_t fid = items.feature_ids[size_t(j)];
      if (fid != open) {
        if (open >= 0) f << "], ";
        f << '"' << fid << "\": [";
        open = fid;
      } else {
        f << ", ";
      }
      f << items.feature_values[size_t(j)];
    }
    f << (open >= 0 ? "]}}\n" : "}}\n");
  }
  ARGENT_CHECK(f.good(), "synth: cannot write ", a.out, "/features.jsonl");
  if (a.queries > 0) {
    const std::vector<float> q = generate_synthetic_queries(a.queries, a.dim, a.seed, cfg.synthetic);
    write_npy_f32(a.out + "/queries.npy", q.data(), a.queries, a.dim);
  }
  std::printf("wrote %s/{items.npy, ids.npy, features.jsonl%s}: %lld items, dim %d\n", a.out.c_str(),
              a.queries > 0 ? ", queries.npy" : "", (long long)a.n, a.dim);
  return 0;
}

}  // namespace

CommandFn add_synth_command(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* c = app.add_subcommand("synth", "Write a synthetic catalogue and queries as files");
  c->add_option("--out", a->out, "Directory for items.npy, ids.npy, features.jsonl, queries.npy")
      ->required();
  c->add_option("--n", a->n, "Items")->required()->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  c->add_option("--dim", a->dim, "Dimension (1..2048)")->required();
  c->add_option("--queries", a->queries, "Queries to write (queries.npy)")->capture_default_str();
  c->add_option("--seed", a->seed, "Seed")->capture_default_str();
  a->config.add_to(c);
  return [a] { return run_synth(*a); };
}

CommandFn add_config_doc_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("config-doc", "Print every config key as Markdown");
  (void)c;
  return [] {
    std::fputs(config_markdown().c_str(), stdout);
    return 0;
  };
}

}  // namespace argent
