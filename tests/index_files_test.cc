// Corrupt, truncated and missing index files (as LevelDB's corruption_test): loading must throw
// argent::Error naming the file and the problem, never crash or load wrong data. Every file of a
// small index is truncated at many lengths and has every one of its bytes flipped in turn.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "shard/index_builder.h"
#include "shard/partition_file.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

namespace fs = std::filesystem;
using test::Rng;

std::vector<uint8_t> read_bytes(const std::string& path) { return read_whole_file(path); }

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Loads the whole index the way `argent search` does. Returns "" on success, else the error
// message; fails the test for any exception that is not argent::Error or has the wrong code.
std::string load_error(const std::string& dir, ErrorCode want) {
  try {
    const LocalEngine engine = LocalEngine::open(dir, Config{});
    return "";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), want) << error_code_name(e.code()) << ": " << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an argent::Error: " << e.what();
    return e.what();
  }
}

class IndexFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const uint64_t seed = test::test_seed(99);
    Rng rng(seed);
    // dim 5 and 3 lists: the manifest's centroid section (15 floats) ends in 4 padding bytes.
    const ItemSet items = test::random_items(rng, 150, 5, test::random_ids(rng, 150), 3, 3, 0.4);
    build_index(items, test::small_index_config(2, 3), dir_.path());
    for (const auto& entry : fs::directory_iterator(dir_.path()))
      files_.push_back(entry.path().filename().string());
    std::sort(files_.begin(), files_.end());
  }

  test::TempDir dir_;
  std::vector<std::string> files_;
};

TEST_F(IndexFilesTest, IntactIndexLoads) {
  EXPECT_EQ(files_, (std::vector<std::string>{"MANIFEST.argent", "part-00000.argent",
                                              "part-00001.argent"}));
  EXPECT_EQ(load_error(dir_.path(), ErrorCode::kDataLoss), "");
}

TEST_F(IndexFilesTest, TruncatedFilesAreRejected) {
  for (const std::string& name : files_) {
    const std::string path = dir_.file(name);
    const std::vector<uint8_t> good = read_bytes(path);
    const size_t n = good.size();
    for (size_t len : {size_t(0), size_t(1), size_t(31), size_t(32), size_t(33), size_t(55),
                       size_t(56), size_t(57), n / 2, n - 8, n - 4, n - 1}) {
      SCOPED_TRACE(name + " truncated to " + std::to_string(len) + " of " + std::to_string(n));
      write_bytes(path, std::vector<uint8_t>(good.begin(), good.begin() + long(len)));
      const std::string msg = load_error(dir_.path(), ErrorCode::kDataLoss);
      EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    }
    // Bytes appended after the last section are rejected too.
    std::vector<uint8_t> longer = good;
    longer.resize(n + 8, 0);
    write_bytes(path, longer);
    EXPECT_NE(load_error(dir_.path(), ErrorCode::kDataLoss).find("unexpected bytes"),
              std::string::npos);
    write_bytes(path, good);
  }
  EXPECT_EQ(load_error(dir_.path(), ErrorCode::kDataLoss), "");
}

// The file's own reader (read_manifest or read_partition, which ShardIndex::load calls): Error's
// message, or "" when the file is accepted.
std::string read_error(const std::string& dir, const std::string& name, const IndexMeta& meta) {
  try {
    if (name == "MANIFEST.argent") {
      read_manifest(dir);
    } else {
      read_partition(dir, meta, name == "part-00000.argent" ? 0 : 1);
    }
    return "";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << error_code_name(e.code()) << ": " << e.what();
    return e.what();
  }
}

// Every byte of every file, flipped: headers, section headers (tags, checksums, lengths, reserved
// fields), payloads and padding. Each must make the file's reader fail with a named error.
TEST_F(IndexFilesTest, EveryFlippedByteIsRejected) {
  const IndexMeta meta = read_manifest(dir_.path());
  for (const std::string& name : files_) {
    const std::string path = dir_.file(name);
    const std::vector<uint8_t> good = read_bytes(path);
    int64_t accepted = 0;
    for (size_t i = 0; i < good.size(); ++i) {
      for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80)}) {
        std::vector<uint8_t> bad = good;
        bad[i] ^= mask;
        write_bytes(path, bad);
        const std::string msg = read_error(dir_.path(), name, meta);
        if (msg.empty()) {
          if (accepted++ < 5)
            ADD_FAILURE() << name << ": flipping bit " << int(mask) << " of byte " << i << " of "
                          << good.size() << " was not detected";
        } else if (msg.find(path) == std::string::npos) {
          ADD_FAILURE() << name << " byte " << i << ": message does not name the file: " << msg;
        }
      }
    }
    EXPECT_EQ(accepted, 0) << name;
    write_bytes(path, good);
  }
  EXPECT_EQ(load_error(dir_.path(), ErrorCode::kDataLoss), "");
}

