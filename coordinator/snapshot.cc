#include "coordinator/snapshot.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/section_file.h"
#include "shard/partition_file.h"

namespace argent {
namespace {

constexpr const char* kKind = "SNAPSHOT";
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMetaTag = section_tag("META");

std::string pointer_path(const std::string& index_dir) { return index_dir + "/SNAPSHOT.argent"; }

}  // namespace

std::string snapshot_dir_name(uint64_t sequence) {
  char name[48];
  std::snprintf(name, sizeof name, "snapshot-%020llu", static_cast<unsigned long long>(sequence));
  return name;
}

std::string snapshot_data_dir(const std::string& index_dir, const SnapshotPointer& p) {
  return p.dir.empty() ? index_dir : index_dir + "/" + p.dir;
}

SnapshotPointer read_snapshot_pointer(const std::string& index_dir) {
  SnapshotPointer p;
  const std::string path = pointer_path(index_dir);
  if (!path_exists(path)) {
    p.items = read_manifest(index_dir).n_items;
    return p;
  }
  const SectionFile f = SectionFile::read(path, kKind, kVersion);
  try {
    const nlohmann::json j = nlohmann::json::parse(f.string(kMetaTag));
    p.sequence = j.at("sequence").get<uint64_t>();
    p.dir = j.at("dir").get<std::string>();
    p.items = j.at("items").get<int64_t>();
    if (j.contains("partition_map")) {
      p.map_epoch = j.at("partition_map").at("epoch").get<uint64_t>();
      p.map_owners = j.at("partition_map").at("owners").get<std::vector<int>>();
    }
  } catch (const nlohmann::json::exception& e) {
    ARGENT_CHECK_DATA(false, path, ": META section: ", e.what());
  }
  for (int owner : p.map_owners)
    ARGENT_CHECK_DATA(owner >= 0, path, ": partition map places a partition on rank ", owner);
  ARGENT_CHECK_DATA(p.dir == snapshot_dir_name(p.sequence), path, ": names directory '", p.dir,
                    "' for sequence ", p.sequence);
  ARGENT_CHECK_DATA(path_exists(manifest_path(snapshot_data_dir(index_dir, p))), path,
                    ": snapshot directory ", p.dir, " has no manifest");
  return p;
}

void write_shard_snapshot(const ShardIndex& shard, const std::string& index_dir,
                          const std::string& dir_name) {
  const std::string dir = index_dir + "/" + dir_name;
  make_directories(dir);
  const std::vector<PartitionData> parts = shard.export_partitions();
  Progress progress("snapshot: writing " + std::to_string(parts.size()) + " partitions",
                    int64_t(parts.size()));
  for (const PartitionData& part : parts) {
    write_partition(dir, shard.meta(), part);
    progress.add(1);
  }
}

void commit_snapshot(const std::string& index_dir, IndexMeta meta, const SnapshotPointer& p) {
  meta.n_items = p.items;
  write_manifest(snapshot_data_dir(index_dir, p), meta);
  nlohmann::json j = {{"sequence", p.sequence}, {"dir", p.dir}, {"items", p.items}};
  if (!p.map_owners.empty())
    j["partition_map"] = {{"epoch", p.map_epoch}, {"owners", p.map_owners}};
  SectionWriter w(kKind, kVersion);
  w.add_string(kMetaTag, j.dump());
  w.write_file(pointer_path(index_dir));  // atomic: temporary file, fsync, rename
}

void remove_other_snapshots(const std::string& index_dir, const std::string& keep) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(index_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("snapshot-", 0) != 0 || name == keep || !e.is_directory()) continue;
    fs::remove_all(e.path(), ec);
    if (ec) ARGENT_LOG(kWarn, "snapshot: cannot remove ", e.path().string(), ": ", ec.message());
  }
}

}  // namespace argent
