// argent export: an index's items back out as files, the inverse of build-index.
//
//   OUT/ids.npy          int64 [n], ascending
//   OUT/codes.npy        int8 [n, dim]   the stored int8 codes (padding dims dropped)
//   OUT/scales.npy       float32 [n]     the stored per-item scales
//   OUT/embeddings.npy   float32 [n, dim] codes * scale: the vectors the index scores
//   OUT/features.jsonl   {"id": 7, "features": {"3": [100, 101]}} per item, in id order
//   OUT/manifest.json    dim, normalize, nlist, partitions, bloom_bits, bloom_hashes, n_items
//
// `argent build-index --codes OUT/codes.npy --scales OUT/scales.npy --ids OUT/ids.npy
// --features OUT/features.jsonl` rebuilds an index holding the same items bit for bit
// (docs/formats.md, "Export").
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>

#include "common/error.h"
#include "common/file_util.h"
#include "common/npy.h"
#include "common/progress.h"
#include "coordinator/snapshot.h"
#include "launch/commands.h"
#include "shard/index_meta.h"
#include "shard/partition_file.h"

namespace argent {
namespace {

struct ExportArgs {
  std::string index, out;
};

// The write-ahead log's header alone is this long: a longer log holds writes no snapshot has.
constexpr int64_t kWalHeaderBytes = 32;

int run_export(const ExportArgs& a) {
  const IndexMeta meta = read_manifest(a.index);
  const SnapshotPointer snapshot = read_snapshot_pointer(a.index);
  const std::string data_dir = snapshot_data_dir(a.index, snapshot);
  std::FILE* wal = std::fopen((a.index + "/wal.log").c_str(), "rb");
  if (wal != nullptr) {
    std::fseek(wal, 0, SEEK_END);
    if (std::ftell(wal) > kWalHeaderBytes)
      std::fprintf(stderr,
                   "argent export: warning: %s/wal.log holds writes after the latest snapshot; "
                   "they are not exported (run `argent admin snapshot` on the server first)\n",
                   a.index.c_str());
    std::fclose(wal);
  }

  // Every partition's items, then one order for all: ascending id.
  std::vector<PartitionData> parts;
  int64_t n = 0;
  {
    Progress progress("reading " + std::to_string(meta.partitions) + " partitions", meta.partitions);
    for (int32_t p = 0; p < meta.partitions; ++p) {
      parts.push_back(read_partition(data_dir, meta, p));
      n += parts.back().size();
      progress.add(1);
    }
  }
  struct Row {
    int64_t id;
    int32_t part;
    int64_t row;
  };
  std::vector<Row> rows;
  rows.reserve(size_t(n));
  for (int32_t p = 0; p < int32_t(parts.size()); ++p)
    for (int64_t r = 0; r < parts[size_t(p)].size(); ++r)
      rows.push_back({parts[size_t(p)].ids[size_t(r)], p, r});
  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) { return x.id < y.id; });

  const int64_t dim = meta.dim, d_pad = meta.d_pad;
  std::vector<int64_t> ids(static_cast<size_t>(n));
  std::vector<int8_t> codes(size_t(n * dim));
  std::vector<float> scales(static_cast<size_t>(n)), embeddings(static_cast<size_t>(n * dim));
  make_directories(a.out);
  std::ofstream features(a.out + "/features.jsonl.tmp");
  ARGENT_CHECK(features.good(), "export: cannot write ", a.out, "/features.jsonl");
  for (int64_t i = 0; i < n; ++i) {
    const PartitionData& part = parts[size_t(rows[size_t(i)].part)];
    const int64_t r = rows[size_t(i)].row;
    ids[size_t(i)] = rows[size_t(i)].id;
    scales[size_t(i)] = part.scales[size_t(r)];
    for (int64_t j = 0; j < dim; ++j) {
      const int8_t c = part.codes[size_t(r * d_pad + j)];
      codes[size_t(i * dim + j)] = c;
      embeddings[size_t(i * dim + j)] = float(c) * scales[size_t(i)];
    }
    nlohmann::json f = nlohmann::json::object();
    for (int64_t k = part.feature_offsets[size_t(r)]; k < part.feature_offsets[size_t(r) + 1]; ++k)
      f[std::to_string(part.feature_ids[size_t(k)])].push_back(part.feature_values[size_t(k)]);
    features << nlohmann::json{{"id", ids[size_t(i)]}, {"features", f}}.dump() << "\n";
  }
  features.close();
  ARGENT_CHECK(!features.fail(), "export: writing ", a.out, "/features.jsonl failed");
  ARGENT_CHECK(std::rename((a.out + "/features.jsonl.tmp").c_str(),
                           (a.out + "/features.jsonl").c_str()) == 0,
               "export: cannot rename ", a.out, "/features.jsonl.tmp");
  write_npy(a.out + "/ids.npy", "<i8", {n}, ids.data(), ids.size() * 8);
  write_npy(a.out + "/codes.npy", "|i1", {n, dim}, codes.data(), codes.size());
  write_npy(a.out + "/scales.npy", "<f4", {n}, scales.data(), scales.size() * 4);
  write_npy_f32(a.out + "/embeddings.npy", embeddings.data(), n, dim);
  const nlohmann::json manifest = {
      {"dim", meta.dim},           {"normalize", meta.normalize},
      {"nlist", meta.nlist},       {"partitions", meta.partitions},
      {"bloom_bits", meta.bloom.words * 64}, {"bloom_hashes", meta.bloom.hashes},
      {"n_items", n},              {"source", data_dir},
      {"snapshot_sequence", snapshot.sequence}};
  std::ofstream(a.out + "/manifest.json") << manifest.dump(2) << "\n";
  std::printf("exported %lld items of dim %lld from %s to %s\n", (long long)n, (long long)dim,
              data_dir.c_str(), a.out.c_str());
  return 0;
}

}  // namespace

CommandFn add_export_command(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* c = app.add_subcommand(
      "export", "Write an index's items (the latest snapshot, else the build) to .npy + JSON Lines");
  c->add_option("--index", a->index, "Index directory")->required()->check(CLI::ExistingDirectory);
  c->add_option("--out", a->out, "Directory to write")->required();
  return [a] { return run_export(*a); };
}

}  // namespace argent
