#include "shard/index_meta.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "common/section_file.h"
#include "kernels/layout.h"

namespace argent {
namespace {
constexpr uint32_t kMetaTag = section_tag("META");
constexpr uint32_t kCentroidsTag = section_tag("CENT");
constexpr const char* kKind = "MANIFEST";
}  // namespace

std::string manifest_path(const std::string& dir) { return dir + "/MANIFEST.argent"; }

std::string partition_path(const std::string& dir, int32_t partition) {
  char name[32];
  std::snprintf(name, sizeof name, "/part-%05d.argent", partition);
  return dir + name;
}

void write_manifest(const std::string& dir, const IndexMeta& m) {
  nlohmann::json j = {{"format_version", kIndexFormatVersion},
                      {"dim", m.dim},
                      {"d_pad", m.d_pad},
                      {"normalize", m.normalize},
                      {"nlist", m.nlist},
                      {"partitions", m.partitions},
                      {"bloom_words", m.bloom.words},
                      {"bloom_hashes", m.bloom.hashes},
                      {"bloom_seed", m.bloom.seed},
                      {"n_items", m.n_items}};
  ARGENT_ASSERT(int64_t(m.centroids.size()) == m.nlist * m.dim, "centroids ",
                m.centroids.size(), " != nlist * dim");
  SectionWriter w(kKind, kIndexFormatVersion);
  w.add_string(kMetaTag, j.dump(2));
  w.add_array(kCentroidsTag, m.centroids.data(), m.centroids.size());
  w.write_file(manifest_path(dir));
}

IndexMeta read_manifest(const std::string& dir) {
  const std::string path = manifest_path(dir);
  const SectionFile f = SectionFile::read(path, kKind, kIndexFormatVersion);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f.string(kMetaTag));
  } catch (const nlohmann::json::exception& e) {
    ARGENT_CHECK_DATA(false, path, ": META section is not valid JSON: ", e.what());
  }
  IndexMeta m;
  try {
    m.dim = j.at("dim").get<int32_t>();
    m.d_pad = j.at("d_pad").get<int32_t>();
    m.normalize = j.at("normalize").get<bool>();
    m.nlist = j.at("nlist").get<int64_t>();
    m.partitions = j.at("partitions").get<int32_t>();
    m.bloom.words = j.at("bloom_words").get<int32_t>();
    m.bloom.hashes = j.at("bloom_hashes").get<int32_t>();
    m.bloom.seed = j.at("bloom_seed").get<uint64_t>();
    m.n_items = j.at("n_items").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    ARGENT_CHECK_DATA(false, path, ": META section: ", e.what());
  }
  ARGENT_CHECK_DATA(m.dim >= 1 && m.dim <= kMaxDim && m.d_pad == padded_dim(m.dim), path,
                    ": dim ", m.dim, " / d_pad ", m.d_pad, " invalid");
  // nlist is bounded before nlist * dim is computed (the range of index.nlist).
  ARGENT_CHECK_DATA(m.nlist >= 1 && m.nlist <= (int64_t(1) << 22) && m.partitions >= 1 &&
                        m.n_items >= 0,
                    path,
                    ": nlist ", m.nlist, ", partitions ", m.partitions, " invalid");
  ARGENT_CHECK_DATA(m.bloom.words >= 1 && m.bloom.words <= 64 && m.bloom.hashes >= 1 &&
                        m.bloom.hashes <= 16,
                    path, ": Bloom parameters invalid");
  m.centroids = f.array<float>(kCentroidsTag, m.nlist * m.dim);
  for (float c : m.centroids) ARGENT_CHECK_DATA(std::isfinite(c), path, ": non-finite centroid");
  return m;
}

}  // namespace argent