TEST_F(IndexFilesTest, MissingFilesAreNamed) {
  // No manifest (an unfinished build): an I/O error naming the manifest.
  const std::string manifest = manifest_path(dir_.path());
  const std::vector<uint8_t> saved = read_bytes(manifest);
  fs::remove(manifest);
  std::string msg = load_error(dir_.path(), ErrorCode::kIo);
  EXPECT_NE(msg.find(manifest), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
  write_bytes(manifest, saved);

  const std::string part = partition_path(dir_.path(), 1);
  fs::remove(part);
  msg = load_error(dir_.path(), ErrorCode::kIo);
  EXPECT_NE(msg.find(part), std::string::npos) << msg;

  msg = load_error(dir_.path() + "/no-such-index", ErrorCode::kIo);
  EXPECT_NE(msg.find("no-such-index/MANIFEST.argent"), std::string::npos) << msg;
}

TEST_F(IndexFilesTest, SwappedPartitionFilesAreRejected) {
  const std::string p0 = partition_path(dir_.path(), 0), p1 = partition_path(dir_.path(), 1);
  fs::rename(p0, dir_.file("tmp"));
  fs::rename(p1, p0);
  fs::rename(dir_.file("tmp"), p1);
  const std::string msg = load_error(dir_.path(), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("holds partition"), std::string::npos) << msg;
}

TEST_F(IndexFilesTest, FileOfTheWrongKindIsRejected) {
  fs::copy_file(manifest_path(dir_.path()), partition_path(dir_.path(), 0),
                fs::copy_options::overwrite_existing);
  const std::string msg = load_error(dir_.path(), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("expected 'PARTITN'"), std::string::npos) << msg;
}

// Files with valid checksums but broken invariants, written through the library's own writers.
TEST_F(IndexFilesTest, InconsistentContentIsRejected) {
  const IndexMeta meta = read_manifest(dir_.path());
  const PartitionData good = read_partition(dir_.path(), meta, 0);
  ASSERT_GT(good.size(), 2);
  struct Case {
    const char* what;
    void (*edit)(PartitionData&);
  };
  const Case cases[] = {
      {"does not belong to partition", [](PartitionData& p) { p.ids[0] = p.ids[0] + 1; }},
      {"invalid scale", [](PartitionData& p) { p.scales[1] = -1.0f; }},
      {"list offsets", [](PartitionData& p) { p.list_offsets[1] = p.size() + 5; }},
      {"not sorted",
       [](PartitionData& p) {
         for (int64_t i = 0; i < p.size(); ++i) {
           const int64_t a = p.feature_offsets[size_t(i)], b = p.feature_offsets[size_t(i + 1)];
           if (b - a >= 2) {
             std::swap(p.feature_values[size_t(a)], p.feature_values[size_t(b - 1)]);
             std::swap(p.feature_ids[size_t(a)], p.feature_ids[size_t(b - 1)]);
             return;
           }
         }
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    PartitionData bad = good;
    c.edit(bad);
    // An id edit may move it to the other partition by chance; the check needs a foreign id.
    if (std::string(c.what) == "does not belong to partition")
      while (partition_of_id(bad.ids[0], meta.partitions) == 0) bad.ids[0] += 1;
    write_partition(dir_.path(), meta, bad);
    const std::string msg = load_error(dir_.path(), ErrorCode::kDataLoss);
    EXPECT_NE(msg.find(c.what), std::string::npos) << msg;
    EXPECT_NE(msg.find(partition_path(dir_.path(), 0)), std::string::npos) << msg;
  }
  write_partition(dir_.path(), meta, good);
  EXPECT_EQ(load_error(dir_.path(), ErrorCode::kDataLoss), "");

  IndexMeta bad_meta = meta;
  bad_meta.centroids[2] = std::numeric_limits<float>::quiet_NaN();
  write_manifest(dir_.path(), bad_meta);
  EXPECT_NE(load_error(dir_.path(), ErrorCode::kDataLoss).find("non-finite centroid"),
            std::string::npos);
  bad_meta = meta;
  bad_meta.nlist = meta.nlist + 1;  // partitions now disagree with the manifest
  bad_meta.centroids.resize(size_t(bad_meta.nlist * meta.dim), 0.5f);
  write_manifest(dir_.path(), bad_meta);
  EXPECT_NE(load_error(dir_.path(), ErrorCode::kDataLoss).find("disagree with the manifest"),
            std::string::npos);
}

}  // namespace
}  // namespace argent
