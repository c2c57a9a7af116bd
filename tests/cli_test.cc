// The `argent` program end to end: synth -> build-index -> search prints one JSON line per query
// with the same ids and scores as the in-process engine; bad input exits non-zero with a single
// "argent: error: ..." line on stderr.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/npy.h"
#include "shard/filter.h"
#include "shard/synthetic.h"
#include "tests/util/index_util.h"

namespace argent {
namespace {

struct CmdResult {
  int status = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `argent ARGS` (through /bin/sh) with stdout and stderr captured to files in `dir`.
CmdResult run_argent(const test::TempDir& dir, const std::string& args) {
  const std::string out = dir.file("stdout"), err = dir.file("stderr");
  const std::string cmd =
      std::string("'") + ARGENT_BIN + "' " + args + " > '" + out + "' 2> '" + err + "'";
  const int rc = std::system(cmd.c_str());
  CmdResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// config-doc needs no index (and so no fixture).
TEST(Cli, ConfigDocPrintsTheCommittedDoc) {
  test::TempDir dir;
  const CmdResult r = run_argent(dir, "config-doc");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, slurp(std::string(ARGENT_SOURCE_DIR) + "/docs/configuration.md"))
      << "regenerate with: argent config-doc > docs/configuration.md";
}

// One index for the whole suite (ctest runs each test in its own process, so each test that
// uses the fixture pays for one synth + build-index; the tests are few and broad for that reason).
class CliTest : public ::testing::Test {
 protected:
  static constexpr int64_t kItems = 3000, kQueries = 7;
  static constexpr int kDim = 20;
  static constexpr uint64_t kSeed = 5;

  static CmdResult argent(const std::string& args) { return run_argent(*dir_, args); }

  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    data_ = dir_->file("data");
    index_ = dir_->file("index");
    synth_ = new CmdResult(argent("synth --out " + data_ + " --n " + std::to_string(kItems) +
                                  " --dim " + std::to_string(kDim) + " --queries " +
                                  std::to_string(kQueries) + " --seed " + std::to_string(kSeed)));
    build_ = new CmdResult(argent(
        "build-index --embeddings " + data_ + "/items.npy --ids " + data_ + "/ids.npy --features " +
        data_ + "/features.jsonl --out " + index_ + " --partitions 3 --nlist 24"));
  }
  static void TearDownTestSuite() {
    delete synth_;
    delete build_;
    delete dir_;
  }

  // Parses search output; checks the line format; returns [query][(id, score)].
  static std::vector<std::vector<std::pair<int64_t, float>>> parse_lines(const std::string& out) {
    std::vector<std::vector<std::pair<int64_t, float>>> res;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_EQ(j.at("query").get<int64_t>(), int64_t(res.size()));
      const auto& ids = j.at("ids");
      const auto& scores = j.at("scores");
      EXPECT_EQ(ids.size(), scores.size()) << line;
      std::vector<std::pair<int64_t, float>> row;
      for (size_t i = 0; i < ids.size(); ++i)
        row.emplace_back(ids[i].get<int64_t>(), scores[i].get<float>());
      res.push_back(row);
    }
    return res;
  }

