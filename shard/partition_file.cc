#include "shard/partition_file.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/hash.h"
#include "common/byte_codec.h"
#include "common/crc32c.h"
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

void check_partition(const PartitionData& p, const IndexMeta& meta, const std::string& what) {
  const int64_t n = p.size();
  const int64_t nnz = int64_t(p.feature_ids.size());
  ARGENT_CHECK_DATA(int64_t(p.scales.size()) == n && int64_t(p.codes.size()) == n * meta.d_pad &&
                        int64_t(p.list_offsets.size()) == meta.nlist + 1 &&
                        int64_t(p.feature_offsets.size()) == n + 1 &&
                        int64_t(p.feature_values.size()) == nnz,
                    what, ": partition ", p.partition, " arrays disagree in size");
  ARGENT_CHECK_DATA(p.list_offsets.front() == 0 && p.list_offsets.back() == n, what,
                    ": list offsets do not span the items");
  for (int64_t l = 0; l < meta.nlist; ++l)
    ARGENT_CHECK_DATA(p.list_offsets[size_t(l)] <= p.list_offsets[size_t(l + 1)], what,
                      ": list offsets decrease at list ", l);
  ARGENT_CHECK_DATA(p.feature_offsets.front() == 0 && p.feature_offsets.back() == nnz, what,
                    ": feature offsets do not span the features");
  // Every offset is checked before any is used: with only the ends checked, an offset past nnz
  // in the middle would index beyond the feature arrays (found by fuzz/index_loader_fuzz).
  for (int64_t i = 0; i < n; ++i)
    ARGENT_CHECK_DATA(p.feature_offsets[size_t(i)] <= p.feature_offsets[size_t(i + 1)], what,
                      ": feature offsets decrease at item ", i);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = p.feature_offsets[size_t(i)], b = p.feature_offsets[size_t(i + 1)];
    for (int64_t e = a + 1; e < b; ++e) {
      const bool ordered = p.feature_ids[size_t(e - 1)] < p.feature_ids[size_t(e)] ||
                           (p.feature_ids[size_t(e - 1)] == p.feature_ids[size_t(e)] &&
                            p.feature_values[size_t(e - 1)] < p.feature_values[size_t(e)]);
      ARGENT_CHECK_DATA(ordered, what, ": features of item ", p.ids[size_t(i)],
                        " are not sorted and unique");
    }
    ARGENT_CHECK_DATA(std::isfinite(p.scales[size_t(i)]) && p.scales[size_t(i)] >= 0, what,
                      ": item ", p.ids[size_t(i)], " has invalid scale ", p.scales[size_t(i)]);
    ARGENT_CHECK_DATA(partition_of_id(p.ids[size_t(i)], meta.partitions) == p.partition,
                      what, ": item ", p.ids[size_t(i)], " does not belong to partition ",
                      p.partition);
  }
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

  check_partition(p, meta, path);
  return p;
}

// The bytes of a partition in transit (a rebalance move): magic | u32 version | partition |
// the arrays, each as an int64 count and its elements | u32 CRC32C of everything before it.
namespace {
constexpr uint64_t kTransitMagic = 0x45564f4d50475241ull;  // "ARGPMOVE"
constexpr uint32_t kTransitVersion = 1;

template <typename T>
void put_sized(ByteWriter& w, const std::vector<T>& v) {
  w.put<int64_t>(int64_t(v.size()));
  w.put_array(v.data(), v.size());
}
template <typename T>
std::vector<T> get_sized(ByteReader& r) {
  return r.get_array<T>(r.get<int64_t>());
}
}  // namespace

std::vector<uint8_t> encode_partition(const PartitionData& p) {
  ByteWriter w;
  w.put<uint64_t>(kTransitMagic);
  w.put<uint32_t>(kTransitVersion);
  w.put<int32_t>(p.partition);
  put_sized(w, p.ids);
  put_sized(w, p.scales);
  put_sized(w, p.codes);
  put_sized(w, p.list_offsets);
  put_sized(w, p.feature_offsets);
  put_sized(w, p.feature_ids);
  put_sized(w, p.feature_values);
  const uint32_t crc = crc32c(w.bytes().data(), w.bytes().size());
  w.put<uint32_t>(crc);
  return w.take();
}

PartitionData decode_partition(const std::vector<uint8_t>& bytes, const IndexMeta& meta,
                               int32_t partition, const std::string& what) {
  ARGENT_CHECK_DATA(bytes.size() >= 20, what, ": ", bytes.size(), " bytes is no partition");
  uint32_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  ARGENT_CHECK_DATA(crc32c(bytes.data(), bytes.size() - 4) == stored, what,
                    ": CRC32C mismatch over ", bytes.size(), " bytes");
  ByteReader r(bytes.data(), bytes.size() - 4, what);
  ARGENT_CHECK_DATA(r.get<uint64_t>() == kTransitMagic, what, ": bad magic");
  const uint32_t version = r.get<uint32_t>();
  ARGENT_CHECK_DATA(version == kTransitVersion, what, ": version ", version, ", expected ",
                    kTransitVersion);
  PartitionData p;
  p.partition = r.get<int32_t>();
  ARGENT_CHECK_DATA(p.partition == partition, what, ": holds partition ", p.partition,
                    ", expected ", partition);
  p.ids = get_sized<int64_t>(r);
  p.scales = get_sized<float>(r);
  p.codes = get_sized<int8_t>(r);
  p.list_offsets = get_sized<int64_t>(r);
  p.feature_offsets = get_sized<int64_t>(r);
  p.feature_ids = get_sized<int32_t>(r);
  p.feature_values = get_sized<int64_t>(r);
  ARGENT_CHECK_DATA(r.done(), what, ": ", r.left(), " trailing bytes");
  check_partition(p, meta, what);
  return p;
}

}  // namespace argent
