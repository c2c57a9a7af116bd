// Data in and out (docs/operations.md, "Data in and out"): `argent build-index` reads the ANN
// benchmark formats (.fvecs, .bvecs, .ivecs) as it reads the same values in .npy; `argent export`
// writes the stored items (ids, int8 codes, scales, features) and an index rebuilt from an export
// with `build-index --codes/--scales` exports the very same bytes again, and searches the same.
// The exported codes and scales are checked against an independent float64 quantizer.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/npy.h"
#include "common/vecs.h"
#include "tests/util/test_util.h"

namespace argent {
namespace {

constexpr int kDim = 37;  // not a multiple of 4: codes carry padding in the index, not in exports
constexpr int64_t kItems = 600;
constexpr uint64_t kSeed = 20261125;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct CmdRun {
  int status;
  std::string err;
};

CmdRun argent(const test::TempDir& dir, const std::string& args) {
  const std::string err = dir.file("stderr");
  const std::string cmd = std::string("'") + ARGENT_BIN + "' " + args + " > /dev/null 2> '" + err + "'";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc), slurp(err)};
}

std::vector<float> random_rows(int64_t n, int dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(size_t(n * dim));
  for (float& v : x) v = normal(rng);
  return x;
}

// Sparse, unordered ids and a few features per item, written as build-index takes them.
void write_ids_and_features(const test::TempDir& dir, std::vector<int64_t>* ids) {
  std::mt19937_64 rng(kSeed + 1);
  std::set<int64_t> used;
  while (int64_t(used.size()) < kItems) used.insert(int64_t(rng() % 1000000007));
  ids->assign(used.rbegin(), used.rend());
  write_npy(dir.file("ids.npy"), "<i8", {kItems}, ids->data(), ids->size() * 8);
  std::vector<int32_t> ids32(ids->begin(), ids->end());
  std::ofstream ivecs(dir.file("ids.ivecs"), std::ios::binary);
  for (int32_t id : ids32) {
    const int32_t one = 1;
    ivecs.write(reinterpret_cast<const char*>(&one), 4).write(reinterpret_cast<const char*>(&id), 4);
  }
  std::ofstream features(dir.file("features.jsonl"));
  for (size_t i = 0; i < ids->size(); ++i) {
    nlohmann::json f = nlohmann::json::object();
    for (int k = 0; k < int(rng() % 4); ++k) f[std::to_string(rng() % 5)].push_back(int64_t(rng() % 50));
    features << nlohmann::json{{"id", (*ids)[i]}, {"features", f}}.dump() << "\n";
  }
}

const char* kFiles[] = {"ids.npy", "codes.npy", "scales.npy", "embeddings.npy", "features.jsonl"};

void expect_same_export(const std::string& a, const std::string& b) {
  for (const char* f : kFiles)
    EXPECT_EQ(slurp(a + "/" + f), slurp(b + "/" + f)) << f << " differs between " << a << " and " << b;
}

