// argent build-index: items from files or the synthetic generator -> an index directory.
#include <cstdio>
#include <memory>

#include "common/error.h"
#include "launch/commands.h"
#include "shard/index_builder.h"
#include "shard/synthetic.h"

namespace argent {
namespace {

struct BuildIndexArgs {
  ConfigOption config;
  std::string out, embeddings, ids, features, codes, scales;
  int64_t synthetic = 0;
  int dim = 0;
  uint64_t seed = 1;
  int64_t nlist = -1;
  int partitions = -1;
};

int run_build_index(const BuildIndexArgs& a) {
  Config cfg = a.config.load();
  if (a.nlist >= 0) cfg.index.nlist = a.nlist;
  if (a.partitions >= 0) cfg.index.partitions = a.partitions;
  ARGENT_CHECK((a.synthetic > 0) + !a.embeddings.empty() + !a.codes.empty() == 1,
               "build-index: give either --embeddings or --synthetic N --dim D (or pre-quantized "
               "items: --codes with --scales)");
  ARGENT_CHECK(a.codes.empty() == a.scales.empty(), "build-index: --codes and --scales go together");
  ItemSet items;
  if (!a.codes.empty()) {
    items = load_quantized_item_set(a.codes, a.scales, a.ids, a.features);
  } else if (a.synthetic > 0) {
    ARGENT_CHECK(a.dim >= 1, "build-index: --synthetic needs --dim D");
    items = generate_synthetic_items(a.synthetic, a.dim, a.seed, cfg.synthetic);
  } else {
    items = load_item_set(a.embeddings, a.ids, a.features);
  }
  const BuildReport r = build_index(items, cfg.index, a.out);
  std::printf("built %s: %lld items, dim %d, %lld lists, %d partitions in %.1f s (k-means %.1f s)\n",
              a.out.c_str(), (long long)r.n_items, items.dim, (long long)r.nlist, r.partitions,
              r.total_seconds, r.train_seconds);
  return 0;
}

}  // namespace

CommandFn add_build_index_command(CLI::App& app) {
  auto a = std::make_shared<BuildIndexArgs>();
  CLI::App* c = app.add_subcommand("build-index", "Build an index directory from items");
  c->add_option("--out", a->out, "Index directory to write")->required();
  c->add_option("--embeddings", a->embeddings, "Item embeddings [N, d]: .npy float32/float16, .fvecs, .bvecs or .ivecs")
      ->check(CLI::ExistingFile);
  c->add_option("--ids", a->ids, "Item ids [N]: .npy int64/int32 or .ivecs of dimension 1 (default 0..N-1)")->check(CLI::ExistingFile);
  c->add_option("--features", a->features,
                "Item features, JSON Lines {\"id\": 7, \"features\": {\"3\": [100, 101]}}")
      ->check(CLI::ExistingFile);
  c->add_option("--codes", a->codes,
                "Pre-quantized items: int8 codes .npy [N, d] (argent export's codes.npy); stored "
                "exactly, with --scales")
      ->check(CLI::ExistingFile);
  c->add_option("--scales", a->scales, "Pre-quantized items: float32 scales .npy [N]")
      ->check(CLI::ExistingFile);
  c->add_option("--synthetic", a->synthetic, "Generate N synthetic items instead of reading files");
  c->add_option("--dim", a->dim, "Dimension of synthetic items (1..2048)");
  c->add_option("--seed", a->seed, "Seed of synthetic items")->capture_default_str();
  c->add_option("--nlist", a->nlist, "IVF lists (overrides index.nlist; 0 = automatic)");
  c->add_option("--partitions", a->partitions, "Partitions (overrides index.partitions)");
  a->config.add_to(c);
  return [a] { return run_build_index(*a); };
}

}  // namespace argent
