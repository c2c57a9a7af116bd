// The YAML configuration (common/config.h): defaults equal configs/demo.yaml and the generated
// docs/configuration.md is current; unknown keys, wrong types and out-of-range values are
// rejected with the origin, the line and the key.
#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"

namespace argent {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every field, so that a default that drifts from demo.yaml is caught.
void expect_same(const Config& a, const Config& b) {
  EXPECT_EQ(a.index.dir, b.index.dir);
  EXPECT_EQ(a.index.partitions, b.index.partitions);
  EXPECT_EQ(a.index.nlist, b.index.nlist);
  EXPECT_EQ(a.index.normalize, b.index.normalize);
  EXPECT_EQ(a.index.kmeans_iterations, b.index.kmeans_iterations);
  EXPECT_EQ(a.index.kmeans_points_per_list, b.index.kmeans_points_per_list);
  EXPECT_EQ(a.index.bloom_bits, b.index.bloom_bits);
  EXPECT_EQ(a.index.bloom_hashes, b.index.bloom_hashes);
  EXPECT_EQ(a.index.list_slack, b.index.list_slack);
  EXPECT_EQ(a.index.seed, b.index.seed);
  EXPECT_EQ(a.search.k, b.search.k);
  EXPECT_EQ(a.search.nprobe, b.search.nprobe);
  EXPECT_EQ(a.search.batch, b.search.batch);
  EXPECT_EQ(a.search.max_k, b.search.max_k);
  EXPECT_EQ(a.search.threads, b.search.threads);
  EXPECT_EQ(a.search.device, b.search.device);
  EXPECT_EQ(a.search.module, b.search.module);
  EXPECT_EQ(a.search.filter_cache_mb, b.search.filter_cache_mb);
  EXPECT_EQ(a.synthetic.clusters, b.synthetic.clusters);
  EXPECT_EQ(a.synthetic.cluster_spread, b.synthetic.cluster_spread);
  EXPECT_EQ(a.synthetic.feature_ids, b.synthetic.feature_ids);
  EXPECT_EQ(a.synthetic.features_per_item, b.synthetic.features_per_item);
  EXPECT_EQ(a.synthetic.values_per_feature, b.synthetic.values_per_feature);
  EXPECT_EQ(a.synthetic.zipf_exponent, b.synthetic.zipf_exponent);
  EXPECT_EQ(a.serve.endpoint, b.serve.endpoint);
  EXPECT_EQ(a.serve.backend, b.serve.backend);
  EXPECT_EQ(a.serve.coordinator_serves, b.serve.coordinator_serves);
  EXPECT_EQ(a.updates.max_request_items, b.updates.max_request_items);
  EXPECT_EQ(a.updates.max_step_items, b.updates.max_step_items);
  EXPECT_EQ(a.updates.snapshot_interval_s, b.updates.snapshot_interval_s);
  EXPECT_EQ(a.updates.snapshot_wal_bytes, b.updates.snapshot_wal_bytes);
  EXPECT_EQ(a.updates.compact_tombstone_ratio, b.updates.compact_tombstone_ratio);
  EXPECT_EQ(a.serve.max_batch, b.serve.max_batch);
  EXPECT_EQ(a.serve.max_wait_us, b.serve.max_wait_us);
  EXPECT_EQ(a.serve.max_queue, b.serve.max_queue);
  EXPECT_EQ(a.serve.max_queue_bytes, b.serve.max_queue_bytes);
  EXPECT_EQ(a.serve.max_message_bytes, b.serve.max_message_bytes);
  EXPECT_EQ(a.serve.default_timeout_ms, b.serve.default_timeout_ms);
  EXPECT_EQ(a.serve.collective_timeout_ms, b.serve.collective_timeout_ms);
  EXPECT_EQ(a.serve.stats_interval_s, b.serve.stats_interval_s);
  EXPECT_EQ(a.rerank.enabled, b.rerank.enabled);
  EXPECT_EQ(a.rerank.model, b.rerank.model);
  EXPECT_EQ(a.rerank.tasks, b.rerank.tasks);
  EXPECT_EQ(a.rerank.hidden, b.rerank.hidden);
  EXPECT_EQ(a.rerank.activation, b.rerank.activation);
  EXPECT_EQ(a.rerank.task_weights, b.rerank.task_weights);
  EXPECT_EQ(a.rerank.retrieval_score_weight, b.rerank.retrieval_score_weight);
  EXPECT_EQ(a.rerank.depth, b.rerank.depth);
  EXPECT_EQ(a.rerank.chunk_rows, b.rerank.chunk_rows);
  EXPECT_EQ(a.rerank.device, b.rerank.device);
  EXPECT_EQ(a.gateway.auth, b.gateway.auth);
  EXPECT_EQ(a.gateway.server_key, b.gateway.server_key);
  EXPECT_EQ(a.gateway.allow_list, b.gateway.allow_list);
  EXPECT_EQ(a.gateway.allow_list_check_s, b.gateway.allow_list_check_s);
  EXPECT_EQ(a.gateway.send_hwm, b.gateway.send_hwm);
  EXPECT_EQ(a.gateway.receive_hwm, b.gateway.receive_hwm);
  EXPECT_EQ(a.gateway.handshake_ms, b.gateway.handshake_ms);
  EXPECT_EQ(a.gateway.max_frames, b.gateway.max_frames);
  EXPECT_EQ(a.gateway.max_exclude_ids, b.gateway.max_exclude_ids);
  EXPECT_EQ(a.gateway.max_rerank_depth, b.gateway.max_rerank_depth);
  EXPECT_EQ(a.gateway.max_filter_chars, b.gateway.max_filter_chars);
  EXPECT_EQ(a.gateway.max_filter_depth, b.gateway.max_filter_depth);
  EXPECT_EQ(a.gateway.max_item_features, b.gateway.max_item_features);
  EXPECT_EQ(a.gateway.log_rejections_per_s, b.gateway.log_rejections_per_s);
  EXPECT_EQ(a.metrics.endpoint, b.metrics.endpoint);
}

TEST(Config, DemoFileEqualsBuiltInDefaults) {
  expect_same(load_config(std::string(ARGENT_SOURCE_DIR) + "/configs/demo.yaml"), Config{});
  expect_same(parse_config("", "empty.yaml"), Config{});
  expect_same(parse_config("# only a comment\n", "comment.yaml"), Config{});
}

TEST(Config, GeneratedDocIsCurrent) {
  EXPECT_EQ(read_text(std::string(ARGENT_SOURCE_DIR) + "/docs/configuration.md"), config_markdown())
      << "regenerate with: argent config-doc > docs/configuration.md";
  // Every schema key appears in the document with its default.
  const std::string md = config_markdown();
  for (const ConfigKey& k : config_schema())
    EXPECT_NE(md.find("`" + k.path + "` | " + k.type + " | `" + k.default_value + "`"),
              std::string::npos)
        << k.path;
}

TEST(Config, ValuesOverrideDefaultsAndOthersKeepThem) {
  const Config c = parse_config(
      "index:\n"
      "  normalize: false\n"
      "  list_slack: 0.5\n"
      "  bloom_bits: 256\n"
      "search:\n"
      "  nprobe: 7\n"
      "  max_k: 1000000\n"
      "serve:\n"
      "  backend: cuda\n"
      "  endpoint: tcp://0.0.0.0:1\n",
      "override.yaml");
  EXPECT_FALSE(c.index.normalize);
  EXPECT_EQ(c.index.list_slack, 0.5);
  EXPECT_EQ(c.index.bloom_bits, 256);
  EXPECT_EQ(c.search.nprobe, 7);
  EXPECT_EQ(c.search.max_k, 1000000);
  EXPECT_EQ(c.serve.backend, "cuda");
  EXPECT_EQ(c.serve.endpoint, "tcp://0.0.0.0:1");
  const Config d;
  EXPECT_EQ(c.index.partitions, d.index.partitions);
  EXPECT_EQ(c.search.k, d.search.k);
  EXPECT_EQ(c.synthetic.clusters, d.synthetic.clusters);
  EXPECT_FALSE(c.rerank.enabled);
}

TEST(Config, RerankListsParse) {
  const Config c = parse_config(
      "rerank:\n"
      "  enabled: true\n"
      "  model: m.pt\n"
      "  tasks: [a, b]\n"
      "  hidden: [8]\n"
      "  task_weights: [0.5, -2]\n",
      "rerank.yaml");
  EXPECT_TRUE(c.rerank.enabled);
  EXPECT_EQ(c.rerank.model, "m.pt");
  EXPECT_EQ(c.rerank.tasks, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.rerank.hidden, (std::vector<int64_t>{8}));
  EXPECT_EQ(c.rerank.task_weights, (std::vector<double>{0.5, -2.0}));
}

struct BadConfig {
  std::string yaml;
  std::vector<std::string> fragments;
};

void PrintTo(const BadConfig& c, std::ostream* os) { *os << '"' << c.yaml << '"'; }

class ConfigErrorTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ConfigErrorTest, RejectedNamingFileLineAndKey) {
  const BadConfig& c = GetParam();
  try {
    parse_config(c.yaml, "test.yaml");
    FAIL() << "accepted:\n" << c.yaml;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("test.yaml", 0), 0u) << "message does not start with the origin: " << msg;
    for (const std::string& f : c.fragments)
      EXPECT_NE(msg.find(f), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << f << "\"";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Bad, ConfigErrorTest,
    ::testing::Values(
        BadConfig{"foo: 1\n", {"test.yaml:1", "unknown key 'foo'", "search"}},
        BadConfig{"search:\n  k: 5\n  nprob: 3\n",
                  {"test.yaml:3", "unknown key 'search.nprob'", "nprobe"}},
        BadConfig{"index:\n  dir: x\n  partitons: 3\n", {":3", "unknown key 'index.partitons'"}},
        BadConfig{"search:\n  k: abc\n", {":2", "search.k = 'abc' is not a valid integer"}},
        BadConfig{"index:\n  partitions: 3.5\n", {":2", "index.partitions", "not a valid integer"}},
        BadConfig{"search:\n  threads: 99999999999999999999\n",
                  {"search.threads", "not a valid integer"}},
        BadConfig{"search:\n  nprobe: 0\n", {":2", "search.nprobe = 0 is out of range [1, "}},
        BadConfig{"search:\n  k: 100001\n", {"search.k = 100001 is out of range [0, 100000]"}},
        BadConfig{"index:\n  seed: -1\n", {"index.seed = -1 is out of range"}},
        BadConfig{"search: 5\n", {"search must be a mapping"}},
        BadConfig{"search:\n  k: [1, 2]\n", {"search.k must be a"}},
        BadConfig{"index:\n  bloom_bits: 100\n", {"test.yaml:2", "index.bloom_bits = 100", "multiple of 64"}},
        BadConfig{"index:\n  normalize: maybe\n", {"index.normalize", "not a valid boolean"}},
        BadConfig{"index:\n  list_slack: .nan\n", {"index.list_slack", "out of range"}},
        BadConfig{"index:\n  list_slack: -0.5\n", {"index.list_slack = -0.5 is out of range"}},
        BadConfig{"serve:\n  backend: gpu\n", {"serve.backend = 'gpu' is not one of: cpu, cuda"}},
        BadConfig{"search: {k: 10\n", {"YAML syntax error"}},
        BadConfig{"- 1\n- 2\n", {"the file must be a mapping"}},
        BadConfig{"rerank:\n  tasks: click\n", {":2", "rerank.tasks must be a list"}},
        BadConfig{"rerank:\n  hidden: [64, x]\n", {"rerank.hidden = 'x' is not a valid int"}},
        BadConfig{"rerank:\n  hidden: [64, 0]\n", {"rerank.hidden size 0 is out of range"}},
        BadConfig{"rerank:\n  task_weights: [1, 2]\n",
                  {"rerank.task_weights has 2 values for 4 tasks"}},
        BadConfig{"rerank:\n  task_weights: [1, 2, .inf, 0]\n", {"non-finite value inf"}},
        BadConfig{"rerank:\n  enabled: true\n", {"rerank.model names no file"}},
        BadConfig{"rerank:\n  depth: 100001\n", {"rerank.depth = 100001 is out of range"}},
        BadConfig{"rerank:\n  device: gpu\n", {"rerank.device = 'gpu' is not one of"}}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST(Config, MissingFileIsNamed) {
  try {
    load_config("/nonexistent/argent.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open config file /nonexistent/argent.yaml"),
              std::string::npos)
        << e.what();
  }
}

// The deployment config turns authentication on; the demo config (the defaults) keeps it off.
TEST(Config, DeployFileAuthenticatesAndDemoFileDoesNot) {
  const Config deploy = load_config(std::string(ARGENT_SOURCE_DIR) + "/configs/deploy.yaml");
  EXPECT_TRUE(deploy.gateway.auth);
  EXPECT_FALSE(deploy.gateway.server_key.empty());
  EXPECT_FALSE(deploy.gateway.allow_list.empty());
  EXPECT_FALSE(load_config(std::string(ARGENT_SOURCE_DIR) + "/configs/demo.yaml").gateway.auth);
  try {
    parse_config("gateway:\n  auth: true\n", "t.yaml");
    ADD_FAILURE() << "gateway.auth without key files was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gateway.auth is true but gateway.server_key"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace argent