TEST(Export, VecsFormatsReadAsTheSameValuesInNpy) {
  test::TempDir dir;
  std::vector<int64_t> ids;
  write_ids_and_features(dir, &ids);
  const std::vector<float> x = random_rows(kItems, kDim, kSeed);
  write_npy_f32(dir.file("items.npy"), x.data(), kItems, kDim);
  write_fvecs(dir.file("items.fvecs"), x.data(), kItems, kDim);
  const std::string common = " --partitions 5 --nlist 8 --features " + dir.file("features.jsonl");
  ASSERT_EQ(argent(dir, "build-index --out " + dir.file("a") + " --embeddings " +
                            dir.file("items.npy") + " --ids " + dir.file("ids.npy") + common).status, 0);
  ASSERT_EQ(argent(dir, "build-index --out " + dir.file("b") + " --embeddings " +
                            dir.file("items.fvecs") + " --ids " + dir.file("ids.ivecs") + common).status, 0);
  ASSERT_EQ(argent(dir, "export --index " + dir.file("a") + " --out " + dir.file("ea")).status, 0);
  ASSERT_EQ(argent(dir, "export --index " + dir.file("b") + " --out " + dir.file("eb")).status, 0);
  expect_same_export(dir.file("ea"), dir.file("eb"));

  // .bvecs: uint8 vectors are the same floats as a float32 .npy of their values.
  std::vector<float> bytes_as_float(size_t(kItems * kDim));
  {
    std::mt19937_64 rng(kSeed + 2);
    std::ofstream bvecs(dir.file("items.bvecs"), std::ios::binary);
    for (int64_t i = 0; i < kItems; ++i) {
      const int32_t d = kDim;
      bvecs.write(reinterpret_cast<const char*>(&d), 4);
      for (int j = 0; j < kDim; ++j) {
        const uint8_t v = uint8_t(rng() % 256);
        bvecs.put(char(v));
        bytes_as_float[size_t(i * kDim + j)] = float(v);
      }
    }
  }
  write_npy_f32(dir.file("bytes.npy"), bytes_as_float.data(), kItems, kDim);
  ASSERT_EQ(argent(dir, "build-index --out " + dir.file("c") + " --embeddings " +
                            dir.file("items.bvecs") + common.substr(0, common.find(" --features"))).status, 0);
  ASSERT_EQ(argent(dir, "build-index --out " + dir.file("d") + " --embeddings " +
                            dir.file("bytes.npy") + common.substr(0, common.find(" --features"))).status, 0);
  ASSERT_EQ(argent(dir, "export --index " + dir.file("c") + " --out " + dir.file("ec")).status, 0);
  ASSERT_EQ(argent(dir, "export --index " + dir.file("d") + " --out " + dir.file("ed")).status, 0);
  expect_same_export(dir.file("ec"), dir.file("ed"));
}

