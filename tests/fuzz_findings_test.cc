// Regression tests for the fuzzers' findings (fuzz/, docs/reliability.md "Fuzzing"): each input
// that crashed a fuzz target, rebuilt here through the public API, now gets a named error. The
// raw reproducers also sit in the fuzz corpora, so the CI fuzz runs replay them too.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "common/error.h"
#include "coordinator/request_validation.h"
#include "kernels/layout.h"
#include "shard/index_meta.h"
#include "shard/partition_file.h"

namespace argent {
namespace {

// fuzz/request_structured_fuzz, UBSan: a timeout_ms near 2^62 overflowed the deadline's
// nanosecond arithmetic (signed overflow in std::chrono) on the gateway thread.
TEST(FuzzFindings, HugeSearchTimeoutIsInvalidNotOverflow) {
  IndexMeta meta;
  meta.dim = 4;
  meta.d_pad = padded_dim(4);
  meta.nlist = 2;
  Config config;
  v1::SearchRequest r;
  for (int j = 0; j < 4; ++j) r.add_embedding(1.f);
  r.set_k(5);
  PendingSearch out;
  for (int64_t t : {int64_t(4030240522419721394), std::numeric_limits<int64_t>::max(),
                    (int64_t(1) << 40) + 1}) {
    r.set_timeout_ms(t);
    const std::string problem = validate_search(r, meta, config, &out);
    EXPECT_NE(problem.find("timeout_ms = " + std::to_string(t) + " is outside"), std::string::npos)
        << problem;
  }
  r.set_timeout_ms(int64_t(1) << 40);  // the largest allowed
  EXPECT_EQ(validate_search(r, meta, config, &out), "");
}

// fuzz/index_loader_fuzz, ASan heap-buffer-overflow: a partition whose feature offsets start at
// 0 and end at n_features but exceed it in between was read past its feature arrays, because
// each item's offsets were checked only as that item was reached.
TEST(FuzzFindings, PartitionFeatureOffsetBeyondTheFeaturesIsDataLoss) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("argent-fuzz-finding-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  IndexMeta meta;
  meta.dim = 8;
  meta.d_pad = padded_dim(8);
  meta.nlist = 2;
  meta.partitions = 1;
  meta.n_items = 3;
  meta.centroids.assign(16, 0.5f);
  write_manifest(dir.string(), meta);
  PartitionData p;
  p.ids = {1, 2, 3};
  p.scales = {1.f, 1.f, 1.f};
  p.codes.assign(3 * size_t(meta.d_pad), 1);
  p.list_offsets = {0, 2, 3};
  p.feature_offsets = {0, 4096, 1, 3};  // the middle offset points far past the 3 features
  p.feature_ids = {1, 2, 3};
  p.feature_values = {1, 1, 1};
  write_partition(dir.string(), meta, p);
  try {
    read_partition(dir.string(), meta, 0);
    ADD_FAILURE() << "a partition with out-of-range feature offsets was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("feature offsets decrease at item 1"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace argent