  static void expect_one_line_error(const CmdResult& r, const std::string& fragment) {
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("argent: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line:\n" << r.err;
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  }

  static test::TempDir* dir_;
  static std::string data_, index_;
  static CmdResult* synth_;
  static CmdResult* build_;
};
test::TempDir* CliTest::dir_ = nullptr;
std::string CliTest::data_, CliTest::index_;
CmdResult* CliTest::synth_ = nullptr;
CmdResult* CliTest::build_ = nullptr;

TEST_F(CliTest, SynthBuildIndexSearchEndToEnd) {
  ASSERT_EQ(synth_->status, 0) << synth_->err;
  EXPECT_NE(synth_->out.find("3000 items, dim 20"), std::string::npos) << synth_->out;
  ASSERT_EQ(build_->status, 0) << build_->err;
  EXPECT_NE(build_->out.find("3000 items, dim 20, 24 lists, 3 partitions"), std::string::npos)
      << build_->out;
  // The files synth wrote are what the generator gives for the same seed.
  const ItemSet items = generate_synthetic_items(kItems, kDim, kSeed, Config{}.synthetic);
  const ItemSet loaded =
      load_item_set(data_ + "/items.npy", data_ + "/ids.npy", data_ + "/features.jsonl");
  EXPECT_EQ(loaded.ids, items.ids);
  EXPECT_EQ(loaded.embeddings, items.embeddings);
  EXPECT_EQ(loaded.feature_offsets, items.feature_offsets);
  EXPECT_EQ(loaded.feature_ids, items.feature_ids);
  EXPECT_EQ(loaded.feature_values, items.feature_values);

  // `argent search` prints what LocalEngine returns: ids, and scores (%.9g round-trips a float).
  int64_t n = 0, dim = 0;
  const std::vector<float> q = npy_to_float_matrix(read_npy(data_ + "/queries.npy"), "q", &n, &dim);
  ASSERT_EQ(n, kQueries);
  const LocalEngine engine = LocalEngine::open(index_, Config{});
  struct Mode {
    std::string args, filter;
    int64_t k;
    bool exact;
  };
  for (const Mode& m : {Mode{"--k 10", "", 10, false}, Mode{"--k 25 --exact", "", 25, true},
                        Mode{"--k 15 --filter '0:0 AND NOT 1:0'", "0:0 AND NOT 1:0", 15, false}}) {
    SCOPED_TRACE(m.args);
    const CmdResult r =
        argent("search --index " + index_ + " --queries " + data_ + "/queries.npy " + m.args);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    const auto lines = parse_lines(r.out);
    ASSERT_EQ(int64_t(lines.size()), kQueries);
    SearchOptions opts;
    opts.k = m.k;
    opts.exact = m.exact;
    std::vector<std::string> filters;
    if (!m.filter.empty()) filters.push_back(m.filter);
    const SearchResults want = engine.search(q.data(), n, kDim, filters, opts);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<std::pair<int64_t, float>> expect;
      for (int64_t j = 0; j < m.k && want.ids[size_t(i * m.k + j)] != -1; ++j)
        expect.emplace_back(want.ids[size_t(i * m.k + j)], want.scores[size_t(i * m.k + j)]);
      EXPECT_EQ(lines[size_t(i)], expect) << "query " << i;
      EXPECT_GT(lines[size_t(i)].size(), 0u);
    }
  }
}

TEST_F(CliTest, BadInputExitsNonZeroWithOneLineError) {
  ASSERT_EQ(build_->status, 0) << build_->err;
  const std::string search = "search --index " + index_ + " --queries ";
  {
    SCOPED_TRACE("queries of the wrong dimension");
    std::vector<float> q(3 * (kDim + 1), 0.5f);
    write_npy_f32(dir_->file("wrong_dim.npy"), q.data(), 3, kDim + 1);
    expect_one_line_error(argent(search + dir_->file("wrong_dim.npy")),
                          "query dimension 21 does not match the index dimension 20");
  }
  {
    SCOPED_TRACE("NaN in the queries");
    std::vector<float> q(2 * kDim, 0.5f);
    q[size_t(kDim + 3)] = std::numeric_limits<float>::quiet_NaN();
    write_npy_f32(dir_->file("nan.npy"), q.data(), 2, kDim);
    const CmdResult r = argent(search + dir_->file("nan.npy"));
    expect_one_line_error(r, "NaN");
    EXPECT_NE(r.err.find("nan.npy: row 1 column 3"), std::string::npos) << r.err;
  }
  {
    SCOPED_TRACE("bad filter");
    expect_one_line_error(argent(search + data_ + "/queries.npy --filter '1:2 AND'"),
                          "at position 8");
  }
  {
    SCOPED_TRACE("k above search.max_k");
    expect_one_line_error(argent(search + data_ + "/queries.npy --k 100001"),
                          "k 100001 is outside [1, search.max_k = 100000]");
  }
  {
    SCOPED_TRACE("a directory that holds no index");
    expect_one_line_error(
        argent("search --index " + data_ + " --queries " + data_ + "/queries.npy"),
        data_ + "/MANIFEST.argent");
  }
  {
    SCOPED_TRACE("an index path that does not exist");
    expect_one_line_error(
        argent("search --index " + dir_->file("nowhere") + " --queries " + data_ + "/queries.npy"),
        dir_->file("nowhere"));
  }
  {
    SCOPED_TRACE("bad config file");
    std::ofstream(dir_->file("bad.yaml")) << "search:\n  nprobe: 0\n";
    expect_one_line_error(
        argent(search + data_ + "/queries.npy --config " + dir_->file("bad.yaml")),
        "bad.yaml:2: search.nprobe = 0 is out of range");
  }
  {
    SCOPED_TRACE("infinite item embedding");
    std::vector<float> x(10 * 4, 1.0f);
    x[13] = std::numeric_limits<float>::infinity();
    write_npy_f32(dir_->file("inf_items.npy"), x.data(), 10, 4);
    expect_one_line_error(argent("build-index --embeddings " + dir_->file("inf_items.npy") +
                                 " --out " + dir_->file("idx2")),
                          "row 3 column 1 is inf");
  }
  {
    SCOPED_TRACE("build-index without items");
    expect_one_line_error(argent("build-index --out " + dir_->file("idx3")),
                          "give either --embeddings or --synthetic");
  }
}

}  // namespace
}  // namespace argent