TEST(Export, RoundTripsTheItemsExactly) {
  test::TempDir dir;
  std::vector<int64_t> ids;
  write_ids_and_features(dir, &ids);
  const std::vector<float> x = random_rows(kItems, kDim, kSeed + 3);
  write_fvecs(dir.file("items.fvecs"), x.data(), kItems, kDim);
  std::ofstream(dir.file("raw.yaml")) << "index:\n  normalize: false\n";
  const std::string cfg = " --config " + dir.file("raw.yaml") + " --partitions 4 --nlist 6";
  ASSERT_EQ(argent(dir, "build-index --out " + dir.file("a") + " --embeddings " +
                            dir.file("items.fvecs") + " --ids " + dir.file("ids.npy") +
                            " --features " + dir.file("features.jsonl") + cfg).status, 0);
  const CmdRun e = argent(dir, "export --index " + dir.file("a") + " --out " + dir.file("ea"));
  ASSERT_EQ(e.status, 0) << e.err;

  // Ids ascending; features as given; codes and scales as an independent float64 quantizer
  // computes them from the .fvecs values (index.normalize false: the raw vectors).
  const NpyArray out_ids = read_npy(dir.file("ea/ids.npy"));
  const NpyArray codes = read_npy(dir.file("ea/codes.npy"));
  const NpyArray scales = read_npy(dir.file("ea/scales.npy"));
  ASSERT_EQ(codes.dtype, "|i1");
  ASSERT_EQ(codes.shape, (std::vector<int64_t>{kItems, kDim}));
  std::vector<int64_t> sorted_ids = ids;
  std::sort(sorted_ids.begin(), sorted_ids.end());
  ASSERT_EQ(npy_to_int64_vector(out_ids, "ids"), sorted_ids);
  std::map<int64_t, int64_t> row_of;  // input row of each id
  for (int64_t i = 0; i < kItems; ++i) row_of[ids[size_t(i)]] = i;
  // A float64 quotient this close to k + 0.5 may round either way in float32 arithmetic.
  constexpr double kHalfwayMargin = 1e-4;
  int64_t wrong = 0;
  for (int64_t r = 0; r < kItems; ++r) {
    const float* row = x.data() + row_of[sorted_ids[size_t(r)]] * kDim;
    double amax = 0;
    for (int j = 0; j < kDim; ++j) amax = std::max(amax, std::fabs(double(row[j])));
    const float scale = reinterpret_cast<const float*>(scales.data.data())[r];
    if (scale != float(amax) / 127.0f) ++wrong;
    for (int j = 0; j < kDim; ++j) {
      const double q = double(row[j]) * 127.0 / amax;
      const int code = int(reinterpret_cast<const int8_t*>(codes.data.data())[r * kDim + j]);
      const bool near_half = std::fabs(std::fabs(q - std::floor(q)) - 0.5) < kHalfwayMargin;
      if (code != int(std::nearbyint(q)) && !(near_half && std::abs(code - q) <= 0.5 + kHalfwayMargin))
        ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0) << "seed " << kSeed;
  std::map<int64_t, std::string> features_in, features_out;
  for (const auto& [path, into] : {std::pair{dir.file("features.jsonl"), &features_in},
                                   std::pair{dir.file("ea/features.jsonl"), &features_out}}) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      std::set<std::pair<std::string, int64_t>> pairs;
      for (const auto& [f, vs] : j["features"].items())
        for (const auto& v : vs) pairs.insert({f, v.get<int64_t>()});
      (*into)[j["id"].get<int64_t>()] = nlohmann::json(pairs).dump();
    }
  }
  EXPECT_EQ(features_in, features_out);

  // The export rebuilt: the same items, bit for bit, and the same exact search results.
  ASSERT_EQ(argent(dir, "build-index --out " + dir.file("b") + " --codes " + dir.file("ea/codes.npy") +
                            " --scales " + dir.file("ea/scales.npy") + " --ids " +
                            dir.file("ea/ids.npy") + " --features " +
                            dir.file("ea/features.jsonl") + cfg).status, 0);
  ASSERT_EQ(argent(dir, "export --index " + dir.file("b") + " --out " + dir.file("eb")).status, 0);
  expect_same_export(dir.file("ea"), dir.file("eb"));
  const std::vector<float> q = random_rows(20, kDim, kSeed + 4);
  write_npy_f32(dir.file("q.npy"), q.data(), 20, kDim);
  for (const char* index : {"a", "b"}) {
    const std::string cmd = std::string("'") + ARGENT_BIN + "' search --exact --k 15 --index " +
                            dir.file(index) + " --queries " + dir.file("q.npy") + " > " +
                            dir.file(std::string(index) + ".jsonl");
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  EXPECT_EQ(slurp(dir.file("a.jsonl")), slurp(dir.file("b.jsonl")));
  EXPECT_FALSE(slurp(dir.file("a.jsonl")).empty());
}

