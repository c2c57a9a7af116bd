#include "shard/index_builder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/progress.h"
#include "kernels/cpu/kmeans.h"
#include "kernels/cpu/quantize.h"
#include "kernels/layout.h"
#include "shard/partition_file.h"

namespace argent {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Fills one partition with the items `members` (indices into `items`), ordered by (list, id).
PartitionData make_partition(const ItemSet& items, const IndexMeta& meta, int32_t partition,
                             std::vector<int64_t> members, const std::vector<int32_t>& labels,
                             const std::vector<int8_t>& codes, const std::vector<float>& scales) {
  std::sort(members.begin(), members.end(), [&](int64_t a, int64_t b) {
    if (labels[size_t(a)] != labels[size_t(b)]) return labels[size_t(a)] < labels[size_t(b)];
    return items.ids[size_t(a)] < items.ids[size_t(b)];
  });
  PartitionData p;
  p.partition = partition;
  const size_t n = members.size(), d_pad = size_t(meta.d_pad);
  p.ids.resize(n);
  p.scales.resize(n);
  p.codes.resize(n * d_pad);
  p.list_offsets.assign(size_t(meta.nlist) + 1, 0);
  p.feature_offsets.assign(1, 0);
  for (size_t r = 0; r < n; ++r) {
    const int64_t i = members[r];
    p.ids[r] = items.ids[size_t(i)];
    p.scales[r] = scales[size_t(i)];
    std::copy_n(codes.data() + size_t(i) * d_pad, d_pad, p.codes.data() + r * d_pad);
    ++p.list_offsets[size_t(labels[size_t(i)]) + 1];
    for (int64_t j = items.feature_offsets[size_t(i)]; j < items.feature_offsets[size_t(i) + 1]; ++j) {
      p.feature_ids.push_back(items.feature_ids[size_t(j)]);
      p.feature_values.push_back(items.feature_values[size_t(j)]);
    }
    p.feature_offsets.push_back(int64_t(p.feature_ids.size()));
  }
  std::partial_sum(p.list_offsets.begin(), p.list_offsets.end(), p.list_offsets.begin());
  return p;
}

// A server's write-ahead log and snapshots (docs/formats.md) belong to the index they were
// written against: replayed onto a new build they would resurrect old items, so a build into a
// directory removes them first.
void remove_serving_state(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove(dir + "/wal.log", ec);
  fs::remove(dir + "/SNAPSHOT.argent", ec);
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind("snapshot-", 0) == 0) fs::remove_all(e.path(), ec);
}

}  // namespace

int64_t auto_nlist(int64_t n_items) {
  const int64_t by_sqrt = int64_t(std::llround(4.0 * std::sqrt(double(std::max<int64_t>(n_items, 1)))));
  return std::max<int64_t>(1, std::min(by_sqrt, n_items / 32));
}

BuildReport build_index(const ItemSet& items, const IndexConfig& cfg, const std::string& out_dir) {
  const auto t0 = std::chrono::steady_clock::now();
  validate_item_set(items);
  const int64_t n = items.size();
  ARGENT_CHECK(n >= 1, "build-index: no items");
  ARGENT_CHECK(cfg.partitions >= 1, "index.partitions must be >= 1");
  ARGENT_CHECK(cfg.bloom_bits >= 64 && cfg.bloom_bits % 64 == 0 && cfg.bloom_bits <= 4096,
               "index.bloom_bits ", cfg.bloom_bits, " must be a multiple of 64 in [64, 4096]");

  IndexMeta meta;
  meta.dim = items.dim;
  meta.d_pad = padded_dim(items.dim);
  meta.normalize = cfg.normalize;
  meta.nlist = cfg.nlist > 0 ? cfg.nlist : auto_nlist(n);
  ARGENT_CHECK(meta.nlist <= n, "index.nlist ", meta.nlist, " exceeds the item count ", n);
  meta.partitions = cfg.partitions;
  meta.bloom.words = cfg.bloom_bits / 64;
  meta.bloom.hashes = cfg.bloom_hashes;
  meta.n_items = n;

  // Coarse quantizer. k-means sees the vectors the index scores: normalized when cosine.
  KMeansParams km;
  km.n_clusters = meta.nlist;
  km.iterations = cfg.kmeans_iterations;
  km.max_points_per_cluster = cfg.kmeans_points_per_list;
  km.seed = cfg.seed;
  {
    Progress progress("training IVF (" + std::to_string(meta.nlist) + " lists)", km.iterations);
    meta.centroids = spherical_kmeans(items.embeddings.data(), n, items.dim, km,
                                      [&](int) { progress.add(1); });
  }
  BuildReport report;
  report.train_seconds = seconds_since(t0);

  std::vector<int8_t> codes(size_t(n) * size_t(meta.d_pad));
  std::vector<float> scales(static_cast<size_t>(n));
  std::vector<int32_t> bias(static_cast<size_t>(n));
  if (items.quantized()) {
    // Pre-quantized items (argent export): stored as given, padding dims 0, so that an index
    // rebuilt from its export holds the same codes and scales bit for bit.
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(items.codes.data() + i * items.dim, items.dim,
                  codes.data() + i * int64_t(meta.d_pad));
    scales = items.scales;
    code_bias(codes.data(), n, meta.d_pad, bias.data());
  } else {
    quantize_rows(items.embeddings.data(), n, items.dim, meta.d_pad, meta.normalize,
                  codes.data(), scales.data(), bias.data());
  }
  std::vector<int32_t> labels(static_cast<size_t>(n));
  const QuantizedCentroids qc = quantize_centroids(meta.centroids.data(), meta.nlist, meta.dim);
  assign_to_centroids(codes.data(), scales.data(), bias.data(), n, qc, labels.data());

  std::vector<std::vector<int64_t>> members(size_t(meta.partitions));
  for (int64_t i = 0; i < n; ++i)
    members[size_t(partition_of_id(items.ids[size_t(i)], meta.partitions))].push_back(i);

  make_directories(out_dir);
  if (path_exists(manifest_path(out_dir))) std::remove(manifest_path(out_dir).c_str());
  remove_serving_state(out_dir);
  Progress progress("writing " + std::to_string(meta.partitions) + " partitions", meta.partitions);
  for (int32_t p = 0; p < meta.partitions; ++p) {
    write_partition(out_dir, meta,
                    make_partition(items, meta, p, std::move(members[size_t(p)]), labels, codes, scales));
    progress.add(1);
  }
  progress.finish();
  write_manifest(out_dir, meta);

  report.n_items = n;
  report.nlist = meta.nlist;
  report.partitions = meta.partitions;
  report.total_seconds = seconds_since(t0);
  return report;
}

}  // namespace argent
