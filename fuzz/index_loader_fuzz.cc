// Fuzzes the index-file loader (shard/index_meta.h read_manifest, shard/partition_file.h
// read_partition) with hostile files. The first input byte picks the mode:
//   0: the rest is MANIFEST.argent, raw
//   1: the rest is part-00000.argent, raw, next to a valid manifest
//   2: the rest is a list of sections (tag index byte, 16-bit length, payload) written as a
//      well-formed MANIFEST container (correct magic and CRC32Cs), so the fuzzer reaches the
//      checks behind the checksums: JSON metadata, sizes, ranges, centroids
//   3: the same for a partition file next to a valid manifest
// A load either returns a structure that passes the invariants below or throws argent::Error;
// any other exception, crash or sanitizer report is a finding.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/section_file.h"
#include "fuzz_util.h"
#include "kernels/layout.h"
#include "shard/index_meta.h"
#include "shard/partition_file.h"

namespace {

using argent::section_tag;
const uint32_t kTags[] = {section_tag("META"), section_tag("CENT"), section_tag("IDS_"),
                          section_tag("SCAL"), section_tag("CODE"), section_tag("LIST"),
                          section_tag("FOFF"), section_tag("FIDS"), section_tag("FVAL")};

argent::IndexMeta valid_meta() {
  argent::IndexMeta m;
  m.dim = 8;
  m.d_pad = argent::padded_dim(m.dim);
  m.nlist = 4;
  m.partitions = 1;  // every id belongs to partition 0
  m.n_items = 0;
  m.centroids.assign(size_t(m.nlist * m.dim), 0.25f);
  return m;
}

// A directory holding a valid manifest, for the partition modes.
const std::string& index_dir() {
  static const std::string dir = [] {
    const std::string d = argent::fuzz::scratch_dir() + "/index";
    ::mkdir(d.c_str(), 0700);
    argent::write_manifest(d, valid_meta());
    return d;
  }();
  return dir;
}

void write_sections(argent::fuzz::InputReader& in, const std::string& kind, const std::string& path) {
  const uint32_t version = in.byte() % 3 == 0 ? 2 : argent::kIndexFormatVersion;
  argent::SectionWriter writer(kind, version);
  std::vector<std::vector<uint8_t>> payloads;  // the writer keeps views, not copies
  while (!in.done() && payloads.size() < 16) {
    const uint32_t tag = kTags[in.byte() % (sizeof kTags / sizeof kTags[0])];
    payloads.push_back(in.chunk());
    writer.add(tag, argent::ByteView{payloads.back().data(), payloads.back().size()});
  }
  writer.write_file(path);
}

void check_manifest(const argent::IndexMeta& m) {
  if (m.dim < 1 || m.dim > argent::kMaxDim || m.d_pad != argent::padded_dim(m.dim)) __builtin_trap();
  if (m.nlist < 1 || m.partitions < 1 || int64_t(m.centroids.size()) != m.nlist * m.dim)
    __builtin_trap();
  for (float c : m.centroids)
    if (!std::isfinite(c)) __builtin_trap();
}

void check_partition(const argent::PartitionData& p, const argent::IndexMeta& m) {
  const size_t n = p.ids.size();
  if (p.scales.size() != n || p.codes.size() != n * size_t(m.d_pad)) __builtin_trap();
  if (p.list_offsets.size() != size_t(m.nlist + 1) || p.list_offsets.front() != 0 ||
      p.list_offsets.back() != int64_t(n))
    __builtin_trap();
  for (size_t l = 0; l + 1 < p.list_offsets.size(); ++l)
    if (p.list_offsets[l] > p.list_offsets[l + 1]) __builtin_trap();
  if (p.feature_offsets.size() != n + 1 || p.feature_offsets.front() != 0 ||
      p.feature_offsets.back() != int64_t(p.feature_ids.size()) ||
      p.feature_values.size() != p.feature_ids.size())
    __builtin_trap();
  for (float s : p.scales)
    if (!std::isfinite(s)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  argent::fuzz::InputReader in(data, size);
  const int mode = in.byte() % 4;
  try {
    if (mode == 0 || mode == 2) {
      const std::string dir = argent::fuzz::scratch_dir() + "/manifest";
      ::mkdir(dir.c_str(), 0700);
      if (mode == 0) {
        const std::vector<uint8_t> bytes = in.rest();
        argent::fuzz::write_file(argent::manifest_path(dir), bytes.data(), bytes.size());
      } else {
        write_sections(in, "MANIFEST", argent::manifest_path(dir));
      }
      check_manifest(argent::read_manifest(dir));
    } else {
      const std::string& dir = index_dir();
      if (mode == 1) {
        const std::vector<uint8_t> bytes = in.rest();
        argent::fuzz::write_file(argent::partition_path(dir, 0), bytes.data(), bytes.size());
      } else {
        write_sections(in, "PARTITN", argent::partition_path(dir, 0));
      }
      static const argent::IndexMeta meta = valid_meta();
      check_partition(argent::read_partition(dir, meta, 0), meta);
    }
  } catch (const argent::Error&) {
    // a named refusal: the loader's promise
  }
  return 0;
}
