#include "shard/partition_file.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "common/error.h"
#include "common/hash.h"
#include "common/section_file.h"

namespace argent {
namespace {
constexpr const char* kKind = "PARTITN";
constexpr uint32_t kMetaTag = section_tag("META");
constexpr uint32_t kIdsTag = section_tag("IDS_");
constexpr uint32_t kScalesTag = section_tag("SCAL");
constexpr uint32_t kCodesTag = section_tag("CODE");
constexpr uint32_t kListsTag = section_tag("LIST");
constexpr uint32_t kFeatureOffsetsTag = section_tag("FOFF");
constexpr uint32_t kFeatureIdsTag = section_tag("FIDS");
constexpr uint32_t kFeatureValuesTag = section_tag("FVAL");
}  // namespace

void write_partition(const std::string& dir, const IndexMeta& meta, const PartitionData& p) {
  const int64_t n = p.size();
  ARGENT_ASSERT(int64_t(p.codes.size()) == n * meta.d_pad && int64_t(p.scales.size()) == n &&
                    int64_t(p.list_offsets.size()) == meta.nlist + 1 &&
                    int64_t(p.feature_offsets.size()) == n + 1,
                "partition ", p.partition, " arrays disagree in size");
  const nlohmann::json j = {{"partition", p.partition},
                            {"n_items", n},
                            {"nlist", meta.nlist},
                            {"d_pad", meta.d_pad},
                            {"n_features", p.feature_ids.size()}};
  SectionWriter w(kKind, kIndexFormatVersion);
  w.add_string(kMetaTag, j.dump());
  w.add_array(kIdsTag, p.ids.data(), p.ids.size());
  w.add_array(kScalesTag, p.scales.data(), p.scales.size());
  w.add_array(kCodesTag, p.codes.data(), p.codes.size());
  w.add_array(kListsTag, p.list_offsets.data(), p.list_offsets.size());
  w.add_array(kFeatureOffsetsTag, p.feature_offsets.data(), p.feature_offsets.size());
  w.add_array(kFeatureIdsTag, p.feature_ids.data(), p.feature_ids.size());
  w.add_array(kFeatureValuesTag, p.feature_values.data(), p.feature_values.size());
  w.write_file(partition_path(dir, p.partition));
}

PartitionData read_partition(const std::string& dir, const IndexMeta& meta, int32_t partition) {
  const std::string path = partition_path(dir, partition);
  const SectionFile f = SectionFile::read(path, kKind, kIndexFormatVersion);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f.string(kMetaTag));
  } catch (const nlohmann::json::exception& e) {
    ARGENT_CHECK_DATA(false, path, ": META section is not valid JSON: ", e.what());
  }
  int64_t n = 0, nnz = 0;
  try {
    ARGENT_CHECK_DATA(j.at("partition").get<int32_t>() == partition, path, ": holds partition ",
                      j.at("partition").get<int32_t>(), ", expected ", partition);
    ARGENT_CHECK_DATA(j.at("nlist").get<int64_t>() == meta.nlist &&
                          j.at("d_pad").get<int32_t>() == meta.d_pad,
                      path, ": nlist/d_pad disagree with the manifest");
    n = j.at("n_items").get<int64_t>();
    nnz = j.at("n_features").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    ARGENT_CHECK_DATA(false, path, ": META section: ", e.what());
  }
  // Bounded before any size arithmetic (n * d_pad, n + 1): the sections' own sizes are compared
  // with these counts next, so no real partition comes near the bound.
  constexpr int64_t kMaxCount = int64_t(1) << 40;
  ARGENT_CHECK_DATA(n >= 0 && nnz >= 0 && n < kMaxCount && nnz < kMaxCount, path,
                    ": sizes in META out of range: n_items ", n, ", n_features ", nnz);
  PartitionData p;
  p.partition = partition;
  p.ids = f.array<int64_t>(kIdsTag, n);
  p.scales = f.array<float>(kScalesTag, n);
  p.codes = f.array<int8_t>(kCodesTag, n * meta.d_pad);
  p.list_offsets = f.array<int64_t>(kListsTag, meta.nlist + 1);
  p.feature_offsets = f.array<int64_t>(kFeatureOffsetsTag, n + 1);
  p.feature_ids = f.array<int32_t>(kFeatureIdsTag, nnz);
  p.feature_values = f.array<int64_t>(kFeatureValuesTag, nnz);

  ARGENT_CHECK_DATA(p.list_offsets.front() == 0 && p.list_offsets.back() == n, path,
                    ": list offsets do not span the items");
  for (int64_t l = 0; l < meta.nlist; ++l)
    ARGENT_CHECK_DATA(p.list_offsets[size_t(l)] <= p.list_offsets[size_t(l + 1)], path,
                      ": list offsets decrease at list ", l);
  ARGENT_CHECK_DATA(p.feature_offsets.front() == 0 && p.feature_offsets.back() == nnz, path,
                    ": feature offsets do not span the features");
  // Every offset is checked before any is used: with only the ends checked, an offset past nnz
  // in the middle would index beyond the feature arrays (found by fuzz/index_loader_fuzz).
  for (int64_t i = 0; i < n; ++i)
    ARGENT_CHECK_DATA(p.feature_offsets[size_t(i)] <= p.feature_offsets[size_t(i + 1)], path,
                      ": feature offsets decrease at item ", i);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = p.feature_offsets[size_t(i)], b = p.feature_offsets[size_t(i + 1)];
    for (int64_t e = a + 1; e < b; ++e) {
      const bool ordered = p.feature_ids[size_t(e - 1)] < p.feature_ids[size_t(e)] ||
                           (p.feature_ids[size_t(e - 1)] == p.feature_ids[size_t(e)] &&
                            p.feature_values[size_t(e - 1)] < p.feature_values[size_t(e)]);
      ARGENT_CHECK_DATA(ordered, path, ": features of item ", p.ids[size_t(i)],
                        " are not sorted and unique");
    }
    ARGENT_CHECK_DATA(std::isfinite(p.scales[size_t(i)]) && p.scales[size_t(i)] >= 0, path,
                      ": item ", p.ids[size_t(i)], " has invalid scale ", p.scales[size_t(i)]);
    ARGENT_CHECK_DATA(partition_of_id(p.ids[size_t(i)], meta.partitions) == partition, path,
                      ": item ", p.ids[size_t(i)], " does not belong to partition ", partition);
  }
  return p;
}

}  // namespace argent
