// Writes the fuzzers' seed corpora under DIR (fuzz/corpus/<target>/) with Argent's own writers,
// so every seed starts as a valid input: filter expressions, encoded Requests, a real manifest
// and partition (raw and as section lists), real write-ahead logs (raw and as record lists).
//   build-fuzz/write_seeds fuzz/corpus
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "argent/v1/service.pb.h"
#include "common/file_util.h"
#include "common/section_file.h"
#include "coordinator/mutation_request.h"
#include "coordinator/wal.h"
#include "fuzz_util.h"
#include "kernels/layout.h"
#include "shard/index_meta.h"
#include "shard/partition_file.h"

namespace {

using Bytes = std::vector<uint8_t>;

void seed(const std::string& dir, const std::string& name, const Bytes& bytes) {
  ::mkdir(dir.c_str(), 0755);
  argent::fuzz::write_file(dir + "/" + name, bytes.data(), bytes.size());
}
Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
Bytes message(const argent::v1::Request& r) { return text(r.SerializeAsString()); }
void append_chunk(Bytes& out, const Bytes& chunk) {
  out.push_back(uint8_t(chunk.size() & 0xFF));
  out.push_back(uint8_t(chunk.size() >> 8));
  out.insert(out.end(), chunk.begin(), chunk.end());
}

void filter_seeds(const std::string& dir) {
  const char* kSeeds[] = {"1:3", "1:10 AND NOT (2:5 | 2:6)", "NOT 3:-4 OR (5:6 & 7:8:0.5)",
                          "((1:1))", "!1:2&!3:4|5:6", "0:0 and 1:1 or not 2:2", "   ",
                          "1:9223372036854775807 | 2147483647:-9223372036854775808"};
  int i = 0;
  for (const char* s : kSeeds) seed(dir, "seed-" + std::to_string(i++), text(s));
}

void request_seeds(const std::string& dir) {
  int i = 0;
  auto add = [&](const argent::v1::Request& r) { seed(dir, "seed-" + std::to_string(i++), message(r)); };
  argent::v1::Request search;
  argent::v1::SearchRequest* s = search.mutable_search();
  for (int j = 0; j < 8; ++j) s->add_embedding(0.1f * float(j + 1));
  s->set_k(10);
  s->set_filter("1:3 AND NOT 2:5");
  add(search);
  s->set_exact(true);
  s->add_exclude_ids(4);
  s->add_exclude_ids(9);
  s->set_timeout_ms(100);
  add(search);
  s->add_task_weights(1.f);
  s->add_task_weights(2.f);
  s->add_task_weights(4.f);
  s->add_task_weights(1.f);
  s->set_rerank_depth(100);
  add(search);
  argent::v1::Request upsert;
  for (int id = 1; id <= 2; ++id) {
    argent::v1::Item* item = upsert.mutable_upsert()->add_items();
    item->set_id(id * 1000 + 7);
    for (int j = 0; j < 8; ++j) item->add_embedding(float(j - id));
    (*item->mutable_features())[3].add_values(100 + id);
    (*item->mutable_features())[1].add_values(-5);
  }
  add(upsert);
  argent::v1::Request del;
  for (int64_t id : {7, 8, 9, 8}) del.mutable_delete_()->add_ids(id);
  add(del);
  argent::v1::Request other;
  other.mutable_stats()->set_request_id(5);
  add(other);
  other.mutable_health()->set_request_id(6);
  add(other);
  other.mutable_admin()->set_action(argent::v1::AdminRequest::SNAPSHOT);
  add(other);
}

argent::IndexMeta small_meta() {
  argent::IndexMeta m;
  m.dim = 8;
  m.d_pad = argent::padded_dim(m.dim);
  m.nlist = 4;
  m.partitions = 1;
  m.n_items = 3;
  for (int i = 0; i < 4 * 8; ++i) m.centroids.push_back(i % 8 == i / 8 ? 1.f : 0.f);
  return m;
}

argent::PartitionData small_partition(const argent::IndexMeta& m) {
  argent::PartitionData p;
  p.ids = {11, 12, 13};
  p.scales = {0.5f, 0.25f, 1.f};
  p.codes.assign(3 * size_t(m.d_pad), 0);
  for (size_t i = 0; i < p.codes.size(); ++i) p.codes[i] = int8_t(int(i % 17) - 8);
  p.list_offsets = {0, 1, 1, 3, 3};
  p.feature_offsets = {0, 2, 2, 3};
  p.feature_ids = {1, 3, 2};
  p.feature_values = {10, -4, 7};
  return p;
}

// A file as the index loader fuzzer's section-list mode spells it: its sections in order.
Bytes as_sections(uint8_t mode, const std::string& path, const char* kind) {
  const argent::SectionFile f = argent::SectionFile::read(path, kind, argent::kIndexFormatVersion);
  const char* kTags[] = {"META", "CENT", "IDS_", "SCAL", "CODE", "LIST", "FOFF", "FIDS", "FVAL"};
  Bytes out = {mode, 1};
  for (uint8_t t = 0; t < 9; ++t) {
    const uint32_t tag = uint32_t(uint8_t(kTags[t][0])) | uint32_t(uint8_t(kTags[t][1])) << 8 |
                         uint32_t(uint8_t(kTags[t][2])) << 16 | uint32_t(uint8_t(kTags[t][3])) << 24;
    if (!f.has(tag)) continue;
    const argent::ByteView v = f.section(tag);
    out.push_back(t);
    append_chunk(out, Bytes(v.data, v.data + v.size));
  }
  return out;
}

void index_seeds(const std::string& dir, const std::string& scratch) {
  const argent::IndexMeta meta = small_meta();
  argent::write_manifest(scratch, meta);
  argent::write_partition(scratch, meta, small_partition(meta));
  const Bytes manifest = argent::read_whole_file(argent::manifest_path(scratch));
  const Bytes partition = argent::read_whole_file(argent::partition_path(scratch, 0));
  Bytes raw_manifest = {0};
  raw_manifest.insert(raw_manifest.end(), manifest.begin(), manifest.end());
  Bytes raw_partition = {1};
  raw_partition.insert(raw_partition.end(), partition.begin(), partition.end());
  seed(dir, "manifest-raw", raw_manifest);
  seed(dir, "partition-raw", raw_partition);
  seed(dir, "manifest-sections", as_sections(2, argent::manifest_path(scratch), "MANIFEST"));
  seed(dir, "partition-sections", as_sections(3, argent::partition_path(scratch, 0), "PARTITN"));
}

void wal_seeds(const std::string& dir, const std::string& scratch) {
  argent::MutationBatch upsert;
  upsert.kind = argent::MutationKind::kUpsert;
  upsert.items.dim = 8;
  for (int64_t id : {5, 6}) {
    upsert.items.ids.push_back(id);
    for (int j = 0; j < 8; ++j) upsert.items.embeddings.push_back(float(j) - float(id));
    upsert.items.push_features({{1, id}, {4, -2}});
  }
  argent::MutationBatch del;
  del.kind = argent::MutationKind::kDelete;
  del.ids = {5, 70};
  const std::vector<Bytes> payloads = {argent::encode_mutation(upsert), argent::encode_mutation(del)};
  {
    argent::WalRecovery recovery;
    argent::WriteAheadLog log = argent::WriteAheadLog::open(scratch, 1, &recovery);
    log.append(payloads);
  }
  const Bytes file = argent::read_whole_file(argent::WriteAheadLog::path_in(scratch));
  Bytes raw = {0};
  raw.insert(raw.end(), file.begin(), file.end());
  seed(dir, "log-raw", raw);
  Bytes records = {1, 0, 0};
  for (const Bytes& p : payloads) append_chunk(records, p);
  seed(dir, "log-records", records);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::string root = argv[1];
  ::mkdir(root.c_str(), 0755);
  filter_seeds(root + "/filter_parser");
  request_seeds(root + "/request");
  index_seeds(root + "/index_loader", argent::fuzz::scratch_dir());
  wal_seeds(root + "/wal_replay", argent::fuzz::scratch_dir());
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}