TEST(Export, BadVecsFilesAreNamedErrors) {
  test::TempDir dir;
  const std::vector<float> x = random_rows(10, 4, kSeed);
  write_fvecs(dir.file("ok.fvecs"), x.data(), 10, 4);
  const std::string bytes = slurp(dir.file("ok.fvecs"));
  std::ofstream(dir.file("cut.fvecs"), std::ios::binary) << bytes.substr(0, bytes.size() - 3);
  CmdRun r = argent(dir, "build-index --out " + dir.file("i") + " --embeddings " + dir.file("cut.fvecs"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("cut.fvecs: record 9"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cut short"), std::string::npos) << r.err;

  std::string changed = bytes;
  const int32_t five = 5;
  std::memcpy(changed.data() + 3 * (4 + 16), &five, 4);  // record 3 claims dimension 5
  std::ofstream(dir.file("dims.fvecs"), std::ios::binary) << changed;
  r = argent(dir, "build-index --out " + dir.file("i") + " --embeddings " + dir.file("dims.fvecs"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("dims.fvecs: record 3 has dimension 5, the records before it 4"),
            std::string::npos) << r.err;

  write_npy(dir.file("codes.npy"), "<f4", {10, 4}, x.data(), x.size() * 4);
  write_npy(dir.file("scales.npy"), "<f4", {10}, x.data(), 40);
  r = argent(dir, "build-index --out " + dir.file("i") + " --codes " + dir.file("codes.npy") +
                      " --scales " + dir.file("scales.npy"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("expected int8 codes"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace argent

namespace argent {
namespace {

// items.npy and q.npy of dimension 16 in `dir`, and index i built over the items, for bench.
void write_bench_index(const test::TempDir& dir, int64_t items, int64_t queries, int nlist,
                       uint64_t seed) {
  const std::vector<float> x = random_rows(items, 16, seed);
  write_npy_f32(dir.file("items.npy"), x.data(), items, 16);
  const std::vector<float> q = random_rows(queries, 16, seed + 1);
  write_npy_f32(dir.file("q.npy"), q.data(), queries, 16);
  const CmdRun r = argent(dir, "build-index --out " + dir.file("i") + " --embeddings " +
                                   dir.file("items.npy") + " --nlist " + std::to_string(nlist) +
                                   " --partitions 2");
  ASSERT_EQ(r.status, 0) << r.err;
}

// argent bench --csv writes the per-batch latencies and two PNG plots next to the CSV.
TEST(Bench, WritesLatenciesAndPlotsNextToTheCsv) {
  test::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(write_bench_index(dir, 3000, 20, 16, kSeed + 5));
  const CmdRun r = argent(dir, "bench --index " + dir.file("i") + " --queries " + dir.file("q.npy") +
                                " --embeddings " + dir.file("items.npy") + " --k 10 --nprobe 1,4 " +
                                "--batch 1,8 --min-seconds 0 --csv " + dir.file("run.csv"));
  ASSERT_EQ(r.status, 0) << r.err;
  // 2 nprobes + 2 exact modes, batch 1 (20 batches) and 8 (3 batches).
  std::istringstream latency(slurp(dir.file("run-latency.csv")));
  int64_t lines = 0;
  for (std::string line; std::getline(latency, line);) ++lines;
  EXPECT_EQ(lines, 1 + 4 * (20 + 3));
  for (const char* png : {"run-recall-qps.png", "run-latency-cdf.png"}) {
    const std::string bytes = slurp(dir.file(png));
    ASSERT_GT(bytes.size(), 1000u) << png << "\n" << r.err;
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << png;
  }
}

// argent bench --device: the scan the user asks for, named in the output; cuda without a GPU (or
// without the CUDA backend) is refused naming the setting; an unknown device is refused.
TEST(Bench, ScansOnTheDeviceAskedFor) {
  test::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(write_bench_index(dir, 2000, 8, 8, kSeed + 7));
  const std::string common = "bench --index " + dir.file("i") + " --queries " + dir.file("q.npy") +
                             " --embeddings " + dir.file("items.npy") +
                             " --k 10 --nprobe 8 --batch 8 --skip-exact --min-seconds 0 --json ";
  CmdRun r = argent(dir, common + dir.file("cpu.json") + " --device cpu");
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(slurp(dir.file("cpu.json")));
  ASSERT_EQ(j.size(), 1u) << j.dump();
  EXPECT_EQ(j[0]["device"], "cpu");
  EXPECT_DOUBLE_EQ(j[0]["recall_at_10"].get<double>(), 1.0) << "nprobe = nlist is exhaustive";

  r = argent(dir, common + dir.file("cuda.json") + " --device cuda");
  if (r.status == 0) {  // a machine with a GPU and the CUDA backend
    j = nlohmann::json::parse(slurp(dir.file("cuda.json")));
    EXPECT_EQ(j[0]["device"], "cuda");
    EXPECT_DOUBLE_EQ(j[0]["recall_at_10"].get<double>(), 1.0);
  } else {
    EXPECT_NE(r.err.find("search.device: cuda"), std::string::npos) << r.err;
  }
  r = argent(dir, common + dir.file("x.json") + " --device tpu");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("tpu"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace argent
